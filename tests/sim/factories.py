"""Node factories used by the simulator tests through --node-factory."""

from __future__ import annotations

from raftcore import RaftServer
from virtraft.nodes.raftcore import factory


class ExplodingServer(RaftServer):
    """Raises from inside periodic() once it is leader: the harness must
    report it as a finding, not crash."""

    def periodic(self, msec: int) -> None:
        if self.is_leader:
            raise ZeroDivisionError("boom")
        super().periodic(msec)


exploding = factory(ExplodingServer)


class VotesForAnyone(RaftServer):
    """Grants every vote request of its term: no one-vote-per-term rule and no
    up-to-date check (Raft §5.2, §5.4.1 both dropped). Caught as VoteOnce."""

    def _may_grant_vote(self, msg) -> bool:  # type: ignore[no-untyped-def]
        return msg.term == self.current_term


votes_for_anyone = factory(VotesForAnyone)
