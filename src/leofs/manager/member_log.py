"""Which members changed since a members version: what a heartbeat answer carries.

Every change of a member as the manager answers it (state, address, reported ring hashes, ...) and
every removal takes the next members version. A member sends the ``(epoch, version)`` it holds with
each heartbeat; the answer carries only the members changed since, found in O(changes) by walking
the log from its newest end. The epoch is random per manager process: versions start again at 0
after a restart, and a member holding another epoch gets the whole list.
"""

from __future__ import annotations

import secrets

#: removals remembered before the log forgets them (members asking from before get the whole list)
KEEP_REMOVED = 1000


class MemberLog:
    """The members version, and the version at which each member last changed (newest last)."""

    def __init__(self, *, keep_removed: int = KEEP_REMOVED) -> None:
        self.epoch = secrets.token_hex(8)
        self.version = 0
        #: deltas since a version below this one are not known (removals forgotten): whole list
        self.floor = 0
        self.keep_removed = keep_removed
        self._log: dict[str, tuple[int, bool]] = {}  # name -> (version of its last change, removed)
        self._removed = 0

    def changed(self, name: str) -> None:
        """``name`` was added or changed."""
        self._record(name, False)

    def removed(self, name: str) -> None:
        """``name`` left the member table."""
        self._record(name, True)
        self._removed += 1
        if self._removed > self.keep_removed:
            # rare (forgotten gateways): drop every removal, and the deltas that would need them
            self._log = {n: e for n, e in self._log.items() if not e[1]}
            self._removed = 0
            self.floor = self.version

    def _record(self, name: str, gone: bool) -> None:
        old = self._log.pop(name, None)
        if old is not None and old[1]:
            self._removed -= 1
        self.version += 1
        self._log[name] = (self.version, gone)

    def since(self, epoch: str, version: int) -> tuple[list[str], list[str]] | None:
        """(changed, removed) member names since ``version`` of ``epoch``, or None when only the
        whole list is right (another epoch, or a version this log cannot answer for)."""
        if epoch != self.epoch or not self.floor <= version <= self.version:
            return None
        changed: list[str] = []
        removed: list[str] = []
        for name in reversed(self._log):
            at, gone = self._log[name]
            if at <= version:
                break
            (removed if gone else changed).append(name)
        return changed, removed
