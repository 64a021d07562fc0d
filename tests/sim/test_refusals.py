"""A refused message leaves the server as it was; one that changed the
server's state before its handler raised was half handled, and that is a
finding, not a refusal.

The door lets an implementation refuse a bad message by raising one of its
`refusals`: the simulator counts it and goes on. A handler that first acts
on a message (here: takes the higher term of a vote response and steps down,
Raft Figure 2, rules for all servers) and then raises has not refused it:
the sender is told nothing while the server moved on. The simulator compares
the server's scalars after the refusal with the checker's last read of them
(its state before the event), so a delivery that is not refused costs
nothing extra.
"""

from __future__ import annotations

from raftcore import RaftServer, RequestVoteResponse
from raftcore.errors import InvalidMessage
from virtraft.adapter import NodeOptions
from virtraft.nodes.raftcore import factory
from virtraft.run.seed import run_seed
from virtraft.sim.options import SimOptions

MODULE = "tests.sim.test_refusals"
# Elections rich in higher-term vote responses: no pre-vote, short timeouts,
# five servers, lossy links.
OPTIONS = SimOptions(
    servers=5,
    steps=3000,
    liveness=False,
    drop_probability=0.1,
    partition_rate=0.02,
    node=NodeOptions(election_timeout_ms=100, request_timeout_ms=20, prevote=False),
)
SEED = 0


class TermThenRefusal(RaftServer):
    """Takes a vote response's higher term, steps down, and then refuses the
    response as malformed: the state changed, yet the simulator is told the
    message was refused."""

    def recv_requestvote_response(self, node_id: int, msg: RequestVoteResponse) -> None:
        if msg.term > self.current_term and not msg.prevote:
            self.become_follower(msg.term, None)
            raise InvalidMessage(f"vote response of term {msg.term} refused after the fact")
        super().recv_requestvote_response(node_id, msg)


class CleanRefusal(RaftServer):
    """Refuses the same responses before acting on them: a true refusal."""

    def recv_requestvote_response(self, node_id: int, msg: RequestVoteResponse) -> None:
        if msg.term > self.current_term and not msg.prevote:
            raise InvalidMessage(f"vote response of term {msg.term} refused")
        super().recv_requestvote_response(node_id, msg)


term_then_refusal = factory(TermThenRefusal)
clean_refusal = factory(CleanRefusal)


def test_a_refusal_after_a_state_change_is_a_finding() -> None:
    result = run_seed(SEED, OPTIONS, factory=f"{MODULE}:term_then_refusal")
    violation = result.violation
    assert violation is not None
    assert violation.invariant == "NodeException"
    assert violation.witness["exception"] == "RefusalChangedState"
    assert "refused RequestVoteResponse from node" in violation.message
    assert "(InvalidMessage: vote response of term" in violation.message
    assert "but changed its state: " in violation.message
    assert "term " in violation.message.split("changed its state: ")[1]
    # The place named is where the server raised, not the simulator.
    assert "recv_requestvote_response" in violation.witness["where"][-1]
    assert result.sim.stats.refused_messages == 0


def test_without_a_checker_a_refusal_is_only_counted() -> None:
    """The state before is the checker's last read: with the checker off (the
    bench's baseline) nothing is checked, and deliveries cost no extra read."""
    result = run_seed(SEED, OPTIONS, factory=f"{MODULE}:term_then_refusal", check=False)
    assert result.violation is None
    assert result.sim.stats.refused_messages > 0


def test_a_refusal_that_changes_nothing_is_counted_not_reported() -> None:
    result = run_seed(SEED, OPTIONS, factory=f"{MODULE}:clean_refusal")
    assert result.violation is None
    assert result.sim.stats.refused_messages > 0
