"""Decoding of ``aws-chunked`` request bodies (with optional chunk signatures and trailers).

Pure, incremental: feed it the bytes of the (already HTTP-de-chunked) body as they arrive and it
returns the decoded payload bytes. See the AWS S3 docs "Signature Calculations for the
Authorization Header: Transferring Payload in Multiple Chunks (Chunked Upload)".
"""
