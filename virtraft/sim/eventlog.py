"""The events a simulation applied, kept compactly: a run of 10^6 events must
not hold 10^6 event objects (about 100 bytes each) to be able to write its
trace, shrink or report at the end.

`EventLog` is a sequence of events. The newest `CHUNK` are kept as objects
(appending one costs what a list append does, plus a length check); each
full chunk is sealed: every event becomes a tuple of plain values (its kind's
number, then its fields, the in-memory envelope id `ref` included, so a
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

_CLASSES: tuple[type, ...] = tuple(EVENT_TYPES.values())
_CODE: dict[type, int] = {cls: code for code, cls in enumerate(_CLASSES)}
# Every field, `ref` too, in declaration order: what the class's __init__ takes.
_GETTERS: dict[type, Callable[[Any], Any]] = {
    cls: attrgetter(*(f.name for f in fields(cls))) for cls in _CLASSES
}
_SINGLE = frozenset(cls for cls in _CLASSES if len(fields(cls)) == 1)


def _encode(event: Event) -> tuple[Any, ...]:
    """One event as marshal-able values: its kind's number, then its fields."""
    cls = type(event)
    values = _GETTERS[cls](event)
    if cls in _SINGLE:
        return (_CODE[cls], values)
    if cls is ChangeMembership:
        return (_CODE[cls], values[0], values[1].value, values[2])
    if isinstance(event, MESSAGE_EVENTS) and type(event.ref) is not int:
        values = (*values[:-1], None)  # a ref the simulator did not make: as a trace has it
    return (_CODE[cls], *values)


def _decode(record: tuple[Any, ...]) -> Event:
    cls = _CLASSES[record[0]]
    if cls is ChangeMembership:
        return ChangeMembership(record[1], MembershipChange(record[2]), record[3])
    return cls(*record[1:])


def _seal(events: list[Event]) -> bytes:
    return zlib.compress(marshal.dumps([_encode(e) for e in events]), _LEVEL)


def _unseal(chunk: bytes) -> list[Event]:
    return [_decode(r) for r in marshal.loads(zlib.decompress(chunk))]


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
