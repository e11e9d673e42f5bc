"""Throwaway cluster CAs and member certificates (trustme) for the internal-TLS tests."""

from __future__ import annotations

import os
from pathlib import Path

import trustme


def member_files(ca: trustme.CA, directory: Path, name: str, *hosts: str) -> tuple[Path, Path, Path]:
    """(cert, key, CA) files of a member certificate for ``hosts`` (IP SANs for IPs; default
    127.0.0.1) signed by ``ca``; the key 0600, as a role requires."""
    directory.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert(*(hosts or ("127.0.0.1",)))
    cert_path, key_path, ca_path = directory / f"{name}.pem", directory / f"{name}.key", directory / "ca.pem"
    cert_path.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    key_path.touch(mode=0o600)
    os.chmod(key_path, 0o600)
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    return cert_path, key_path, ca_path


def tls_env(files: tuple[Path, Path, Path]) -> dict[str, str]:
    """The shared variables that give every role (and ``leofs adm``) these files."""
    cert, key, ca = files
    return {"LEOFS_INTERNAL_TLS_CERT": str(cert), "LEOFS_INTERNAL_TLS_KEY": str(key),
            "LEOFS_INTERNAL_TLS_CA": str(ca)}  # fmt: skip
