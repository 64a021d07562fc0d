"""The in-memory log: entries after a compacted prefix (the snapshot)."""

from __future__ import annotations

import bisect

from raftcore.messages import Entry


class Log:
    """Entries base_index+1 .. last_index; base_index/base_term describe the
    last compacted entry (0/0 when nothing was compacted)."""

    __slots__ = ("_entries", "base_index", "base_term", "last_index", "_compacted_terms")

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self.base_index = 0
        self.base_term = 0
        # Invariant: last_index == base_index + len(_entries). Kept as a field,
        # not computed: it is read several times per message.
        self.last_index = 0
        # Terms of the compacted entries, one (first index, term) per run of
        # equal terms, so that a client can still learn whether its entry was
        # the one committed at its index. A term of None covers indexes whose
        # terms this server never held (a snapshot received or restarted from).
        self._compacted_terms: list[tuple[int, int | None]] = []

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
        self.last_index += 1
        return self.last_index

    def pop(self) -> Entry:
        """Remove the youngest entry."""
        entry = self._entries.pop()
        self.last_index -= 1
        return entry

    def compact(self, index: int) -> list[Entry]:
        """Remove the eldest entries through `index` (which must be held)."""
        assert self.base_index < index <= self.last_index
        count = index - self.base_index
        removed = self._entries[:count]
        del self._entries[:count]
        for offset, entry in enumerate(removed):
            self._note_compacted(self.base_index + 1 + offset, entry.term)
        self.base_index = index
        self.base_term = removed[-1].term
        return removed

    def reset(self, base_index: int, base_term: int) -> None:
        """Forget every entry; the log now starts after base_index."""
        self._entries.clear()
        if base_index > self.base_index + 1:
            self._note_compacted(self.base_index + 1, None)
        if base_index > self.base_index:
            self._note_compacted(base_index, base_term)
        self.base_index = base_index
        self.base_term = base_term
        self.last_index = base_index

    def _note_compacted(self, index: int, term: int | None) -> None:
        runs = self._compacted_terms
        if not runs or runs[-1][1] != term:
            runs.append((index, term))

    def compacted_term(self, index: int) -> int | None:
        """Term of the compacted entry at index; None when it is not compacted
        or its term is unknown here."""
        if not 0 < index <= self.base_index:
            return None
        run = bisect.bisect_right(self._compacted_terms, index, key=lambda r: r[0]) - 1
        return self._compacted_terms[run][1] if run >= 0 else None

    def entries_after(self, index: int) -> list[Entry]:
        pos = max(0, index - self.base_index)
        return self._entries[pos:]
