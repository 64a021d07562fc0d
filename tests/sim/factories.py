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


class SlowElections(RaftServer):
    """Slow but correct: waits 40 extra election timeouts before it campaigns,
    so a cluster of them elects far past the liveness bound (20 election
    timeouts) and well within the stuck bound (200): slow, never stuck."""

    EXTRA_TIMEOUTS = 40

    def _reset_election_timer(self) -> None:
        super()._reset_election_timer()
        self._election_timeout_ms += self.EXTRA_TIMEOUTS * self.config.election_timeout_ms


slow_elections = factory(SlowElections)


class NeverElects(SlowElections):
    """The control for SlowElections: its extra wait outlasts the stuck bound."""

    EXTRA_TIMEOUTS = 400


never_elects = factory(NeverElects)


class CampaignsOnce(RaftServer):
    """Campaigns only in term 0: after the first election no server ever
    campaigns again, so a leader that steps down (check-quorum) is the last
    one. A cluster of them is stuck on LeaderElected after any phase that
    opens on a leader about to lose its majority."""

    def _start_election(self) -> None:
        if self.current_term == 0:
            super()._start_election()
        else:
            self._reset_election_timer()


campaigns_once = factory(CampaignsOnce)
