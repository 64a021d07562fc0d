"""Membership changes one server at a time (Raft dissertation §4.1-§4.2;
the seed library's ADD_NONVOTING_NODE -> ADD_NODE, DEMOTE_NODE, REMOVE_NODE)."""

from __future__ import annotations

import pytest
from raftcore_cluster import ELECTION_MS, Cluster, entry_at, log_entries, log_terms, make_config

from raftcore import (
    AppendEntries,
    Entry,
    EntryState,
    EntryType,
    InvalidMessage,
    InvalidOperation,
    MembershipEvent,
    OneVotingChangeOnly,
    Role,
    Shutdown,
)

ADDED, REMOVED = MembershipEvent.ADDED, MembershipEvent.REMOVED
MEMBERS3 = ((1, True), (2, True), (3, True))


def change(kind: EntryType, node: int, entry_id: int = 0) -> Entry:
    return Entry(0, entry_id or 5000 + node * 10 + int(kind), kind, node=node)


def settle(cluster: Cluster, leader: int = 1, rounds: int = 3) -> None:
    for _ in range(rounds):
        cluster.heartbeat(leader)


def cluster_with_leader(ids=(1, 2, 3), **options) -> Cluster:
    cluster = Cluster(ids, config=make_config(**options))
    cluster.elect(1)
    settle(cluster)
    return cluster


def add_server(cluster: Cluster, node: int) -> None:
    """Boot a new server that knows the configuration it is joining."""
    members = (*cluster.servers[1].members(), (node, False))
    cluster.boot(node, members=members)


def test_add_nonvoting_then_promote() -> None:
    """Dissertation §4.2.1: a new server first joins without a vote, catches
    up, and is told so once (node_has_sufficient_logs); only then is it made
    a voter with ADD_NODE."""
    cluster = cluster_with_leader()
    leader = cluster.servers[1]
    for i in range(5):
        cluster.submit(1, f"v{i}")
    settle(cluster)
    add_server(cluster, 4)
    response = leader.recv_entry(change(EntryType.ADD_NONVOTING_NODE, 4))
    # Takes effect as soon as it is appended (§4.1), before it commits.
    assert leader.members() == (*MEMBERS3, (4, False))
    assert leader.voting_members() == (1, 2, 3)
    assert (4, ADDED) in cluster.recorders[1].membership_events
    assert cluster.recorders[1].sufficient_logs == []
    settle(cluster)
    assert leader.entry_committed(response) is EntryState.COMMITTED
    new = cluster.servers[4]
    assert log_terms(new) == log_terms(leader)
    assert cluster.recorders[1].sufficient_logs == [4]  # once
    settle(cluster)
    cluster.submit(1, "more")
    settle(cluster)
    assert cluster.recorders[1].sufficient_logs == [4]
    for node in (2, 3):
        assert cluster.servers[node].members() == (*MEMBERS3, (4, False))
        assert (4, ADDED) in cluster.recorders[node].membership_events

    leader.recv_entry(change(EntryType.ADD_NODE, 4))
    assert leader.voting_members() == (1, 2, 3, 4)
    settle(cluster)
    for node in (1, 2, 3, 4):
        assert cluster.servers[node].voting_members() == (1, 2, 3, 4)
    # Four voters: a commit now needs three acknowledgments.
    cluster.submit(1, "needs three")
    cluster.deliver_all(allow=lambda m: {m[0], m[1]} <= {1, 2})
    assert leader.commit_index < leader.last_log_index
    cluster.heartbeat(1)
    assert leader.commit_index == leader.last_log_index


def test_new_voter_can_be_elected() -> None:
    """After promotion the new server is a full member: it can lead."""
    cluster = cluster_with_leader()
    add_server(cluster, 4)
    cluster.servers[1].recv_entry(change(EntryType.ADD_NONVOTING_NODE, 4))
    settle(cluster)
    cluster.servers[1].recv_entry(change(EntryType.ADD_NODE, 4))
    settle(cluster)
    cluster.crash(1)
    for node in (2, 3):
        cluster.tick(node, ELECTION_MS)
    cluster.elect(4)
    assert cluster.servers[4].voting_members() == (1, 2, 3, 4)


