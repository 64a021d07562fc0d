"""Clients of the simulated cluster, and the history of what they were told.

A few clients read, write and compare-and-set a few keys of the nodes'
key-value store. Each has at most one operation outstanding, numbered in
its session (client id, sequence number), and sends it to the node it
believes leads: a redirect (the node's `Redirect`) is followed at once, a
timeout sends the same operation again (same session number, so the state
machine applies it at most once, dissertation §6.3) to the leader it last
heard of, or the next node in turn. After `MAX_ATTEMPTS` the client gives
up. Every operation becomes one `Operation` of the history
(virtraft.check.history), with its invocation and completion in virtual
milliseconds:

- ok: a node answered (a read's value, a cas's swapped or not);
- fail: no node ever took it, so it cannot have taken effect;
- unknown: a node took it and the client gave up, or the run ended, before
  an answer: it may take effect at any time, or never.

The scheduler draws only the invocation (a `ClientInvoke` event); all the
rest follows from the events a trace records, so a replay rebuilds the same
history without anything but the trace. Nodes without the door's `clients`
capability are sent writes of (key, value) through `submit`, complete once
`is_committed` says so, and are never sent reads: the history then holds
only what they support.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from virtraft.adapter import Command, NodeOptions, Redirect, Submitted
from virtraft.check.history import Operation
from virtraft.sim.events import ClientInvoke

if TYPE_CHECKING:
    from virtraft.sim.simulation import Simulation

# Few keys, so that operations meet on them.
CLIENT_KEYS = ("k0", "k1", "k2")
# Sends of one operation (the first and its retries) before the client gives up.
MAX_ATTEMPTS = 4


@dataclass(frozen=True, slots=True)
class Record:
    """One operation of the history with the steps it spans, for reports."""

    operation: Operation
    invoke_step: int
    complete_step: int | None  # None: it never completed (unknown, or fail at the end)
    nodes: tuple[int, ...]  # the nodes that took it, attempt by attempt


@dataclass(slots=True)
class _Pending:
    invoke: ClientInvoke
    seq: int
    invoke_ms: int
    invoke_step: int
    deadline_ms: int = 0
    tries: int = 0
    # Attempts a node took: (node, request id, what submit said).
    taken: list[tuple[int, int, Submitted]] = field(default_factory=list)


@dataclass(slots=True)
class _Client:
    client_id: int
    seq: int = 0
    leader: int | None = None
    pending: _Pending | None = None
    # The value this client last saw in each key: what its next cas expects.
    seen: dict[str, Any] = field(default_factory=dict)


class Clients:
    def __init__(
        self, count: int, node: NodeOptions, capable: bool, door: Callable[..., Any]
    ) -> None:
        assert count >= 1
        self.capable = capable
        self._door = door
        # Long enough for an election and a commit; short enough to retry often.
        self.timeout_ms = 2 * node.election_timeout_ms
        self.backoff_ms = node.request_timeout_ms  # after no node took it
        self._clients = [_Client(i) for i in range(1, count + 1)]
        self._waiting: dict[int, _Client] = {}  # request id -> its client
        self.records: list[Record] = []
        self.values = 0  # values written so far: each write's value is new

    # ------------------------------------------------------------ for the scheduler

    def idle(self) -> list[int]:
        return [c.client_id for c in self._clients if c.pending is None]

    def expected(self, client: int, key: str) -> Any:
        return self._clients[client - 1].seen.get(key)

    @property
    def busy(self) -> bool:
        return bool(self._waiting) or any(c.pending is not None for c in self._clients)

    # ------------------------------------------------------------ the model

    def invoke(self, sim: Simulation, event: ClientInvoke) -> list[int]:
        """Start the operation (a client still waiting gives its last one up)."""
        client = self._clients[event.client - 1]
        if client.pending is not None:
            self._give_up(sim, client)
        if event.value is not None:
            self.values = max(self.values, event.value)
        client.seq += 1
        client.pending = _Pending(event, client.seq, sim.clock_ms, sim.step)
        return self._send(sim, client)

    def after_event(self, sim: Simulation, touched: list[int]) -> list[int]:
        """Hand clients their answers, and retry or give up what timed out;
        returns `touched` with the nodes a retry went to."""
        door = self._door
        nodes = sim.nodes
        asked = sorted({node for c in self._clients if c.pending for node, _, _ in c.pending.taken})
        for node_id in asked:
            node = nodes.get(node_id)
            if node is None or not node.alive:
                continue
            if self.capable:
                for answer in door(node.answers):
                    client = self._waiting.get(answer.request)
                    if client is None:
                        continue
                    if answer.ok:
                        self._complete(sim, client, "ok", answer.output)
                    else:  # the read will never be served there: try again now
                        del self._waiting[answer.request]
                        assert client.pending is not None
                        client.pending.deadline_ms = sim.clock_ms
            else:
                self._poll_commits(sim, node_id)
        sent: list[int] = []
        for client in self._clients:
            pending = client.pending
            if pending is None or sim.clock_ms < pending.deadline_ms:
                continue
            if pending.tries >= MAX_ATTEMPTS:
                self._give_up(sim, client)
            else:
                # A leader that took the operation and never answered may be
                # cut off: ask the next node in turn, which redirects to the
                # leader it knows.
                client.leader = None
                sent += self._send(sim, client)
        return touched + [n for n in dict.fromkeys(sent) if n not in touched]

    def _poll_commits(self, sim: Simulation, node_id: int) -> None:
        node = sim.nodes[node_id]
        for client in self._clients:
            pending = client.pending
            if pending is None:
                continue
            for where, _, submitted in pending.taken:
                if (
                    where == node_id
                    and submitted.index <= node.commit_index
                    and self._door(node.is_committed, submitted) is True
                ):
                    self._complete(sim, client, "ok", None)
                    break

    def _send(self, sim: Simulation, client: _Client) -> list[int]:
        """One attempt: to the believed leader (or the next node in turn),
        following redirects; a node that takes it gets `timeout_ms` to answer."""
        pending = client.pending
        assert pending is not None
        ids = sim.node_ids
        node_id = client.leader
        if node_id not in sim.nodes:
            node_id = ids[(client.client_id + pending.tries) % len(ids)]
        pending.tries += 1
        touched = []
        for _hop in range(len(ids) + 1):
            node = sim.nodes[node_id]
            touched.append(node_id)
            if not node.alive:
                break
            request = sim.next_command_id
            sim.next_command_id += 1
            result = self._door(*self._request(node, request, client, pending))
            if isinstance(result, Submitted):
                client.leader = node_id
                pending.taken.append((node_id, request, result))
                pending.deadline_ms = sim.clock_ms + self.timeout_ms
                self._waiting[request] = client
                return touched
            if not isinstance(result, Redirect) or result.leader is None:
                break
            if result.leader not in sim.nodes or result.leader == node_id:
                break
            node_id = result.leader
        client.leader = None
        pending.deadline_ms = sim.clock_ms + self.backoff_ms
        return touched

    def _request(
        self, node: Any, request: int, client: _Client, pending: _Pending
    ) -> tuple[Any, ...]:
        event = pending.invoke
        if event.op == "read":
            return (node.read, request, event.key)
        if not self.capable:
            return (node.submit, request, (event.key, event.value))
        expected = event.expected if event.op == "cas" else None
        command = Command(
            client.client_id, pending.seq, event.op, event.key, event.value or 0, expected
        )
        return (node.submit, request, command)

    def _complete(self, sim: Simulation, client: _Client, status: str, output: Any) -> None:
        pending = client.pending
        assert pending is not None
        event = pending.invoke
        if status == "ok":
            if event.op == "read":
                client.seen[event.key] = output
            elif event.op == "write" or output is True:
                client.seen[event.key] = event.value
        self._record(client, status, output, sim.clock_ms, sim.step)

    def _give_up(self, sim: Simulation, client: _Client) -> None:
        pending = client.pending
        assert pending is not None
        # Nothing taken cannot have taken effect (and a read has none).
        status = "unknown" if pending.taken else "fail"
        self._record(client, status, None, sim.clock_ms, None)

    def _record(
        self, client: _Client, status: str, output: Any, now_ms: int, step: int | None
    ) -> None:
        pending = client.pending
        assert pending is not None
        for _, request, _ in pending.taken:
            self._waiting.pop(request, None)
        client.pending = None
        self.records.append(_record_of(client.client_id, pending, status, output, now_ms, step))

    def history(self, sim: Simulation) -> list[Record]:
        """Every operation so far; those still waiting as the run ends are
        unknown (or failed, when no node took them). Leaves the clients as
        they are: the history can be read at any step."""
        records = list(self.records)
        for client in self._clients:
            pending = client.pending
            if pending is not None:
                status = "unknown" if pending.taken else "fail"
                record = _record_of(client.client_id, pending, status, None, sim.clock_ms, None)
                records.append(record)
        return sorted(records, key=lambda r: (r.operation.invoke, r.invoke_step))


def _record_of(
    client: int, pending: _Pending, status: str, output: Any, now_ms: int, step: int | None
) -> Record:
    event = pending.invoke
    if status == "unknown" and event.op == "read":
        status = "fail"  # a read has no effect to wait for
    operation = Operation(
        client,
        event.op,
        event.key,
        float(pending.invoke_ms),
        float(now_ms) if status != "unknown" else float("inf"),
        status,
        event.value if event.op != "read" else None,
        event.expected if event.op == "cas" else None,
        output if status == "ok" and event.op != "write" else None,
    )
    return Record(operation, pending.invoke_step, step, tuple(n for n, _, _ in pending.taken))
