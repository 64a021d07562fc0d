"""`messages.quick_init`: a message made through it is the message dataclass
would make. Each case is run on two twins, one with dataclass's own
__init__ and one with quick_init's, and what they give must match: the
object (repr, equality, fields), or the error (type and text)."""

from __future__ import annotations

import copy
import dataclasses
import inspect
from typing import Any

import pytest

from raftcore.messages import EntryType, quick_init


def _twins() -> tuple[type, type]:
    """The same class twice, as the messages are declared (a frozen, slotted
    dataclass with defaults), once with quick_init."""

    def declare() -> type:
        @dataclasses.dataclass(frozen=True, slots=True)
        class Twin:
            term: int
            id: int
            type: EntryType | int = EntryType.NORMAL
            data: Any = None

        return Twin

    return declare(), quick_init(declare())


CASES = [
    ((1, 2), {}),
    ((1, 2, EntryType.NOOP, b"x"), {}),
    ((1,), {"id": 2, "data": (3,)}),
    ((), {"term": 1, "id": 2}),
    ((1,), {}),  # a field missing
    ((1, 2, 3, 4, 5), {}),  # one too many
    ((1, 2), {"term": 3}),  # given twice
    ((1, 2), {"colour": 3}),  # not a field
]


@pytest.mark.parametrize(("args", "kwargs"), CASES)
def test_quick_init_makes_what_dataclass_makes(args: tuple, kwargs: dict) -> None:
    plain, quick = _twins()
    outcomes = []
    for cls in (plain, quick):
        try:
            made = cls(*args, **kwargs)
        except TypeError as exc:
            outcomes.append(("TypeError", str(exc)))
            continue
        outcomes.append((repr(made), dataclasses.astuple(made), made == cls(*args, **kwargs)))
    assert outcomes[0] == outcomes[1]


def test_quick_init_keeps_the_class_frozen_and_its_signature() -> None:
    plain, quick = _twins()
    made = quick(1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.term = 3  # type: ignore[misc]
    assert copy.deepcopy(made) == made
    assert dataclasses.replace(made, id=5) == quick(1, 5)
    assert inspect.signature(quick) == inspect.signature(plain)
    assert quick.__init__.__qualname__ == plain.__init__.__qualname__


def test_quick_init_refuses_what_it_cannot_copy() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        items: list = dataclasses.field(default_factory=list)

    with pytest.raises(AssertionError):
        quick_init(WithFactory)
