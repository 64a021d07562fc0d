"""Was every client told the truth? Linearizability of a key-value history.

A history (virtraft.check.history) is linearizable when its operations can
be put in one order that (a) respects real time: an operation that completed
before another was invoked comes first, and (b) is a legal run of a
sequential key-value store: each read returns the last write, each
compare-and-set swaps exactly when the value was the expected one.

The search is Wing & Gong's, with Lowe's memoisation, as Porcupine does it:
walk the operations in time order, linearize any pending call whose
effect is legal now, backtrack when a return is reached whose call could
not be placed, and never revisit a (set of linearized operations, store
state) pair. Keys are independent (linearizability is compositional:
Herlihy & Wing 1990), so each key is searched alone, which turns one search
exponential in the history into many small ones.

Outcomes: an operation that failed ("fail") took no effect and is left out;
one whose outcome is unknown may have taken effect at any point after its
invocation, or never: its return is placed at the end of time. An unknown
read cannot change what anyone saw, so it is left out too.

The search can be exponential on adversarial histories; a step budget turns
that into the verdict "unknown" instead of running forever.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from virtraft.check.history import Operation, Scalar

DEFAULT_MAX_STEPS = 2_000_000  # search steps over all keys


@dataclass(frozen=True, slots=True)
class KeyVerdict:
    """Why one key's operations admit no linear order."""

    key: str
    operations: int
    # The longest legal order the search found, and the operation that could
    # not follow it (the first return whose call has no legal place).
    longest: tuple[Operation, ...]
    stuck: Operation

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "operations": self.operations,
            "longest": [o.to_json() for o in self.longest],
            "stuck": self.stuck.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Linearizability:
    verdict: str  # "ok", "violation" or "unknown"
    reason: str
    operations: int  # operations checked (failed and unknown reads left out)
    keys: int
    steps: int  # search steps spent
    failures: tuple[KeyVerdict, ...] = ()
    undecided: tuple[str, ...] = ()  # keys the budget ran out on

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "operations": self.operations,
            "keys": self.keys,
            "steps": self.steps,
            "failures": [f.to_json() for f in self.failures],
            "undecided": list(self.undecided),
        }


def check_history(
    operations: Iterable[Operation], max_steps: int = DEFAULT_MAX_STEPS
) -> Linearizability:
    """Decide whether the history is linearizable, key by key."""
    by_key: dict[str, list[Operation]] = {}
    for operation in operations:
        if operation.status == "fail" or (operation.op == "read" and operation.status != "ok"):
            continue
        by_key.setdefault(operation.key, []).append(operation)
    failures: list[KeyVerdict] = []
    undecided: list[str] = []
    spent = 0
    for key in sorted(by_key):
        search = _Search(by_key[key], max(0, max_steps - spent))
        outcome = search.run()
        spent += search.steps
        if outcome is None:
            undecided.append(key)
        elif outcome is not True:
            failures.append(outcome)
    counted = sum(len(ops) for ops in by_key.values())
    if failures:
        first = failures[0]
        reason = (
            f"key {first.key!r}: {first.stuck.text()} has no legal place after "
            f"{len(first.longest)} of its {first.operations} operations"
        )
        verdict = "violation"
    elif undecided:
        reason = f"the search budget ({max_steps} steps) ran out on keys {', '.join(undecided)}"
        verdict = "unknown"
    else:
        reason = f"{counted} operations on {len(by_key)} keys have a linear order"
        verdict = "ok"
    return Linearizability(
        verdict, reason, counted, len(by_key), spent, tuple(failures), tuple(undecided)
    )


