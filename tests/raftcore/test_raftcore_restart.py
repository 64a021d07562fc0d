"""Restarting from durable state (Raft Figure 2: currentTerm, votedFor and
log[] are persistent; everything else is rebuilt)."""

from __future__ import annotations

import random

import pytest
from raftcore_cluster import ELECTION_MS, Cluster, log_entries, log_terms, make_config

from raftcore import (
    Callbacks,
    InvalidMessage,
    RaftServer,
    RequestVote,
    RequestVoteResponse,
    Role,
)


def test_cannot_vote_twice_in_a_term_after_restart() -> None:
    """Raft §5.2: the vote is durable, so a crash between two RequestVotes of
    the same term cannot yield two votes."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    voter = cluster.servers[2]
    assert voter.recv_requestvote(1, RequestVote(1, 1, 0, 0)).vote_granted
    cluster.crash(2)
    voter = cluster.restart(2)
    assert (voter.current_term, voter.voted_for) == (1, 1)
    assert voter.recv_requestvote(3, RequestVote(1, 3, 0, 0)) == RequestVoteResponse(1, False)
    assert voter.recv_requestvote(1, RequestVote(1, 1, 0, 0)).vote_granted


def test_restarted_candidate_campaigns_in_a_new_term() -> None:
    """The term is durable: a restarted server never reuses a term."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    cluster.tick(1, 2 * ELECTION_MS)
    cluster.drop_all()
    cluster.crash(1)
    server = cluster.restart(1)
    assert server.role is Role.FOLLOWER
    assert (server.current_term, server.voted_for) == (1, 1)
    cluster.elect(1)
    assert server.current_term == 2


def test_restarted_leader_rejoins_as_follower_with_its_log() -> None:
    """A leader's log survives its crash; it comes back as a follower, learns
    the commit index from the new leader, and applies again from the start."""
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    for i in range(3):
        cluster.submit(1, f"v{i}")
    cluster.deliver_all()
    cluster.heartbeat(1)
    before = log_entries(cluster.servers[1])
    cluster.crash(1)
    server = cluster.restart(1)
    assert server.role is Role.FOLLOWER
    assert log_entries(server) == before
    assert server.commit_index == 0 and server.last_applied == 0  # volatile
    for node in (2, 3):
        cluster.tick(node, ELECTION_MS)
    cluster.elect(2)
    cluster.heartbeat(2)
    assert server.commit_index == cluster.servers[2].commit_index == 5
    assert [e.data for _, e in cluster.recorders[1].applied] == [None, "v0", "v1", "v2", None]
    assert log_terms(server) == [1, 1, 1, 1, 2]


def test_restore_checks_the_term() -> None:
    with pytest.raises(InvalidMessage, match="term"):
        RaftServer.restore(
            1,
            Callbacks(),
            rng=random.Random(0),
            members=((1, True),),
            term=-1,
            voted_for=None,
            entries=(),
        )
