"""Chapter 6 of the dissertation in raftcore: ReadIndex and lease reads
(§6.4), client sessions (§6.3), leadership transfer (§3.10)."""

from __future__ import annotations

import pytest

from raftcore import (
    AppendEntries,
    AppendEntriesResponse,
    InvalidOperation,
    NotLeader,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    Role,
    TimeoutNow,
)
from raftcore.sessions import Sessions
from tests.raftcore.raftcore_cluster import ELECTION_MS, Cluster, make_config


def age(cluster: Cluster, *nodes: int) -> None:
    """Let an election timeout pass on `nodes`: past leader stickiness (and,
    with leases, past a fresh server's quiet first timeout)."""
    for node in nodes:
        cluster.tick(node, ELECTION_MS)


def elected(**config) -> tuple[Cluster, object]:
    cluster = Cluster(config=make_config(**config))
    age(cluster, 2, 3)
    leader = cluster.elect(1)
    cluster.deliver_all()  # the no-op commits
    return cluster, leader


def test_read_index_waits_for_a_majority_to_answer_its_round():
    cluster, leader = elected()
    leader.read_index(7)
    recorder = cluster.recorders[1]
    assert recorder.reads_ready == []  # nobody has answered the round yet
    rounds = [m.read_round for _, dst, m in cluster.queue if isinstance(m, AppendEntries)]
    assert rounds and all(r == 1 for r in rounds)
    cluster.deliver_where(lambda e: isinstance(e[2], AppendEntries) and e[1] == 2)
    cluster.deliver_where(lambda e: isinstance(e[2], AppendEntriesResponse) and e[0] == 2)
    assert recorder.reads_ready == [(7, leader.commit_index)]


def test_a_leader_cut_off_from_the_majority_never_serves_and_fails_the_read():
    cluster, leader = elected()
    leader.read_index(1)
    cluster.drop_all()  # its round is lost
    cluster.tick(1, 5 * 20)
    cluster.drop_all()
    assert cluster.recorders[1].reads_ready == []
    # A newer leader takes over; the old one hears of it and gives up the read.
    cluster.down.add(1)
    age(cluster, 3)
    cluster.elect(2)
    cluster.deliver_all()
    cluster.down.discard(1)
    cluster.heartbeat(2)
    assert leader.role is Role.FOLLOWER
    assert cluster.recorders[1].reads_failed == [1]


def test_read_index_waits_for_the_first_commit_of_the_leaders_term():
    """Without the no-op, a new leader's commit index may lag the last
    leader's (etcd 3189a66): the read waits until this term commits."""
    cluster, first = elected(noop_on_election=False)
    cluster.submit(1, "x")
    cluster.deliver_all()
    cluster.down.add(1)
    age(cluster, 3)
    second = cluster.elect(2)
    cluster.deliver_all()
    second.read_index(3)
    cluster.deliver_all()
    assert cluster.recorders[2].reads_ready == []
    cluster.submit(2, "y")
    cluster.deliver_all()
    [(request, index)] = cluster.recorders[2].reads_ready
    assert request == 3 and index == second.commit_index == second.last_log_index


def test_a_follower_forwards_a_read_and_serves_it_once_applied():
    """§6.4: the follower asks the leader for a read index; the leader proves
    it leads with a round; the follower answers once it applied that far."""
    cluster, leader = elected(forward_reads=True)
    cluster.submit(1, "x")
    cluster.deliver_all()  # committed before the read is asked: the read must see it
    follower = cluster.servers[2]
    follower.read_index(9)
    assert any(isinstance(m, ReadIndexRequest) for _, m in cluster.recorders[2].sent)
    cluster.deliver_all()
    [(request, index)] = cluster.recorders[2].reads_ready
    assert request == 9 and index == leader.commit_index == leader.last_log_index
    assert cluster.recorders[1].reads_ready == []  # the leader served nothing itself