def test_second_change_while_one_is_in_flight() -> None:
    """Dissertation §4.1: one change at a time; the next waits until the
    previous one is committed."""
    cluster = cluster_with_leader()
    leader = cluster.servers[1]
    leader.recv_entry(change(EntryType.ADD_NONVOTING_NODE, 4))
    cluster.drop_all()
    with pytest.raises(OneVotingChangeOnly):
        leader.recv_entry(change(EntryType.ADD_NONVOTING_NODE, 5))
    with pytest.raises(OneVotingChangeOnly):
        leader.recv_entry(change(EntryType.REMOVE_NODE, 3))
    with pytest.raises(OneVotingChangeOnly):
        leader.recv_entries([change(EntryType.REMOVE_NODE, 3), change(EntryType.DEMOTE_NODE, 2)])
    assert leader.members() == (*MEMBERS3, (4, False))
    settle(cluster)  # node 4 is not running: the entry commits with 2 and 3
    leader.recv_entry(change(EntryType.ADD_NONVOTING_NODE, 5))
    assert leader.members() == (*MEMBERS3, (4, False), (5, False))


def test_leader_must_commit_an_entry_of_its_term_first() -> None:
    """Ongaro, raft-dev 2015 (the single-server change bug): a new leader
    accepts a change only after an entry of its own term has committed."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False, noop_on_election=False))
    for node in (1, 2, 3):
        cluster.restore(node, term=1, terms=(1,))
    leader = cluster.elect(1)
    settle(cluster)
    assert leader.commit_index == 0
    with pytest.raises(OneVotingChangeOnly, match="of its term"):
        leader.recv_entry(change(EntryType.ADD_NONVOTING_NODE, 4))
    assert leader.members() == MEMBERS3
    cluster.submit(1, "first of term 2")
    settle(cluster)
    leader.recv_entry(change(EntryType.ADD_NONVOTING_NODE, 4))
    assert leader.members() == (*MEMBERS3, (4, False))


@pytest.mark.parametrize(
    ("kind", "node", "text"),
    [
        (EntryType.ADD_NONVOTING_NODE, 2, "already a member"),
        (EntryType.ADD_NODE, 4, "non-voting member first"),
        (EntryType.ADD_NODE, 2, "non-voting member first"),
        (EntryType.DEMOTE_NODE, 4, "not a voting member"),
        (EntryType.REMOVE_NODE, 4, "not a member"),
    ],
)
def test_nonsense_changes_are_refused(kind, node, text) -> None:
    cluster = cluster_with_leader()
    leader = cluster.servers[1]
    last = leader.last_log_index
    with pytest.raises(InvalidOperation, match=text):
        leader.recv_entry(change(kind, node))
    assert leader.last_log_index == last
    assert leader.members() == MEMBERS3


def test_demote_node() -> None:
    """DEMOTE_NODE turns a voter into a non-voter: it still replicates, but
    no longer counts for commits or elections."""
    cluster = cluster_with_leader()
    leader = cluster.servers[1]
    leader.recv_entry(change(EntryType.DEMOTE_NODE, 3))
    assert leader.voting_members() == (1, 2)
    settle(cluster)
    assert cluster.servers[3].members() == ((1, True), (2, True), (3, False))
    cluster.submit(1, "x")
    cluster.deliver_all(allow=lambda m: 3 not in (m[0], m[1]))
    assert leader.commit_index == leader.last_log_index  # 2 of 2 voters
    cluster.tick(3, 10 * ELECTION_MS)
    assert cluster.servers[3].role is Role.FOLLOWER  # a non-voter never campaigns
    settle(cluster)
    assert cluster.servers[3].last_log_index == leader.last_log_index


def test_remove_node() -> None:
    """REMOVE_NODE: the server leaves the configuration as soon as the entry
    is appended, every other server is notified, and the leader stops
    replicating to it (the seed: the host shuts the removed server down once
    the entry is applied)."""
    cluster = cluster_with_leader()
    leader = cluster.servers[1]
    leader.recv_entry(change(EntryType.REMOVE_NODE, 3))
    assert leader.members() == ((1, True), (2, True))
    assert (3, REMOVED) in cluster.recorders[1].membership_events
    assert [dst for _, dst, _ in cluster.queue] == [2]
    settle(cluster)
    assert cluster.servers[2].members() == ((1, True), (2, True))
    assert (3, REMOVED) in cluster.recorders[2].membership_events
    cluster.submit(1, "two voters")
    cluster.deliver_all()
    assert leader.commit_index == leader.last_log_index
    # The removed server, never told, times out; its requests are refused.
    cluster.tick(3, 3 * ELECTION_MS)
    with pytest.raises(InvalidMessage, match="does not know node 3"):
        cluster.deliver_all()
    assert leader.is_leader and leader.current_term == 1


def test_leader_removing_itself_steps_down_after_commit() -> None:
    """Dissertation §4.2.2: a leader that removes itself manages the cluster
    until the change commits, without counting itself, then steps down."""
    cluster = cluster_with_leader()
    leader = cluster.servers[1]
    response = leader.recv_entry(change(EntryType.REMOVE_NODE, 1))
    assert leader.is_leader
    assert leader.voting_members() == (2, 3)
    assert not leader.is_voter()
    # Its own copy does not count: node 2 alone is not a majority of {2, 3}.
    cluster.deliver_all(allow=lambda m: 3 not in (m[0], m[1]))
    assert leader.commit_index < response.index
    assert leader.is_leader
    sent = len(cluster.recorders[1].sent)
    cluster.heartbeat(1)
    assert leader.commit_index >= response.index
    assert leader.role is Role.FOLLOWER
    # Stepping down is the last thing it does as leader: nothing more is sent.
    late = [m for _, m in cluster.recorders[1].sent[sent:] if isinstance(m, AppendEntries)]
    assert all(m.leader_commit < response.index for m in late)
    with pytest.raises(Shutdown):
        leader.recv_entry(Entry(0, 1))
    # The remaining two elect a leader among themselves.
    cluster.tick(1, 10 * ELECTION_MS)
    assert leader.role is Role.FOLLOWER
    for node in (2, 3):
        cluster.tick(node, ELECTION_MS)
    new = cluster.elect(2)
    assert new.voting_members() == (2, 3)


def test_leader_sends_nothing_after_stepping_down() -> None:
    """Regression: the acknowledgment that commits the leader's own removal
    used to be followed by sending that member the next entry, as a follower
    that still called itself leader_id in AppendEntries."""
    cluster = cluster_with_leader(max_entries_per_msg=1, max_inflight_msgs=1)
    leader = cluster.servers[1]
    removal = leader.recv_entry(change(EntryType.REMOVE_NODE, 1))
    cluster.submit(1, "after the removal")
    cluster.deliver_all()
    assert leader.role is Role.FOLLOWER
    assert leader.commit_index == removal.index
    sent = [m for _, m in cluster.recorders[1].sent if isinstance(m, AppendEntries)]
    late = [m for m in sent if m.leader_commit >= removal.index]
    assert late == []


def test_leader_demoting_itself_steps_down_after_commit() -> None:
    cluster = cluster_with_leader()
    leader = cluster.servers[1]
    leader.recv_entry(change(EntryType.DEMOTE_NODE, 1))
    settle(cluster)
    assert leader.role is Role.FOLLOWER
    assert leader.members() == ((1, False), (2, True), (3, True))


def test_change_is_undone_when_its_entry_is_truncated() -> None:
    """Dissertation §4.1: a configuration takes effect when appended, so a
    server whose log loses the entry reverts to the previous configuration."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(2, term=1, terms=(1,))
    add4 = Entry(1, 77, EntryType.ADD_NONVOTING_NODE, node=4)
    follower.recv_appendentries(1, AppendEntries(1, 1, 1, 1, (add4,), 1))
    assert follower.members() == (*MEMBERS3, (4, False))
    assert cluster.recorders[2].membership_events[-1:] == [(4, ADDED)]
    # A leader of term 2 never had it: index 2 is overwritten.
    follower.recv_appendentries(3, AppendEntries(2, 3, 1, 1, (entry_at(2, 2),), 1))
    assert follower.members() == MEMBERS3
    assert cluster.recorders[2].membership_events[-2:] == [(4, ADDED), (4, REMOVED)]
    assert follower.members_at(2) == MEMBERS3