def _same(a: Scalar, b: Scalar) -> bool:
    """JSON equality: true is not 1."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def apply(state: Scalar, operation: Operation) -> tuple[bool, Scalar]:
    """The sequential store: whether `operation` could return what it returned
    in `state`, and the state after it."""
    op = operation.op
    if op == "read":
        return _same(operation.output, state), state
    if op == "write":
        return True, operation.value
    swaps = _same(state, operation.expected)
    if operation.status != "ok":  # unknown: whichever happened, it is legal
        return True, operation.value if swaps else state
    if operation.output is True:
        return swaps, operation.value
    return not swaps, state


class _Search:
    """Wing & Gong with Lowe's cache over one key's operations.

    Entries are the operations' calls and returns in time order (a call
    before a return at the same time: operations that touch are concurrent),
    threaded on a doubly linked list held in arrays; linearizing a call
    lifts it and its return out of the list, backtracking puts them back."""

    def __init__(self, operations: Sequence[Operation], max_steps: int) -> None:
        self.operations = list(operations)
        self.max_steps = max_steps
        self.steps = 0
        count = len(self.operations)
        # Entry 2i is operation i's call, 2i + 1 its return; 2n is the head.
        order = sorted(
            range(2 * count),
            key=lambda e: (
                self.operations[e // 2].invoke if e % 2 == 0 else self.operations[e // 2].complete,
                e % 2,
                e // 2,
            ),
        )
        self.head = 2 * count
        self.next = [-1] * (2 * count + 1)
        self.prev = [-1] * (2 * count + 1)
        last = self.head
        for entry in order:
            self.next[last] = entry
            self.prev[entry] = last
            last = entry

    def _lift(self, call: int) -> None:
        nxt, prv = self.next, self.prev
        for entry in (call, call + 1):
            nxt[prv[entry]] = nxt[entry]
            if nxt[entry] != -1:
                prv[nxt[entry]] = prv[entry]

    def _unlift(self, call: int) -> None:
        nxt, prv = self.next, self.prev
        for entry in (call + 1, call):
            nxt[prv[entry]] = entry
            if nxt[entry] != -1:
                prv[nxt[entry]] = entry

    def run(self) -> bool | KeyVerdict | None:
        """True, the reason it is not linearizable, or None out of budget."""
        operations = self.operations
        nxt = self.next
        head = self.head
        state: Scalar = None
        linearized = 0
        seen: set[tuple[int, Any]] = set()
        calls: list[tuple[int, Scalar]] = []  # (call entry, state before it)
        best: list[int] = []
        stuck = -1
        entry = nxt[head]
        steps = 0
        while nxt[head] != -1:
            steps += 1
            if steps > self.max_steps:
                self.steps = steps
                return None
            if entry % 2 == 0:  # a call: try to linearize it now
                legal, after = apply(state, operations[entry // 2])
                if legal:
                    marked = linearized | (1 << (entry // 2))
                    if (marked, after) not in seen:
                        seen.add((marked, after))
                        calls.append((entry, state))
                        state, linearized = after, marked
                        self._lift(entry)
                        entry = nxt[head]
                        continue
                entry = nxt[entry]
            else:  # a return whose call is not linearized: undo the last choice
                if len(calls) > len(best) or stuck == -1:
                    best = [call for call, _ in calls]
                    stuck = entry - 1
                if not calls:
                    self.steps = steps
                    return self._verdict(best, stuck)
                call, state = calls.pop()
                linearized &= ~(1 << (call // 2))
                self._unlift(call)
                entry = nxt[call]
        self.steps = steps
        return True

    def _verdict(self, best: list[int], stuck: int) -> KeyVerdict:
        operations = self.operations
        return KeyVerdict(
            operations[0].key,
            len(operations),
            tuple(operations[call // 2] for call in best),
            operations[stuck // 2],
        )


def brute_force(operations: Iterable[Operation]) -> bool:
    """Every order of every key's operations, for testing the search on
    small histories: True when some order is legal and respects real time."""
    by_key: dict[str, list[Operation]] = {}
    for operation in operations:
        if operation.status == "fail" or (operation.op == "read" and operation.status != "ok"):
            continue
        by_key.setdefault(operation.key, []).append(operation)
    return all(_some_order(ops, None) for ops in by_key.values())


def _some_order(remaining: list[Operation], state: Scalar) -> bool:
    if not remaining:
        return True
    # The next operation must be invoked before every other remaining one completed.
    deadline = min(o.complete for o in remaining)
    for i, operation in enumerate(remaining):
        if operation.invoke > deadline:
            continue
        legal, after = apply(state, operation)
        if legal and _some_order(remaining[:i] + remaining[i + 1 :], after):
            return True
    return False