def test_a_forwarded_read_fails_when_the_leader_steps_down_first():
    cluster, leader = elected(forward_reads=True)
    cluster.servers[3].read_index(4)
    cluster.deliver_where(lambda e: isinstance(e[2], ReadIndexRequest))
    cluster.drop_all()  # the leader's round is lost
    leader.step(2, AppendEntries(leader.current_term + 1, 2, 0, 0, (), 0))  # a newer leader
    cluster.deliver_where(lambda e: isinstance(e[2], ReadIndexResponse))
    assert cluster.recorders[3].reads_failed == [4]
    assert cluster.recorders[3].reads_ready == []


def test_a_follower_sends_the_client_to_the_leader():
    cluster, _leader = elected()
    with pytest.raises(NotLeader) as refused:
        cluster.servers[2].read_index(1)
    assert refused.value.args[0] == 1 or getattr(refused.value, "leader_id", None) == 1


def test_a_lease_serves_reads_without_a_round_until_it_runs_out():
    cluster, leader = elected(lease_read=True, lease_drift_ms=20)
    cluster.heartbeat(1)  # a round a majority answers: the lease starts
    queued = len(cluster.queue)
    leader.read_index(1)
    assert cluster.recorders[1].reads_ready == [(1, leader.commit_index)]
    assert len(cluster.queue) == queued  # no heartbeat round was needed
    # No answers for longer than an election timeout less the drift margin.
    cluster.tick(1, ELECTION_MS - 20)
    cluster.drop_all()
    leader.read_index(2)
    assert [r for r, _ in cluster.recorders[1].reads_ready] == [1]
    cluster.deliver_all()
    assert [r for r, _ in cluster.recorders[1].reads_ready] == [1, 2]


def test_with_leases_a_restarted_server_refuses_votes_for_one_election_timeout():
    cluster, leader = elected(lease_read=True, lease_drift_ms=20)
    cluster.heartbeat(1)
    cluster.crash(2)
    restarted = cluster.restart(2)
    vote = RequestVote(leader.current_term + 1, 3, 99, leader.current_term)
    assert restarted.recv_requestvote(3, vote).vote_granted is False
    cluster.tick(2, ELECTION_MS)  # its quiet first timeout is over
    assert restarted.recv_requestvote(3, vote).vote_granted is True


def test_leadership_transfer_hands_over_and_refuses_writes_meanwhile():
    cluster, leader = elected()
    cluster.submit(1, "x")
    leader.transfer_leadership(2)
    with pytest.raises(InvalidOperation):
        cluster.submit(1, "y")
    cluster.deliver_all()
    new = cluster.servers[2]
    assert new.role is Role.LEADER and new.current_term == leader.current_term
    assert leader.role is Role.FOLLOWER
    # The voters had heard from leader 1 within the timeout: only the
    # transfer flag let them vote.
    assert any(isinstance(m, TimeoutNow) for _, m in cluster.recorders[1].sent)
    votes = [m for _, m in cluster.recorders[2].sent if isinstance(m, RequestVote)]
    assert votes and all(v.transfer for v in votes)


def test_a_transfer_to_a_non_member_is_refused_and_a_stale_one_expires():
    cluster, leader = elected()
    with pytest.raises(InvalidOperation):
        leader.transfer_leadership(9)
    cluster.down.add(3)
    leader.transfer_leadership(3)
    cluster.tick(1, ELECTION_MS)
    cluster.deliver_all()
    cluster.submit(1, "accepted again")


def test_sessions_apply_a_retried_command_once():
    sessions = Sessions()
    applied: list[str] = []

    def write(value: str):
        return lambda: applied.append(value) or len(applied)

    assert sessions.apply("c1", 1, write("a")) == (True, 1)
    assert sessions.apply("c1", 1, write("a again")) == (False, 1)
    assert sessions.apply("c2", 1, write("b")) == (True, 2)
    assert sessions.apply("c1", 2, write("c")) == (True, 3)
    assert applied == ["a", "b", "c"]