def test_removal_undone_when_truncated_restores_the_member() -> None:
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(2, term=1, terms=(1,))
    rm3 = Entry(1, 78, EntryType.REMOVE_NODE, node=3)
    follower.recv_appendentries(1, AppendEntries(1, 1, 1, 1, (rm3, entry_at(3, 1)), 1))
    assert follower.members() == ((1, True), (2, True))
    follower.recv_appendentries(3, AppendEntries(2, 3, 1, 1, (entry_at(2, 2),), 1))
    assert follower.members() == MEMBERS3
    assert cluster.recorders[2].membership_events[-2:] == [(3, REMOVED), (3, ADDED)]


def test_membership_replayed_on_restart() -> None:
    """Membership entries in the durable log are replayed on restore."""
    cluster = cluster_with_leader()
    add_server(cluster, 4)
    cluster.servers[1].recv_entry(change(EntryType.ADD_NONVOTING_NODE, 4))
    settle(cluster)
    cluster.servers[1].recv_entry(change(EntryType.ADD_NODE, 4))
    settle(cluster)
    cluster.crash(2)
    restarted = cluster.restart(2)
    assert restarted.voting_members() == (1, 2, 3, 4)
    assert restarted.members_at(1) == MEMBERS3


def test_bootstrap_membership_api() -> None:
    cluster = Cluster((1, 2, 3))
    server = cluster.servers[1]
    server.add_non_voting_node(4)
    assert server.members() == (*MEMBERS3, (4, False))
    assert server.is_voter(1) and not server.is_voter(4) and not server.is_voter(9)
    server.remove_node(4)
    assert server.members() == MEMBERS3
    assert server.member_progress(9) is None
    events = cluster.recorders[1].membership_events
    assert events[-2:] == [(4, ADDED), (4, REMOVED)]


