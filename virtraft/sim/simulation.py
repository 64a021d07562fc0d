"""The simulation: N nodes, one network, one clock, one checker.

`Simulation.apply(event)` carries out one event, lets the checker read every
node, and records the event. It never draws random numbers for decisions:
the scheduler does that, so a replay drives the very same code with events
read from a trace. The only randomness here is each node's own stream and
message delays, both seeded from the run's seed.
"""

from __future__ import annotations

import functools
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from virtraft.adapter import (
    FactoryError,
    MembershipChange,
    NodeAdapter,
    NodeFactory,
    Redirect,
    Role,
    Scalars,
    ServerFailure,
    Submitted,
    build_node,
    factory_name,
    messages_of,
)
from virtraft.check.checker import Checker, Violation
from virtraft.sim.clients import Clients
from virtraft.sim.eventlog import EventLog
from virtraft.sim.events import (
    ChangeMembership,
    ClientInvoke,
    ClientRequest,
    CompleteIO,
    Crash,
    Deliver,
    Drop,
    Duplicate,
    Event,
    Heal,
    Partition,
    Restart,
    TakeSnapshot,
    Tick,
    acting_nodes,
)
from virtraft.sim.network import Envelope, Network
from virtraft.sim.options import SimOptions
from virtraft.sim.seeds import delays_rng, index_drawer, node_rng

T = TypeVar("T")


class NotApplicable(Exception):
    """An event does not fit the simulation's state (a replay diverged)."""


class HarnessError(Exception):
    """The simulator failed while a node called back into it (sending a
    message): never the server's fault, although it was raised inside a call
    through the door."""


class RefusalChangedState(Exception):
    """A node raised one of its `refusals` for a message it had already acted
    on: its state changed before the handler raised, so the message was half
    handled, not refused. The server's failure, a finding."""


_SCALAR_NAMES = (
    "alive",
    "role",
    "term",
    "voted_for",
    "commit_index",
    "last_index",
    "snapshot_index",
)


def _door(call: Callable[..., T], *args: object) -> T:
    """Call a node: what escapes is the server's failure (see adapter.py)."""
    try:
        return call(*args)
    except HarnessError:
        raise
    except Exception as exc:
        raise ServerFailure(exc) from exc


WHERE_FRAMES = 4
"""How many of the innermost frames a server's failure names."""


def where_lines(frames: Iterable[tuple[str, int, str]]) -> list[str]:
    """A failure's `where`: its innermost frames, (file, line, function),
    outermost first, each as "file.py:line in function". The file's name
    only: the same failure reads the same on every machine."""
    kept = list(frames)[-WHERE_FRAMES:]
    return [f"{filename.rsplit('/', 1)[-1]}:{line} in {name}" for filename, line, name in kept]


@dataclass(slots=True)
class SimStats:
    events: Counter[str] = field(default_factory=Counter)
    refused_messages: int = 0
    commands_submitted: int = 0
    commands_redirected: int = 0
    commands_acknowledged: int = 0
    leader_changes: int = 0
    crashes: int = 0
    lossy_crashes: int = 0
    restarts: int = 0
    membership_changes: int = 0
    snapshots_taken: int = 0
    snapshots_installed: int = 0
    max_commit_index: int = 0
    max_term: int = 0


