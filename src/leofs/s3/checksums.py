"""Checksums S3 clients send and expect: CRC32, CRC32C, CRC64NVME, SHA1, SHA256, and MD5.

Values on the wire are base64 of the big-endian digest. CRCs come from zlib (CRC32) and
awscrt (CRC32C, CRC64NVME, and the combine functions used for full-object multipart checksums).
"""