def test_leader_that_loses_office_before_its_demotion_commits_can_lead_again() -> None:
    """Dissertation §4.2.2: a leader that steps down before its own removal
    commits "might still time out and become leader again". Regression: with
    voters {1, 2}, leader 1 appended DEMOTE_NODE 1, lost contact and stepped
    down; node 2 cannot win (node 1's log is more up to date) and node 1 did
    not campaign (not a voter in its latest configuration): no leader ever."""
    cluster = Cluster((1, 2))
    leader = cluster.elect(1)
    settle(cluster)
    leader.recv_entry(change(EntryType.DEMOTE_NODE, 1))
    cluster.drop_all()  # the entry never reaches node 2
    for _ in range(2 * ELECTION_MS // 20):
        cluster.tick(1, 20)
        cluster.drop_all()
    assert leader.role is Role.FOLLOWER  # check-quorum
    follower = cluster.servers[2]
    cluster.tick(2, 2 * ELECTION_MS)
    cluster.deliver_all()
    assert not follower.is_leader  # node 1 refuses: its log is longer
    # Node 1 times out and stands with its latest configuration's voters, {2}.
    cluster.tick(1, 2 * ELECTION_MS)
    cluster.deliver_all()
    settle(cluster)
    assert leader.role is Role.FOLLOWER  # it led, committed its demotion, stepped down
    assert follower.members() == ((1, False), (2, True))
    assert leader.commit_index == leader.last_log_index
    cluster.tick(2, 2 * ELECTION_MS)
    cluster.deliver_all()
    assert follower.is_leader
    assert follower.voting_members() == (2,)
    cluster.tick(1, 10 * ELECTION_MS)  # now a committed non-voter: it never campaigns
    assert leader.role is Role.FOLLOWER


def test_candidate_removed_only_by_an_uncommitted_change_still_gets_votes() -> None:
    """Dissertation §4.1: a server grants its vote to a candidate that is not
    in its latest configuration. Regression: node 3 held an uncommitted
    REMOVE_NODE 1 from its own term, node 1 (voters {1, 3} after its own
    uncommitted REMOVE_NODE 2) needs node 3's vote, and node 3 refused it as
    coming from an unknown node: no leader could ever be elected again."""
    cluster = Cluster((1, 2, 3))
    cluster.elect(3)
    settle(cluster, leader=3)
    cluster.servers[3].recv_entry(change(EntryType.REMOVE_NODE, 1))
    cluster.drop_all()
    cluster.crash(3)  # its removal of node 1 reaches nobody
    for node in (1, 2):
        cluster.tick(node, ELECTION_MS)
    leader = cluster.elect(1)
    settle(cluster)
    leader.recv_entry(change(EntryType.REMOVE_NODE, 2))
    cluster.deliver_all()
    assert leader.voting_members() == (1, 3)
    for _ in range(2 * ELECTION_MS // 20):
        cluster.tick(1, 20)
        cluster.deliver_all()
    assert not leader.is_leader  # check-quorum: voter 3 is down
    cluster.restart(3)
    assert cluster.servers[3].voting_members() == (2, 3)
    # Until a leader that is a voter of its own configuration emerges (node 2,
    # a voter until its removal commits, may lead first and step down).
    for _ in range(40):
        for node in (1, 2, 3):
            cluster.tick(node, ELECTION_MS // 2)
            cluster.deliver_all()
        current = cluster.leader()
        if current is not None and current.is_voter():
            break
    else:
        raise AssertionError("no leader was elected")
    settle(cluster, leader=current.node_id)
    # Whoever won, the uncommitted changes were settled one way or the other
    # and every server agrees on the log and the configuration.
    for server in cluster.servers.values():
        assert log_entries(server) == log_entries(current)
        assert server.members() == current.members()
        assert server.commit_index == current.last_log_index
