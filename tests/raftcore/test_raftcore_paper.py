"""The Raft paper's concrete cases (Ongaro & Ousterhout, "In Search of an
Understandable Consensus Algorithm", extended version): Figures 7 and 8, a
single-server cluster, and a long run through a faulty network."""

from __future__ import annotations

import random

import pytest
from raftcore_cluster import Cluster, entry_at, log_entries, log_terms, make_config

from raftcore import Entry, EntryResponse, EntryState, EntryType, RaftServer, Role

# Figure 7: the leader's log, and the logs (a)-(f) its followers may hold.
FIGURE7_LEADER = (1, 1, 1, 4, 4, 5, 5, 6, 6, 6)
FIGURE7_FOLLOWERS = {
    "a": (1, 1, 1, 4, 4, 5, 5, 6, 6),
    "b": (1, 1, 1, 4),
    "c": (1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6),
    "d": (1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7),
    "e": (1, 1, 1, 4, 4, 4, 4),
    "f": (1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3),
}
# Indexes of each follower's entries that disagree with the leader's log and
# must be truncated (none of them is committed anywhere).
FIGURE7_EXTRA = {
    "a": (),
    "b": (),
    "c": (11,),
    "d": (11, 12),
    "e": (6, 7),
    "f": tuple(range(4, 12)),
}


@pytest.mark.parametrize("max_entries", [1, 3, 64])
@pytest.mark.parametrize("case", sorted(FIGURE7_FOLLOWERS))
def test_figure7_follower_log_brought_in_line_with_leader(case: str, max_entries: int) -> None:
    """Raft §5.3, Figure 7: whatever the follower's log, the leader's
    AppendEntries consistency check walks back to the last agreeing entry,
    deletes the follower's conflicting entries and appends its own."""
    config = make_config(prevote=False, max_entries_per_msg=max_entries)
    cluster = Cluster((1, 2, 3), config=config)
    follower_terms = FIGURE7_FOLLOWERS[case]
    cluster.restore(1, term=7, terms=FIGURE7_LEADER)
    cluster.restore(2, term=max(follower_terms), terms=follower_terms)
    cluster.restore(3, term=7, terms=FIGURE7_LEADER)  # a voter that elects node 1

    leader = cluster.elect(1)
    assert leader.current_term == 8
    follower = cluster.servers[2]
    # The leader's no-op of term 8 at index 11 overwrites (c)'s and (d)'s extras.
    assert log_terms(leader) == [*FIGURE7_LEADER, 8]
    assert log_entries(follower) == log_entries(leader)
    assert follower.current_term == 8
    popped = [index for kind, index in cluster.recorders[2].events if kind == "log_pop"]
    assert sorted(popped) == sorted(FIGURE7_EXTRA[case])
    # The durable log (what the callbacks stored) agrees with the in-memory one.
    assert cluster.recorders[2].durable_entries() == log_entries(leader)

    cluster.heartbeat(1)
    assert leader.commit_index == 11
    assert follower.commit_index == 11
    applied = [entry for _, entry in cluster.recorders[2].applied]
    assert applied == log_entries(leader)


