"""Node factories used by the simulator tests through --node-factory."""

from __future__ import annotations

from raftcore import RaftServer
from virtraft.raftcore_node import factory


class ExplodingServer(RaftServer):
    """Raises from inside periodic() once it is leader: the harness must
    report it as a finding, not crash."""

    def periodic(self, msec: int) -> None:
        if self.is_leader:
            raise ZeroDivisionError("boom")
        super().periodic(msec)


exploding = factory(ExplodingServer)
