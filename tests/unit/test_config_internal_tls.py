"""The internal TLS options: one shared variable per file serves every cluster role; the role's own wins."""

from __future__ import annotations

from leofs.config import resolve


def test_the_shared_internal_tls_variables_serve_every_cluster_role() -> None:
    shared = {"LEOFS_INTERNAL_TLS_CERT": "/c.pem", "LEOFS_INTERNAL_TLS_KEY": "/c.key", "LEOFS_INTERNAL_TLS_CA": "/ca"}
    for section in ("manager", "storage", "gateway"):
        opts = resolve(section, None, shared, {})
        assert (opts.internal_tls_cert, opts.internal_tls_key, opts.internal_tls_ca) == ("/c.pem", "/c.key", "/ca")
    own = dict(shared, LEOFS_STORAGE_INTERNAL_TLS_CERT="/node.pem")
    assert resolve("storage", None, own, {}).internal_tls_cert == "/node.pem"
    assert resolve("storage", None, own, {"internal_tls_cert": "/flag.pem"}).internal_tls_cert == "/flag.pem"
    assert resolve("manager", None, {}, {}).internal_tls_cert is None  # off by default
