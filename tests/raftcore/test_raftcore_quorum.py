"""Majority arithmetic (raftcore/quorum.py) against brute force over every
subset of voters (STYLE.md §5; etcd quorum/quick_test.go)."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st

from raftcore import quorum


def majorities(voters: list[int]) -> list[tuple[int, ...]]:
    """Every subset of voters holding more than half of them."""
    n = len(voters)
    return [subset for size in range(n // 2 + 1, n + 1) for subset in combinations(range(n), size)]


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=0, max_size=7))
def test_committed_index_is_the_highest_index_some_majority_stored(acked: list[int]) -> None:
    """Raft §5.3: an index is committed once a majority stores it, so the
    commit point is the largest index that every member of some majority has
    reached."""
    expected = max((min(acked[i] for i in subset) for subset in majorities(acked)), default=0)
    assert quorum.committed_index(acked) == expected


@given(
    st.sets(st.integers(min_value=1, max_value=9), max_size=7),
    st.lists(st.integers(min_value=0, max_value=12), max_size=12),
)
def test_vote_result_is_true_exactly_when_the_granted_votes_contain_a_majority(
    voters: set[int], granted: list[int]
) -> None:
    """Raft §5.2: a candidate wins with votes from a majority of the voters;
    votes from non-voters and repeated votes count for nothing."""
    ordered = sorted(voters)
    granted_set = set(granted)
    expected = any(all(ordered[i] in granted_set for i in subset) for subset in majorities(ordered))
    assert quorum.vote_result(voters, granted) is expected


def test_majority_sizes() -> None:
    assert [quorum.majority(n) for n in range(1, 8)] == [1, 2, 2, 3, 3, 4, 4]


def test_no_voters_no_quorum() -> None:
    assert quorum.committed_index([]) == 0
    assert quorum.vote_result([], [1, 2]) is False
