"""The in-memory log: entries after a compacted prefix (the snapshot)."""

from __future__ import annotations

from raftcore.messages import Entry


class Log:
    """Entries base_index+1 .. last_index; base_index/base_term describe the
    last compacted entry (0/0 when nothing was compacted)."""

    __slots__ = ("_entries", "base_index", "base_term")

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self.base_index = 0
        self.base_term = 0

    @property
    def last_index(self) -> int:
        return self.base_index + len(self._entries)

    @property
    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else self.base_term

    def term_at(self, index: int) -> int | None:
        """Term of the entry at index; None when it is compacted or absent."""
        if index == self.base_index:
            return self.base_term
        pos = index - self.base_index - 1
        if pos < 0 or pos >= len(self._entries):
            return None
        return self._entries[pos].term

    def get(self, index: int) -> Entry | None:
        pos = index - self.base_index - 1
        if pos < 0 or pos >= len(self._entries):
            return None
        return self._entries[pos]

    def slice(self, first: int, limit: int) -> tuple[Entry, ...]:
        """Up to `limit` entries from index `first` (which must be held)."""
        assert first > self.base_index
        pos = first - self.base_index - 1
        return tuple(self._entries[pos : pos + limit])

    def append(self, entry: Entry) -> int:
        self._entries.append(entry)
        return self.last_index

    def pop(self) -> Entry:
        """Remove the youngest entry."""
        return self._entries.pop()

    def compact(self, index: int) -> list[Entry]:
        """Remove the eldest entries through `index` (which must be held)."""
        assert self.base_index < index <= self.last_index
        count = index - self.base_index
        removed = self._entries[:count]
        del self._entries[:count]
        self.base_index = index
        self.base_term = removed[-1].term
        return removed

    def reset(self, base_index: int, base_term: int) -> None:
        """Forget every entry; the log now starts after base_index."""
        self._entries.clear()
        self.base_index = base_index
        self.base_term = base_term

    def entries_after(self, index: int) -> list[Entry]:
        pos = max(0, index - self.base_index)
        return self._entries[pos:]
