"""Membership rules: how each entry changes the configuration, which
configuration is in force at an index, who may campaign, and which change a
leader may propose.

Changes go one server at a time (Raft dissertation §4.1-§4.3), in the seed
library's steps: ADD_NONVOTING_NODE, then ADD_NODE to give it a vote;
DEMOTE_NODE to take the vote away; REMOVE_NODE. A configuration takes effect
as soon as its entry is appended, committed or not (§4.1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from raftcore.errors import InvalidOperation, OneVotingChangeOnly
from raftcore.messages import Entry, EntryType

Membership = tuple[tuple[int, bool], ...]
"""A configuration: (node id, is voting) per member, sorted by node id."""

# `entry.type in MEMBERSHIP_CHANGES` on the per-entry paths: a set lookup
# costs less than the enum property it mirrors.
MEMBERSHIP_CHANGES = frozenset(t for t in EntryType if t.is_membership_change)


def _add_nonvoting(members: dict[int, bool], node: int) -> None:
    members.setdefault(node, False)


def _add_voting(members: dict[int, bool], node: int) -> None:
    members[node] = True


def _demote(members: dict[int, bool], node: int) -> None:
    if node in members:
        members[node] = False


def _remove(members: dict[int, bool], node: int) -> None:
    members.pop(node, None)


_APPLY: dict[EntryType, Callable[[dict[int, bool], int], None]] = {
    EntryType.ADD_NONVOTING_NODE: _add_nonvoting,
    EntryType.ADD_NODE: _add_voting,
    EntryType.DEMOTE_NODE: _demote,
    EntryType.REMOVE_NODE: _remove,
}


def apply_change(members: Membership, entry: Entry) -> Membership:
    """The configuration after a membership entry."""
    config = dict(members)
    assert entry.node is not None
    _APPLY[entry.type](config, entry.node)
    return tuple(sorted(config.items()))


def contains(members: Membership, node_id: int) -> bool:
    return any(member == node_id for member, _ in members)


class Configurations:
    """The configuration at the snapshot (or bootstrap), plus one (index,
    configuration after it) per membership entry still in the log."""

    __slots__ = ("base", "changes")

    def __init__(self) -> None:
        self.base: Membership = ()
        # Invariant: indexes strictly increase, all beyond the snapshot's.
        self.changes: list[tuple[int, Membership]] = []

    def latest(self) -> Membership:
        return self.changes[-1][1] if self.changes else self.base

    def at(self, index: int) -> Membership:
        """The configuration in force once entry `index` is appended."""
        members = self.base
        for config_index, config in self.changes:
            if config_index > index:
                break
            members = config
        return members

    def is_committed(self, commit_index: int) -> bool:
        """The latest configuration's entry (if any) is committed."""
        return not self.changes or self.changes[-1][0] <= commit_index

    def append(self, index: int, entry: Entry) -> Membership:
        """A membership entry was appended at index: its configuration is the
        latest from now on."""
        config = apply_change(self.latest(), entry)
        self.changes.append((index, config))
        return config

    def maybe_truncate_from(self, index: int) -> bool:
        """Entries index.. left the log: their configurations go with them
        (§4.1: a server reverts to the previous one). False when none did."""
        if not self.changes or self.changes[-1][0] < index:
            return False
        while self.changes and self.changes[-1][0] >= index:
            self.changes.pop()
        return True

    def compact(self, index: int, members: Membership) -> None:
        """The log was compacted through index, whose configuration is `members`."""
        self.base = tuple(sorted(members))
        self.changes = [c for c in self.changes if c[0] > index]


def may_campaign(node_id: int, configs: Configurations, commit_index: int) -> bool:
    """Only a voter stands for election: a voter of the latest configuration,
    or of the one before it while that change is uncommitted. Dissertation
    §4.2.2: a leader that steps down before its own removal commits may
    time out and lead again; its log may be the only one up to date."""
    if (node_id, True) in configs.latest():
        return True
    if configs.is_committed(commit_index):
        return False
    before = configs.at(configs.changes[-1][0] - 1)
    return (node_id, True) in before


# Per change: (whether the node's present role allows it, the refusal). The
# role is None for a non-member, else whether it votes.
_REFUSALS: dict[EntryType, tuple[Callable[[bool | None], bool], str]] = {
    EntryType.ADD_NONVOTING_NODE: (lambda v: v is None, "node {node} is already a member"),
    EntryType.ADD_NODE: (lambda v: v is False, "node {node} must be a non-voting member first"),
    EntryType.DEMOTE_NODE: (lambda v: v is True, "node {node} is not a voting member"),
    EntryType.REMOVE_NODE: (lambda v: v is not None, "node {node} is not a member"),
}


def check_proposal(
    changes: Sequence[Entry],
    members: Mapping[int, bool],
    *,
    change_pending: bool,
    committed_in_term: bool,
) -> None:
    """What a leader may propose: one change at a time, each after the
    previous one committed (dissertation §4.1, §4.3), and none before an
    entry of the leader's own term committed. `members` maps each member of
    the latest configuration to whether it votes."""
    if len(changes) > 1 or change_pending:
        raise OneVotingChangeOnly("a membership change is already in progress")
    if not committed_in_term:
        # The single-server change bug (Ongaro, raft-dev 2015): an entry of
        # this term must commit first, so no older uncommitted change lingers.
        raise OneVotingChangeOnly(
            "the leader has not committed an entry of its term yet; retry shortly"
        )
    change = changes[0]
    node = change.node
    if type(node) is not int or node < 0:
        raise InvalidOperation(f"{change.type.name} needs a node id, got {node!r}")
    voting = members.get(node)
    refusal = _REFUSALS[change.type]
    if not refusal[0](voting):
        raise InvalidOperation(refusal[1].format(node=node))
