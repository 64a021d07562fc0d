"""A node with two ways to fail, for the shrinker: node 2 raises
RuntimeError on its 400th delivered message (the failure a run finds), and
any node raises KeyError once 2 s have passed without it ever hearing a
message (a failure only a trace cut down too far can reach). A shrinker
that matched NodeException by name alone would slide from one to the other."""

from __future__ import annotations

import random

from virtraft.adapter import Membership, NodeOptions, Send
from virtraft.nodes.raftcore import MESSAGES, RaftcoreNode

FAILS_AT_DELIVERY = 400
LONELY_MS = 2_000


class TwoFaultsNode(RaftcoreNode):
    deliveries = 0
    lonely_ms = 0

    def deliver(self, src: int, message: object) -> None:
        self.deliveries += 1
        if self.node_id == 2 and self.deliveries == FAILS_AT_DELIVERY:
            raise RuntimeError(f"delivery {self.deliveries} reached")
        super().deliver(src, message)

    def tick(self, msec: int) -> None:
        self.lonely_ms += msec
        if self.deliveries == 0 and self.lonely_ms >= LONELY_MS:
            raise KeyError("never heard from anyone")
        super().tick(msec)


def factory(
    node_id: int, members: Membership, send: Send, rng: random.Random, options: NodeOptions
) -> TwoFaultsNode:
    return TwoFaultsNode(node_id, tuple(members), send, rng, options)


factory.messages = MESSAGES  # type: ignore[attr-defined]