def test_figure7_conflict_hint_skips_a_term_per_round_trip() -> None:
    """Raft §5.3 (the optimisation after Figure 7): a rejection names the
    index before the conflicting term's first entry, so follower (f) needs
    one rejected AppendEntries per conflicting term (3, then 2), not one per
    conflicting entry (eight)."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    cluster.restore(1, term=7, terms=FIGURE7_LEADER)
    follower = cluster.restore(2, term=3, terms=FIGURE7_FOLLOWERS["f"])
    cluster.restore(3, term=7, terms=FIGURE7_LEADER)
    replies = []
    original = follower.recv_appendentries

    def spy(node_id, msg):
        reply = original(node_id, msg)
        replies.append((msg.prev_log_index, reply))
        return reply

    follower.recv_appendentries = spy  # type: ignore[method-assign]
    cluster.elect(1)
    rejected = [(prev, r.hint_index) for prev, r in replies if not r.success]
    assert rejected == [(10, 6), (6, 3)]
    assert log_terms(follower) == [*FIGURE7_LEADER, 8]


def figure8_cluster() -> Cluster:
    """Figure 8 (c): S1 has just been elected in term 4; the index-2 entry of
    term 2 is on S1 and S2, S5 holds a different index-2 entry of term 3."""
    config = make_config(prevote=False, noop_on_election=False, check_quorum=False)
    cluster = Cluster((1, 2, 3, 4, 5), config=config)
    cluster.restore(1, term=3, terms=(1, 2))
    cluster.restore(2, term=3, terms=(1, 2))
    cluster.restore(3, term=3, terms=(1,), voted_for=5)
    cluster.restore(4, term=3, terms=(1,), voted_for=5)
    cluster.restore(5, term=3, terms=(1, 3), voted_for=5)
    cluster.crash(5)
    leader = cluster.elect(1)
    assert leader.current_term == 4
    return cluster


def test_figure8_old_term_entry_not_committed_by_counting_replicas() -> None:
    """Raft §5.4.2, Figure 8 (c): S1, leader of term 4, replicates the index-2
    entry of term 2 to a majority (S1, S2, S3), yet must not commit it."""
    cluster = figure8_cluster()
    leader = cluster.servers[1]
    cluster.heartbeat(1)
    assert log_terms(cluster.servers[3]) == [1, 2]
    for node in (2, 3):
        assert leader.member_progress(node).match_index == 2
    assert leader.commit_index == 0  # neither index 1 nor 2 is of term 4
    assert all(server.commit_index == 0 for server in cluster.servers.values())
    assert cluster.applied == {}


def test_figure8_s5_overwrites_the_uncommitted_old_term_entry() -> None:
    """Raft §5.4.2, Figure 8 (d): S1 crashes before an entry of its term is
    replicated; S5 (last term 3) is elected by S2, S3, S4 and overwrites index 2
    everywhere. Had S1 committed index 2 by counting replicas, this would lose
    a committed entry."""
    cluster = figure8_cluster()
    cluster.heartbeat(1)
    response = cluster.submit(1, "term-4 entry")  # index 3, never replicated
    assert response.index == 3
    cluster.drop_all()
    cluster.crash(1)

    # S1's followers stop hearing from it; their leader lease runs out.
    for node in (2, 3, 4):
        cluster.tick(node, 100)
        assert cluster.servers[node].role is Role.FOLLOWER
    cluster.restart(5)
    s5 = cluster.servers[5]
    cluster.tick(5, 200)  # term 4: S2, S3, S4 already voted for S1 in term 4
    cluster.deliver_all()
    assert not s5.is_leader
    cluster.tick(5, 200)  # term 5
    cluster.deliver_all()
    assert s5.is_leader
    assert s5.current_term == 5
    cluster.submit(5, "term-5 entry")
    cluster.deliver_all()
    cluster.heartbeat(5)
    for node in (2, 3, 4, 5):
        assert log_terms(cluster.servers[node]) == [1, 3, 5]
        assert cluster.servers[node].commit_index == 3
    assert cluster.applied[2] == entry_at(2, 3)
    # S1 comes back: its index-2 entry and its term-4 entry are replaced.
    cluster.restart(1)
    cluster.heartbeat(5)
    s1 = cluster.servers[1]
    assert log_terms(s1) == [1, 3, 5]
    assert s1.entry_committed(response) is EntryState.LOST


def test_figure8_entry_of_current_term_commits_the_old_one() -> None:
    """Raft §5.4.2, Figure 8 (e): once S1 replicates an entry of term 4 on a
    majority, index 2 is committed with it, and S5 can no longer win."""
    cluster = figure8_cluster()
    response = cluster.submit(1, "term-4 entry")
    cluster.deliver_all()
    leader = cluster.servers[1]
    assert leader.commit_index == 3
    assert leader.entry_committed(response) is EntryState.COMMITTED
    assert cluster.applied[2] == entry_at(2, 2)
    cluster.crash(1)
    for node in (2, 3, 4):
        cluster.tick(node, 100)  # S1's lease runs out
    cluster.restart(5)
    s5 = cluster.servers[5]
    for _ in range(3):
        cluster.tick(5, 200)
        cluster.deliver_all()
        assert not s5.is_leader  # S2 and S3 hold a term-4 entry: S5 is not up to date
    votes = [r for r in cluster.recorders[4].events if r[0] == "persist_vote"]
    assert votes  # S4 (log [1]) did vote for S5, but two votes are not a majority
    for node in (2, 3):
        assert log_terms(cluster.servers[node]) == [1, 2, 4]


@pytest.mark.parametrize("prevote", [True, False])
def test_single_server_elects_itself_and_commits(prevote: bool) -> None:
    """Raft §5.2: a cluster of one is its own majority."""
    cluster = Cluster((1,), config=make_config(prevote=prevote))
    server = cluster.servers[1]
    cluster.tick(1, 99)
    assert not server.is_leader  # the timeout is at least T
    cluster.tick(1, 101)
    assert server.is_leader
    assert server.current_term == 1
    assert cluster.recorders[1].term == 1 and cluster.recorders[1].vote == 1
    response = cluster.submit(1, "x")
    assert server.entry_committed(response) is EntryState.COMMITTED
    assert server.commit_index == 2  # the no-op, then "x"
    assert [e.data for _, e in cluster.recorders[1].applied] == [None, "x"]
    assert cluster.queue == []  # nobody to talk to


def test_five_servers_commit_1000_entries_through_a_faulty_network() -> None:
    """Raft §5.2-§5.4 end to end: messages are dropped, duplicated and
    reordered, clocks drift, servers crash and restart from their durable
    state, and the leader is cut off now and then. The cluster still elects
    at most one leader per term (checked after every event), and every server
    applies the same sequence of entries."""
    rng = random.Random(20240611)
    config = make_config(max_entries_per_msg=16)
    cluster = Cluster(range(1, 6), config=config, seed=11)
    taken: list[tuple[int, EntryResponse]] = []  # every entry a leader accepted
    next_id = 1
    isolated: int | None = None
    heal_at = 0

    def committed_commands() -> int:
        return sum(1 for e in cluster.applied.values() if e.type is EntryType.NORMAL)

    for step in range(200_000):
        if committed_commands() >= 1000:
            break
        if isolated is not None and step >= heal_at:
            isolated = None
        roll = rng.random()
        if roll < 0.25:
            cluster.tick(rng.randrange(1, 6), rng.randrange(1, 15))
        elif roll < 0.32:
            leader = cluster.leader()
            if leader is not None and leader.last_log_index - leader.commit_index < 100:
                batch = [Entry(0, next_id + k, data=f"cmd{next_id + k}") for k in range(4)]
                next_id += len(batch)
                for response in leader.recv_entries(batch):
                    taken.append((leader.node_id, response))
        elif roll < 0.324:
            leader = cluster.leader()
            if isolated is None and leader is not None:
                isolated, heal_at = leader.node_id, step + 1500
        elif roll < 0.326:
            node = rng.randrange(1, 6)
            cluster.crash(node)
            cluster.restart(node)
        elif cluster.queue:
            position = rng.randrange(len(cluster.queue))
            fate = rng.random()
            if fate < 0.05 or isolated in cluster.queue[position][:2]:
                cluster.queue.pop(position)  # drop
            elif fate < 0.10:
                cluster.queue.append(cluster.queue[position])  # duplicate
                cluster.deliver(position)
            else:
                cluster.deliver(position)
    else:
        raise AssertionError("1000 entries were not committed in time")

    # Heal: no more faults; everyone catches up with the leader.
    for _round in range(200):
        for node in cluster.servers:
            cluster.tick(node, config.request_timeout_ms)
        cluster.deliver_all()
        leader = cluster.leader()
        if leader is not None and all(
            s.commit_index == leader.last_log_index for s in cluster.servers.values()
        ):
            break
    else:
        raise AssertionError("the cluster did not converge after the faults stopped")

    assert committed_commands() >= 1000
    assert len(cluster.leaders) >= 3  # the faults did force new elections
    logs = {node: log_entries(server) for node, server in cluster.servers.items()}
    assert all(log == logs[1] for log in logs.values())
    # Every server applied the same sequence (a restarted one applied it again).
    history = [(i, e.term, e.id) for i, e in sorted(cluster.applied.items())]
    assert [i for i, _, _ in history] == list(range(1, len(history) + 1))
    for recorder in cluster.recorders.values():
        tail = [(i, e.term, e.id) for i, e in recorder.applied]
        assert tail == history[len(history) - len(tail) :]
    # What a server told its client agrees with what everyone applied.
    for node, response in taken:
        state = cluster.servers[node].entry_committed(response)
        applied = cluster.applied.get(response.index)
        if applied is None:  # a deposed leader's entry beyond the final log
            assert state is EntryState.PENDING
        elif state is EntryState.COMMITTED:
            assert (applied.term, applied.id) == (response.term, response.id)
        else:
            assert state is EntryState.LOST
            assert (applied.term, applied.id) != (response.term, response.id)


def test_restore_helper_builds_the_logs_of_figure7() -> None:
    """The test harness itself: restore puts exactly the given terms in a log."""
    cluster = Cluster((1, 2, 3))
    server = cluster.restore(2, term=7, terms=FIGURE7_FOLLOWERS["d"])
    assert isinstance(server, RaftServer)
    assert log_terms(server) == list(FIGURE7_FOLLOWERS["d"])
    assert server.current_term == 7
    assert server.commit_index == 0
