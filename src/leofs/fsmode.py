"""Private files on disk: every directory a leofs process keeps data in is 0700, every file 0600.

The data directories hold every user's secret key (the manager database and its WAL), every object
(the logs and the index) and the cluster secret: no other local user may read them. Files that a
process creates itself are private because each role sets the umask to 0077 first (SQLite creates
its ``-wal`` and ``-shm`` files itself, with the umask); :func:`make_private_dir` also fixes the modes
of a tree that already exists (created by an older version, or copied in with other modes).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_umask() -> None:
    """Make every file and directory this process creates from now on private to its user."""
    os.umask(PRIVATE_UMASK)


def make_private(path: Path) -> None:
    """Give one existing file 0600 (a directory 0700); symlinks and missing paths are left alone."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        return
    wanted = DIR_MODE if stat.S_ISDIR(st.st_mode) else FILE_MODE
    if stat.S_IMODE(st.st_mode) != wanted:
        # another user's file (a shared tree): not ours to change, and not fatal to open
        with contextlib.suppress(PermissionError):
            os.chmod(path, wanted)


def make_private_sqlite(path: Path) -> None:
    """Fix the modes of an SQLite database and the WAL and shared-memory files next to it."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        make_private(Path(f"{path}{suffix}"))


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as private directories, and fix the modes of
    everything already inside it: directories 0700, files 0600. Also sets the private umask."""
    private_umask()
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    make_private(path)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            make_private(Path(root, name))
    return path


def check_private_file(path: Path) -> None:
    """ValueError unless ``path`` is a file only its owner may read or write (a private key): a key
    other local users can read is no longer a secret, so a role refuses to start with it."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise ValueError(f"{path} is accessible to other users (mode {mode:04o}); chmod 600 it")
