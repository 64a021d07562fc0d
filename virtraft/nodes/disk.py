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

_HOLE: Any = object()


class EntryRun:
    """Log entries by index, held as a dict of them would hold them, in a list.

    A log is a run of consecutive indices, so a list from `start` costs 8
    bytes an entry where a dict costs about 80 (its slot and an int key):
    every server of a long run that never compacts keeps its whole log here.
    Indices outside the run open holes (a dict has no order to keep); polls
    from the front are holes counted in `_lead` and cut off in bulk, so
    compaction stays linear."""

    __slots__ = ("_items", "_lead", "_size", "_start")

    def __init__(self) -> None:
        self._items: list[Any] = []  # _items[p] is the entry at _start + p, or _HOLE
        self._start = 0
        self._lead = 0  # holes at the front of _items
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def get(self, index: int) -> Entry | None:
        p = index - self._start
        if 0 <= p < len(self._items):
            item = self._items[p]
            return None if item is _HOLE else item
        return None

    def __setitem__(self, index: int, entry: Entry) -> None:
        items = self._items
        if not self._size:
            items.clear()
            self._start, self._lead = index, 0
        p = index - self._start
        if p < 0:  # before the run: open holes downwards
            items[:0] = [_HOLE] * -p
            self._start, self._lead, p = index, self._lead - p, 0
        elif p >= len(items):
            items.extend([_HOLE] * (p - len(items) + 1))
        if items[p] is _HOLE:
            self._size += 1
            if p < self._lead:
                self._lead = p
        items[p] = entry

    def __delitem__(self, index: int) -> None:
        items = self._items
        p = index - self._start
        if not 0 <= p < len(items) or items[p] is _HOLE:
            raise KeyError(index)
        items[p] = _HOLE
        self._size -= 1
        while items and items[-1] is _HOLE:
            items.pop()
        lead = self._lead if items else 0
        while lead < len(items) and items[lead] is _HOLE:
            lead += 1
        if lead > 64 and 2 * lead > len(items):
            del items[:lead]
            self._start += lead
            lead = 0
        self._lead = lead


@dataclass(slots=True)
class Disk:
    term: int = 0
    voted_for: int | None = None
    # Log entries by index, after the snapshot (if any).
    entries: EntryRun = field(default_factory=EntryRun)
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
        get = self.entries.get
        log = [get(i) for i in range(first, self.last_index + 1)]
        assert None not in log, f"the disk's log has holes after index {first - 1}"
        return log  # type: ignore[return-value]
