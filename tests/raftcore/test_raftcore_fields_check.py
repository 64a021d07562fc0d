"""`validation.fields_check` refuses what the per-field checks refuse, with
the same error: for any values, checking a message with it raises what
calling `check_int` / `check_bool` on each field in turn raises first (or
nothing when they all pass)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftcore.errors import InvalidMessage
from raftcore.validation import check_bool, check_int, fields_check

KINDS = {"term": int, "success": bool, "match_index": int, "read_round": int}
check = fields_check(**KINDS)

_VALUE = st.one_of(
    st.integers(-3, 3), st.booleans(), st.none(), st.floats(-1, 1), st.text(max_size=2)
)


def _one_by_one(msg: SimpleNamespace) -> str | None:
    """What the checks field by field say: the first error, or None."""
    try:
        for name, kind in KINDS.items():
            (check_int if kind is int else check_bool)(getattr(msg, name), name)
    except InvalidMessage as exc:
        return str(exc)
    return None


def _fields_check(msg: SimpleNamespace) -> str | None:
    try:
        check(msg)
    except InvalidMessage as exc:
        return str(exc)
    return None


@given(st.fixed_dictionaries({name: _VALUE for name in KINDS}))
def test_fields_check_says_what_each_field_check_says(values: dict) -> None:
    msg = SimpleNamespace(**values)
    assert _fields_check(msg) == _one_by_one(msg)


VALID = {int: 0, bool: False}
ODD_VALUES = [-1, 0, 1, True, False, None, 0.0, 1.5, "0", b"", (0,)]


@pytest.mark.parametrize("name", list(KINDS))
@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_fields_check_judges_each_field_as_its_check(name: str, value: object) -> None:
    msg = SimpleNamespace(**{each: VALID[kind] for each, kind in KINDS.items()})
    setattr(msg, name, value)
    assert _fields_check(msg) == _one_by_one(msg)


def test_fields_check_names_the_first_bad_field_in_order() -> None:
    msg = SimpleNamespace(term=1, success=1, match_index=-1, read_round=0)
    assert _fields_check(msg) == "success must be a bool, got 1"