class Simulation:
    def __init__(
        self,
        options: SimOptions,
        seed: int,
        factory: NodeFactory,
        *,
        checker: Checker | None = None,
    ) -> None:
        self.options = options
        self.seed = seed
        self.factory = factory
        self.checker = checker
        self.clock_ms = 0
        self.step = 0
        self.stats = SimStats()
        # Every event applied, compactly: a long run's memory is not its events'.
        self.events = EventLog()
        self.violation: Violation | None = None
        # Shrinking only: a message event whose exact message is gone takes the
        # newest in flight on the same link and of the same type instead.
        self.match_messages_by_kind = False
        # The envelope the last message event acted on (shrinking re-keys events).
        self.last_envelope: Envelope | None = None
        self.messages = messages_of(factory)
        self.network = Network(options.founders, self.messages)
        self._delay_rng = delays_rng(seed)
        # choice() over the range draws what randint(min, max) would, for less.
        self._delays_ms = range(options.delay_ms_min, options.delay_ms_max + 1)
        self._delay_max = options.delay_ms_max
        self._delay_index = index_drawer(self._delay_rng)  # choice() for less
        self.nodes: dict[int, NodeAdapter] = {}
        self.node_ids: list[int] = []
        # The nodes in id order, rebuilt only when a node joins or is forgotten.
        self._views: list[NodeAdapter] = []
        # Ids of the nodes the last event touched: only they can have applied
        # entries, so only they need `begin_step()` before the next event.
        self._stepped: list[int] = []
        # alive_ids(), kept until a node joins, leaves, crashes or restarts
        # (nothing else changes `alive`); None when it must be recomputed.
        self._alive_ids: list[int] | None = None
        self._last_tick_ms: dict[int, int] = {}
        self._leaders_seen: dict[int, int] = {}  # term -> leader, for stats only
        self.next_node_id = options.founders.stop
        self.next_command_id = 1
        self.client_leader_guess: int | None = None
        # Commands accepted by a leader and not yet answered, per node.
        self.pending: dict[int, deque[tuple[int, Submitted]]] = {}
        self.last_submitted: tuple[int, int, Submitted] | None = None
        # Removals a leader took and nobody has yet reported committed or lost:
        # (the node removed, where its removal entry went).
        self._removals: list[tuple[int, Submitted]] = []
        # Removed servers lingering before they are forgotten: node -> the
        # clock when their removal was seen committed (SimOptions.removed_linger_ms).
        self._leaving: dict[int, int] = {}
        bootstrap = tuple((i, True) for i in options.founders)
        for node_id in options.founders:
            try:
                self._add_node(node_id, bootstrap)
            except ServerFailure as failure:
                raise FactoryError(
                    f"node factory {factory_name(factory)} could not build node {node_id}: "
                    f"{failure}"
                ) from None
        self.capabilities = type(self.nodes[options.first_node_id]).capabilities
        # The clients and their history (SimOptions.clients); None without.
        self.clients: Clients | None = None
        if options.clients:
            self.clients = Clients(options.clients, options.node, self.capabilities.clients, _door)

    # ------------------------------------------------------------------ nodes

    def _add_node(self, node_id: int, members: tuple[tuple[int, bool], ...]) -> NodeAdapter:
        send = functools.partial(self._send, node_id)  # send(dst, message) from node_id
        node = build_node(
            self.factory, node_id, members, send, node_rng(self.seed, node_id), self.options.node
        )
        self.nodes[node_id] = node
        self.node_ids.append(node_id)
        self.node_ids.sort()
        self._views = [self.nodes[i] for i in self.node_ids]
        self._stepped.append(node_id)
        self._alive_ids = None
        self._last_tick_ms[node_id] = self.clock_ms
        self.network.add_node(node_id)
        self.next_node_id = max(self.next_node_id, node_id + 1)
        return node

    def _send(self, src: int, dst: int, message: object) -> None:
        try:
            if dst not in self.nodes:
                self.network.stats.sent += 1
                self.network.stats.lost_on_cut_links += 1
                return
            delay = 0
            if self._delay_max:
                delays = self._delays_ms
                delay = delays.start + self._delay_index(len(delays))
            self.network.send(src, dst, message, self.clock_ms, delay)
        except Exception as exc:
            raise HarnessError(f"sending a message failed: {type(exc).__name__}: {exc}") from exc

    def views(self) -> list[NodeAdapter]:
        return list(self._views)

    def alive_ids(self) -> list[int]:
        return list(self.alive_ids_view())

    def alive_ids_view(self) -> list[int]:
        """alive_ids() without the copy, for the scheduler's every tick: read
        it, never change it (it is the simulation's cache)."""
        alive = self._alive_ids
        if alive is None:
            alive = self._alive_ids = [i for i in self.node_ids if self.nodes[i].alive]
        return alive

    def io_busy(self) -> list[tuple[int, int]]:
        """(node id, requests it may complete now) for each live node with
        pending I/O, in id order (asynchronous disks only)."""
        busy = []
        for node_id in self.node_ids:
            node = self.nodes[node_id]
            if node.alive and (pending := _door(node.pending_io)):
                busy.append((node_id, pending))
        return busy

    def leader(self) -> NodeAdapter | None:
        """The live leader with the highest term, if any."""
        best = None
        for node_id in self.node_ids:
            node = self.nodes[node_id]
            if node.alive and node.role is Role.LEADER and (best is None or node.term > best.term):
                best = node
        return best

    def voting_leader(self) -> NodeAdapter | None:
        """The leader a client would find: the live leader with the highest
        term, if it is a voter of its own configuration."""
        leader = self.leader()
        if leader is None or (leader.node_id, True) not in leader.members:
            return None
        return leader

    # ----------------------------------------------------------------- events

    def apply(self, event: Event) -> Violation | None:
        """Carry out one event, then check every invariant. Raises
        NotApplicable, with nothing changed, when the event cannot happen."""
        self.step += 1
        nodes = self.nodes
        handler = self._HANDLERS[type(event)]
        try:
            for node_id in self._stepped:
                if node_id in nodes:
                    try:  # _door, inlined: every event steps the nodes it touched
                        nodes[node_id].begin_step()
                    except Exception as exc:
                        raise ServerFailure(exc) from exc
            touched = handler(self, event)
            clients = self.clients
            if clients is not None and clients.busy:
                touched = clients.after_event(self, touched)
        except NotApplicable:
            self.step -= 1
            self._stepped = list(self.node_ids)
            raise
        except ServerFailure as failure:  # the server under test failed: a finding
            exc = failure.cause
            self.events.append(event)
            self.stats.events[event.kind] += 1
            self._stepped = list(self.node_ids)
            self._alive_ids = None
            self.violation = self._node_exception(event, exc)
            return self.violation
        self._stepped = touched
        self.events.append(event)
        self.stats.events[event.kind] += 1
        reads = self._observe_stats(touched) if touched else ()
        if self.checker is not None:
            found = self.checker.observe(self.step, self._views, touched, reads)
            if found:
                self.violation = found[0]
                return self.violation
        return None

    def _node_exception(self, event: Event, exc: Exception) -> Violation:
        frames = traceback.extract_tb(exc.__traceback__)
        where = where_lines((f.filename, f.lineno or 0, f.name) for f in frames)
        nodes = acting_nodes(event)
        return Violation(
            "NodeException",
            self.step,
            nodes,
            f"the server raised {type(exc).__name__}: {exc}",
            {"exception": type(exc).__name__, "message": str(exc), "where": where},
        )

    def _observe_stats(self, touched: list[int]) -> list[Scalars]:
        """Count what the touched nodes' scalars show; return them, one per
        touched node, for the checker: each node is read once per event."""
        stats = self.stats
        nodes = self.nodes
        leaders_seen = self._leaders_seen
        reads = []
        for node_id in touched:
            read = nodes[node_id].scalars()
            reads.append(read)
            _alive, role, term, _vote, commit, _last, _snap = read
            if commit > stats.max_commit_index:
                stats.max_commit_index = commit
            if term > stats.max_term:
                stats.max_term = term
            # The role matters only in a term whose leader is not known yet.
            if term not in leaders_seen and role is Role.LEADER:
                leaders_seen[term] = node_id
                stats.leader_changes += 1
        return reads

    def _message(self, event: Deliver | Drop | Duplicate) -> Envelope:
        """The envelope the event names: the very one the scheduler picked (by
        id, in `ref`), else the oldest in flight with the same link and digest,
        else (only while shrinking) the newest of its type on that link."""
        ref = event.ref
        env = self.network.envelope(ref) if type(ref) is int else None
        if env is not None and not (
            env.src == event.src and env.dst == event.dst and env.key == event.key
        ):
            env = None  # an id from another run (events carried over, e.g. by the shrinker)
        if env is None:
            env = self.network.find(event.src, event.dst, event.key)
        if env is None and self.match_messages_by_kind:
            env = self.network.find_newest(event.src, event.dst, event.msg)
        if env is None:
            raise NotApplicable(
                f"no {event.msg} from node {event.src} to node {event.dst} is in flight"
            )
        return env

    def _deliver(self, event: Deliver) -> list[int]:
        env = self.last_envelope = self._message(event)
        self.network.take(env)
        self.network.stats.delivered += 1
        node = self.nodes[env.dst]
        if not node.alive:
            return []
        try:
            node.deliver(env.src, env.message)
        except node.refusals as exc:
            # A refusal must leave the node as it was. The state before is the
            # checker's last read of it, so only a refusal costs a comparison
            # (without a checker nothing is checked, this included).
            checker = self.checker
            before = checker.last_read(env.dst) if checker is not None else None
            if before is not None and (after := _door(node.scalars)) != before:
                changed = ", ".join(
                    f"{name} {old!s} -> {new!s}"
                    for name, old, new in zip(_SCALAR_NAMES, before, after, strict=True)
                    if old != new
                )
                refusal = RefusalChangedState(
                    f"node {env.dst} refused {self.messages.kind(env.message)} from node "
                    f"{env.src} ({type(exc).__name__}: {exc}) but changed its state: {changed}"
                ).with_traceback(exc.__traceback__)
                raise ServerFailure(refusal) from exc
            self.stats.refused_messages += 1
        except HarnessError:
            raise
        except Exception as exc:
            raise ServerFailure(exc) from exc
        if not node.alive:  # it shut itself down (retired): alive_ids() changed
            self._alive_ids = None
        if self.messages.completes_snapshot(env.message):
            self.stats.snapshots_installed += 1
        return [env.dst]

    def _drop(self, event: Drop) -> list[int]:
        self.network.take(env := self._message(event))
        self.last_envelope = env
        self.network.stats.dropped += 1
        return []

    def _duplicate(self, event: Duplicate) -> list[int]:
        self.network.duplicate(env := self._message(event))
        self.last_envelope = env
        return []

    def _tick(self, event: Tick) -> list[int]:
        node = self._node(event.node)
        self.clock_ms += event.ms
        self.network.advance(self.clock_ms)
        elapsed = self.clock_ms - self._last_tick_ms[event.node]
        self._last_tick_ms[event.node] = self.clock_ms
        if node.alive:
            try:  # _door, inlined: half of all events are ticks
                node.tick(elapsed)
            except HarnessError:
                raise
            except Exception as exc:
                raise ServerFailure(exc) from exc
            if not node.alive:  # it shut itself down (retired)
                self._alive_ids = None
        if self._removals or self._leaving:
            self._retire_removed()
            if event.node not in self.nodes:
                return []  # forgotten this very tick: nothing left to read
        return [event.node] if node.alive else []

    def _retire_removed(self) -> None:
        """Forget the servers whose removal committed `removed_linger_ms` ago.

        Until its removal commits a server may come back (a new leader may
        overwrite the entry), so it is kept; once committed it is out for good
        (ids are never reused). It still lingers: it may never learn it was
        removed and campaign, which the others must refuse (dissertation
        §4.2.3). Then its operator shuts it down, as the seed's host does: it
        is never ticked, crashed, restarted or partitioned again, and what is
        sent to it is lost. Forgetting is a crash without restart, a schedule
        the run could have drawn, so the checker misses nothing it must see;
        it drops the node when it leaves the views, as it does a refused joiner.
        Decided at ticks only: lingering is virtual time, which only ticks move."""
        if self._removals:
            waiting = []
            for node_id, where in self._removals:
                verdict = None
                for other in self._views:
                    if other.alive and other.commit_index >= where.index:
                        verdict = _door(other.is_committed, where)
                        break
                if verdict is None:
                    waiting.append((node_id, where))
                elif verdict and node_id in self.nodes:
                    self._leaving.setdefault(node_id, self.clock_ms)
            self._removals = waiting
        if not self._leaving:
            return
        linger = self.options.removed_linger_ms
        assert linger is not None  # removals are followed only when servers are forgotten
        for node_id, since in list(self._leaving.items()):
            if self.clock_ms - since >= linger:
                del self._leaving[node_id]
                if node_id in self.nodes:
                    self._forget_node(node_id)

    def _client(self, event: ClientRequest) -> list[int]:
        node_id = event.node
        self._node(node_id)
        touched = []
        self.stats.commands_submitted += 1
        self.next_command_id = max(self.next_command_id, event.command + 1)
        for _hop in range(len(self.node_ids) + 1):
            node = self.nodes[node_id]
            touched.append(node_id)
            result = _door(node.submit, event.command, (event.key, event.value))
            if isinstance(result, Submitted):
                self.client_leader_guess = node_id
                self.pending.setdefault(node_id, deque()).append((event.command, result))
                self.last_submitted = (event.command, node_id, result)
                break
            if not isinstance(result, Redirect) or result.leader is None:
                self.client_leader_guess = None
                break
            if result.leader not in self.nodes or result.leader == node_id:
                break
            self.stats.commands_redirected += 1
            node_id = result.leader
        self._acknowledge()
        return touched

    def _acknowledge(self) -> None:
        """Tell clients about commands that committed (what they were told must
        never be lost; the checker holds the cluster to it). Each node's queue
        is in index order, so only its front needs looking at."""
        for node_id, queue in self.pending.items():
            node = self.nodes.get(node_id)
            while queue:
                command, where = queue[0]
                if node is None or not node.alive:
                    queue.clear()
                    break
                if where.index > node.commit_index:
                    break
                queue.popleft()
                if _door(node.is_committed, where) is True:
                    self.stats.commands_acknowledged += 1

    def _invoke(self, event: ClientInvoke) -> list[int]:
        clients = self.clients
        if clients is None:
            raise NotApplicable("this simulation has no clients (options.clients is 0)")
        if not 1 <= event.client <= self.options.clients:
            raise NotApplicable(f"there is no client {event.client}")
        if event.op == "read" and not self.capabilities.clients:
            raise NotApplicable("the nodes serve no reads (no clients capability)")
        return clients.invoke(self, event)

    def _crash(self, event: Crash) -> list[int]:
        node = self._node(event.node)
        if not node.alive:
            raise NotApplicable(f"node {event.node} is already down")
        if event.keep is not None:
            if not self.capabilities.lossy_disk:
                raise NotApplicable(f"node {event.node}'s disk does not model lost writes")
            _door(node.lose_unsynced, event.keep)
            self.stats.lossy_crashes += 1
        self._alive_ids = None
        _door(node.crash)
        self.stats.crashes += 1
        return [event.node]

    def _restart(self, event: Restart) -> list[int]:
        node = self._node(event.node)
        if node.alive:
            raise NotApplicable(f"node {event.node} is already running")
        self._alive_ids = None
        _door(node.restart)
        self._last_tick_ms[event.node] = self.clock_ms
        if self.checker is not None:
            self.checker.node_restarted(event.node)
        self.stats.restarts += 1
        return [event.node]

    def _partition(self, event: Partition) -> list[int]:
        self.network.set_partition(event.cut_links(), event.held)
        return []

    def _heal(self, event: Heal) -> list[int]:
        self.network.heal()
        if event.flush:
            self.network.drop_all_in_flight()
            calm = self.options.liveness_delay_ms_max
            low = min(self.options.delay_ms_min, calm)
            self._delay_max = min(self._delay_max, calm)
            self._delays_ms = range(low, self._delay_max + 1)
        return []

    def _membership(self, event: ChangeMembership) -> list[int]:
        via = self._node(event.via)
        touched = [event.via]
        joining = event.change is MembershipChange.ADD_NONVOTING and event.node not in self.nodes
        if joining:
            if event.node < self.next_node_id:
                raise NotApplicable(f"node id {event.node} was used before; ids are never reused")
            members = tuple(sorted(set(via.members) | {(event.node, False)}))
            self._add_node(event.node, members)
        elif event.node not in self.nodes:
            raise NotApplicable(f"membership change names unknown node {event.node}")
        result = _door(via.change_membership, event.change, event.node)
        if isinstance(result, Submitted):
            self.stats.membership_changes += 1
            if (
                event.change is MembershipChange.REMOVE
                and self.options.removed_linger_ms is not None
            ):
                self._removals.append((event.node, result))
            if joining:
                touched.append(event.node)
        elif joining:
            self._forget_node(event.node)
        return touched

    def _forget_node(self, node_id: int) -> None:
        """A server that was refused entry never existed, and one removed for
        good is gone (its id stays used either way)."""
        del self.nodes[node_id]
        del self._last_tick_ms[node_id]
        self.node_ids.remove(node_id)
        self._views = [self.nodes[i] for i in self.node_ids]
        self._stepped = [i for i in self._stepped if i != node_id]
        self._alive_ids = None
        self.pending.pop(node_id, None)
        if self.client_leader_guess == node_id:
            self.client_leader_guess = None
        self.network.remove_node(node_id)

    def _snapshot(self, event: TakeSnapshot) -> list[int]:
        node = self._node(event.node)
        if _door(node.take_snapshot):
            self.stats.snapshots_taken += 1
        if not node.alive:  # it applied its own removal first and shut down
            self._alive_ids = None
        return [event.node]

    def _complete_io(self, event: CompleteIO) -> list[int]:
        node = self._node(event.node)
        if not node.alive or event.k >= _door(node.pending_io):
            raise NotApplicable(f"node {event.node} has no I/O request {event.k} to complete")
        _door(node.complete_io, event.k)
        if not node.alive:  # it shut itself down
            self._alive_ids = None
        self._acknowledge()
        return [event.node]

    def _node(self, node_id: int) -> NodeAdapter:
        node = self.nodes.get(node_id)
        if node is None:
            raise NotApplicable(f"there is no node {node_id}")
        return node

    _HANDLERS = {
        Deliver: _deliver,
        Drop: _drop,
        Duplicate: _duplicate,
        Tick: _tick,
        ClientRequest: _client,
        ClientInvoke: _invoke,
        Crash: _crash,
        Restart: _restart,
        Partition: _partition,
        Heal: _heal,
        ChangeMembership: _membership,
        TakeSnapshot: _snapshot,
        CompleteIO: _complete_io,
    }
