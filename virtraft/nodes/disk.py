"""A server's simulated disk: what survives a crash.

Writes land in a volatile buffer (a page cache) and become durable when the
server syncs (`sync`, raftcore's `Callbacks.sync`). A plain crash is a
process crash: the buffer reaches the disk all the same, so the disk holds
everything the server was told was stored. A lossy crash is a power cut
(`lose_unsynced`): the writes since the last sync are lost, except a prefix
of them (disks write in order), so a server that replies before it syncs
can forget what it promised.

The durable state is the fields below; the buffer is `unsynced`, applied in
order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from raftcore import Entry, Snapshot


@dataclass(slots=True)
class Disk:
    term: int = 0
    voted_for: int | None = None
    # Log entries by index, after the snapshot (if any).
    entries: dict[int, Entry] = field(default_factory=dict)
    last_index: int = 0
    snapshot: Snapshot | None = None
    # Writes asked for, synced or not (for reports).
    writes: int = 0
    # Writes not yet durable, oldest first: (what it does, its arguments).
    unsynced: list[tuple[Callable[..., None], tuple[Any, ...]]] = field(default_factory=list)

    # ------------------------------------------------------------ the server's writes

    def store_term(self, term: int, voted_for: int | None) -> None:
        self._write(Disk._set_term, term, voted_for)

    def store_vote(self, voted_for: int | None) -> None:
        self._write(Disk._set_vote, voted_for)

    def append(self, entry: Entry, index: int) -> None:
        self._write(Disk._append, entry, index)

    def pop(self, index: int) -> None:
        self._write(Disk._pop, index)

    def poll(self, index: int) -> None:
        self._write(Disk._poll, index)

    def store_snapshot(self, snapshot: Snapshot) -> None:
        self._write(Disk._set_snapshot, snapshot)

    def _write(self, op: Callable[..., None], *args: Any) -> None:
        self.writes += 1
        self.unsynced.append((op, args))

    # ------------------------------------------------------------ durability

    def sync(self) -> None:
        """Every write so far becomes durable (fsync)."""
        if self.unsynced:
            self._apply(len(self.unsynced))

    def lose_unsynced(self, keep: float) -> int:
        """A power cut: of the writes since the last sync, the first
        floor(keep * their number) reach the disk and the rest are lost.
        Returns how many were lost."""
        assert 0.0 <= keep <= 1.0, keep
        kept = int(len(self.unsynced) * keep)
        lost = len(self.unsynced) - kept
        self._apply(kept)
        self.unsynced.clear()
        return lost

    def _apply(self, count: int) -> None:
        writes = self.unsynced
        for op, args in writes[:count]:
            op(self, *args)
        del writes[:count]

    def _set_term(self, term: int, voted_for: int | None) -> None:
        self.term = term
        self.voted_for = voted_for

    def _set_vote(self, voted_for: int | None) -> None:
        self.voted_for = voted_for

    def _append(self, entry: Entry, index: int) -> None:
        assert index == self.last_index + 1, f"disk append at {index}, last is {self.last_index}"
        self.entries[index] = entry
        self.last_index = index

    def _pop(self, index: int) -> None:
        assert index == self.last_index, f"disk pop at {index}, last is {self.last_index}"
        del self.entries[index]
        self.last_index -= 1

    def _poll(self, index: int) -> None:
        del self.entries[index]

    def _set_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        if self.last_index < snapshot.last_index:
            self.last_index = snapshot.last_index

    # ------------------------------------------------------------ reading (durable state)

    @property
    def snapshot_index(self) -> int:
        return self.snapshot.last_index if self.snapshot else 0

    @property
    def snapshot_term(self) -> int:
        return self.snapshot.last_term if self.snapshot else 0

    def log(self) -> list[Entry]:
        """The entries after the snapshot, in index order."""
        first = self.snapshot_index + 1
        return [self.entries[i] for i in range(first, self.last_index + 1)]
