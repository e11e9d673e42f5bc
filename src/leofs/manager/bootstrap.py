"""First-start helpers shared by the embedded server and the manager: secrets and root keys on disk."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from leofs.accounts import ROLE_ADMIN
from leofs.manager.store import ManagerStore, generate_keys

ROOT_USER = "root"


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_secret(data_dir: Path, explicit: str | None = None) -> tuple[str, bool]:
    """(secret, generated now): ``explicit``, else LEOFS_CLUSTER_SECRET, else DIR/cluster-secret.

    When none exists a new secret is generated and saved in DIR/cluster-secret (mode 0600).
    """
    if explicit:
        return explicit, False
    env = os.environ.get("LEOFS_CLUSTER_SECRET")
    if env:
        return env, False
    path = data_dir / "cluster-secret"
    if path.exists():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    write_private(path, secret + "\n")
    return secret, True


def remember_secret(data_dir: Path, secret: str) -> None:
    """Save a secret that came from the option or the environment in DIR/cluster-secret (0600), so
    that ``leofs adm --data DIR`` finds it later in a shell without LEOFS_CLUSTER_SECRET."""
    path = data_dir / "cluster-secret"
    if path.exists() and path.read_text().strip() == secret:
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    write_private(path, secret + "\n")


def cluster_secret(data_dir: Path) -> str:
    """LEOFS_CLUSTER_SECRET, or the secret saved in DIR (generated on first start)."""
    return load_secret(data_dir)[0]


def root_credentials(data_dir: Path) -> tuple[str, str, bool]:
    """(access key, secret key, generated now) of the root user."""
    access = os.environ.get("LEOFS_ROOT_ACCESS_KEY")
    secret = os.environ.get("LEOFS_ROOT_SECRET_KEY")
    if access and secret:
        return access, secret, False
    path = data_dir / "credentials.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return str(saved["access_key"]), str(saved["secret_key"]), False
    access, secret = generate_keys(ROOT_USER)
    write_private(path, json.dumps({"access_key": access, "secret_key": secret}) + "\n")
    return access, secret, True


def ensure_root(store: ManagerStore, access: str, secret: str) -> None:
    """Make the root user carry exactly these keys."""
    for user in store.users():
        if user.user_id == ROOT_USER:
            if (user.access_key, user.secret_key) == (access, secret):
                return
            store.delete_user(ROOT_USER)
    store.create_user(ROOT_USER, access_key=access, secret_key=secret, role=ROLE_ADMIN)


def root_keys_lines(data_dir: Path, access: str, secret: str, generated: bool) -> list[str]:
    """What a server prints about the root S3 keys: the pasteable ``export`` line when they were
    generated now, else where they are kept."""
    path = data_dir / "credentials.json"
    if generated:
        return [f"Root S3 keys generated and saved in {path} (mode 0600); paste this line to use them:",
                f"export AWS_ACCESS_KEY_ID={access} AWS_SECRET_ACCESS_KEY={secret}"]
    if os.environ.get("LEOFS_ROOT_ACCESS_KEY") and os.environ.get("LEOFS_ROOT_SECRET_KEY"):
        return ["Root S3 keys: from LEOFS_ROOT_ACCESS_KEY / LEOFS_ROOT_SECRET_KEY"]
    return [f"Root S3 keys: kept in {path} (access_key, secret_key)"]
