"""A server's simulated disk: what survives a crash.

Writes are synchronous (each callback returns once durable), so after a
crash the disk holds exactly what the server was told was stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raftcore import Entry, Snapshot


@dataclass(slots=True)
class Disk:
    term: int = 0
    voted_for: int | None = None
    # Log entries by index, after the snapshot (if any).
    entries: dict[int, Entry] = field(default_factory=dict)
    last_index: int = 0
    snapshot: Snapshot | None = None
    writes: int = 0

    def store_term(self, term: int, voted_for: int | None) -> None:
        self.term = term
        self.voted_for = voted_for
        self.writes += 1

    def store_vote(self, voted_for: int | None) -> None:
        self.voted_for = voted_for
        self.writes += 1

    def append(self, entry: Entry, index: int) -> None:
        assert index == self.last_index + 1, f"disk append at {index}, last is {self.last_index}"
        self.entries[index] = entry
        self.last_index = index
        self.writes += 1

    def pop(self, index: int) -> None:
        assert index == self.last_index, f"disk pop at {index}, last is {self.last_index}"
        del self.entries[index]
        self.last_index -= 1
        self.writes += 1

    def poll(self, index: int) -> None:
        del self.entries[index]
        self.writes += 1

    def store_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        if self.last_index < snapshot.last_index:
            self.last_index = snapshot.last_index
        self.writes += 1

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
