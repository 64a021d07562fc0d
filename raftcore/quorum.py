"""Majority arithmetic, kept apart so it can be tested against brute force."""

from __future__ import annotations

from collections.abc import Iterable


def majority(voters: int) -> int:
    """Smallest number of voters that forms a majority of `voters`."""
    assert voters >= 0
    return voters // 2 + 1


def committed_index(match_indexes: Iterable[int]) -> int:
    """Highest index that a majority of voters has stored (0 with no voters)."""
    acked = sorted(match_indexes, reverse=True)
    if not acked:
        return 0
    return acked[majority(len(acked)) - 1]


def vote_result(voters: Iterable[int], granted: Iterable[int]) -> bool:
    """True when the granted votes include a majority of `voters`."""
    voter_set = set(voters)
    if not voter_set:
        return False
    won = sum(1 for node in set(granted) if node in voter_set)
    return won >= majority(len(voter_set))
