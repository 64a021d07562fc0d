"""A node whose process dies: raftcore, but node 2 dereferences NULL on its
20th delivered message, as a native implementation might. For the campaign
test that a dead worker becomes a finding, not a lost seed."""

from __future__ import annotations

import ctypes
import random

from virtraft.adapter import Membership, NodeOptions, Send
from virtraft.nodes.raftcore import MESSAGES, RaftcoreNode

DIES_AT_DELIVERY = 20


class DyingNode(RaftcoreNode):
    deliveries = 0

    def deliver(self, src: int, message: object) -> None:
        self.deliveries += 1
        if self.node_id == 2 and self.deliveries == DIES_AT_DELIVERY:
            ctypes.string_at(0)  # SIGSEGV: no Python exception, the process is gone
        super().deliver(src, message)


def factory(
    node_id: int, members: Membership, send: Send, rng: random.Random, options: NodeOptions
) -> DyingNode:
    return DyingNode(node_id, tuple(members), send, rng, options)


factory.messages = MESSAGES  # type: ignore[attr-defined]
