"""Exactly-once commands: client sessions (Raft dissertation §6.3).

A client that times out retries, and the first attempt may have committed:
without sessions the state machine applies the command twice. Each client
numbers its commands; the state machine remembers, per client, the highest
number it applied and that command's result, and answers a retry from
memory instead of applying it again. Every server applies the same log, so
every server keeps the same sessions.

What is left out: sessions never expire (the dissertation expires them by
an agreed clock, §6.3); a client must number its commands in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Sessions:
    last: dict[Any, tuple[int, Any]] = field(default_factory=dict)  # client -> (seq, result)

    def apply(self, client: Any, seq: int, command: Callable[[], T]) -> tuple[bool, T]:
        """Run `command` unless this client's command `seq` (or a later one)
        was applied already; (applied now, its result)."""
        seen = self.last.get(client)
        if seen is not None and seq <= seen[0]:
            return False, seen[1]
        result = command()
        self.last[client] = (seq, result)
        return True, result
