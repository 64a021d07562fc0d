"""The events a simulation applied, kept compactly: a run of 10^6 events must
not hold 10^6 event objects (about 100 bytes each) to be able to write its
trace, shrink or report at the end.

`EventLog` is a sequence of events. The newest `CHUNK` are kept as objects
(appending one costs what a list append does, plus a length check); each
full chunk is sealed: every event becomes a tuple of plain values (its kind,
then its fields, the in-memory envelope id `ref` included, so a
replay of the log behaves as a replay of the objects did), and the chunk is
marshalled and compressed, about 10 bytes an event. Reading decodes a chunk
at a time and keeps the last one decoded, so a scan or a slice costs one
decode per chunk.
"""

from __future__ import annotations

import marshal
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import fields
from operator import attrgetter
from typing import Any, overload

from virtraft.adapter import MembershipChange
from virtraft.sim.events import EVENT_TYPES, MESSAGE_EVENTS, ChangeMembership, Event

CHUNK = 4096
"""Events per sealed chunk: large enough for zlib to find the repetition,
small enough that the unsealed tail and one decoded chunk stay small."""

_LEVEL = 1
"""zlib's fastest level: sealing runs inside the run, on its hot path."""

# Each event as a tuple of plain values, read in C: its kind's name, then
# every field in declaration order (`ref` too): what the class's __init__ takes.
_ROW: dict[type, Callable[[Any], tuple[Any, ...]]] = {
    cls: attrgetter("kind", *(f.name for f in fields(cls))) for cls in EVENT_TYPES.values()
}


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row marshal can store: a membership change as its value, a ref the
    simulator did not make (not an int) as None, as a trace file has it."""
    kind = row[0]
    if kind == ChangeMembership.kind:
        return (kind, row[1], MembershipChange(row[2]).value, row[3])
    if EVENT_TYPES[kind] in MESSAGE_EVENTS and type(row[-1]) is not int:
        return (*row[:-1], None)
    return row


def _decode(row: tuple[Any, ...]) -> Event:
    cls = EVENT_TYPES[row[0]]
    if cls is ChangeMembership:
        return ChangeMembership(row[1], MembershipChange(row[2]), row[3])
    return cls(*row[1:])


def _seal(events: list[Event]) -> bytes:
    rows = [_ROW[type(e)](e) for e in events]
    try:
        data = marshal.dumps(rows)
    except ValueError:  # a membership change, or a foreign ref: in a rare chunk
        data = marshal.dumps([_plain(row) for row in rows])
    return zlib.compress(data, _LEVEL)


def _unseal(chunk: bytes) -> list[Event]:
    return [_decode(row) for row in marshal.loads(zlib.decompress(chunk))]


class EventLog(Sequence[Event]):
    """The events of one run, in order, compactly (see the module's docstring)."""

    __slots__ = ("_sealed", "_tail", "_cached", "_cached_at")

    def __init__(self, events: Sequence[Event] = ()) -> None:
        self._sealed: list[bytes] = []
        self._tail: list[Event] = []
        self._cached: list[Event] = []  # the last chunk decoded,
        self._cached_at = -1  # and its number
        for event in events:
            self.append(event)

    def append(self, event: Event) -> None:
        tail = self._tail
        tail.append(event)
        if len(tail) >= CHUNK:
            self._sealed.append(_seal(tail))
            self._tail = []

    def __len__(self) -> int:
        return len(self._sealed) * CHUNK + len(self._tail)

    def _chunk(self, number: int) -> list[Event]:
        if number == len(self._sealed):
            return self._tail
        if number != self._cached_at:
            self._cached = _unseal(self._sealed[number])
            self._cached_at = number
        return self._cached

    @overload
    def __getitem__(self, index: int) -> Event: ...
    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...
    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        if isinstance(index, slice):
            start, stop, stride = index.indices(len(self))
            if stride != 1:
                return [self[i] for i in range(start, stop, stride)]
            out: list[Event] = []
            while start < stop:
                number, offset = divmod(start, CHUNK)
                chunk = self._chunk(number)
                take = min(stop - start, len(chunk) - offset)
                out.extend(chunk[offset : offset + take])
                start += take
            return out
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("event index out of range")
        number, offset = divmod(index, CHUNK)
        return self._chunk(number)[offset]

    def __iter__(self) -> Iterator[Event]:
        # Sealed chunks are decoded one at a time, without the cache: a scan
        # must not evict the chunk a reader by index is using.
        for chunk in self._sealed:
            yield from _unseal(chunk)
        yield from self._tail

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EventLog | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a list is

    def __repr__(self) -> str:
        return f"EventLog({len(self)} events, {len(self._sealed)} chunks sealed)"

    def sealed_bytes(self) -> int:
        """Bytes the sealed chunks hold (for benchmarks)."""
        return sum(len(chunk) for chunk in self._sealed)
