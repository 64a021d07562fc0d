"""PySyncObj, the pure-Python Raft library (PyPI `pysyncobj`), behind the door.

`factory` (`--node-factory virtraft.nodes.pysyncobj:factory`, extra
`virtraft[pysyncobj]`) runs one `SyncObj` per simulated server, with
`autoTick` off and its own tick function (`doTick`) called from the
door's `tick(msec)`. What the adapter replaces, and why:

- Transport: `_SimTransport`, a `pysyncobj.transport.Transport` that pickles
  each message (as the TCP transport does on the wire) and hands it to the
  simulated network; every partner counts as connected, since the network
  decides what arrives. A message from a server the receiver does not
  count as a partner is not delivered: no connection would exist.
- Clock and randomness: while a call into a node runs, the names the
  library reads from `pysyncobj.syncobj`'s module globals (`monotonicTime`,
  `random`, `os` for the one `os.path.isfile` on the dump file) are the
  node's virtual clock (seconds, from the ticks it was given), its seeded
  `random.Random` and a shim that asks the node's disk; they are restored
  when the call returns. No socket, thread, poller or wall clock is used.
- Durable state: `Disk`, written only by `DurableJournal` (a
  `pysyncobj.journal.Journal` with `FileJournal`'s semantics: entries are
  written at once, term and vote stored at once with the pending commit
  index, the commit index alone only at the journal's one-second timer) and
  by `DurableDump` (the library's `Serializer` for a dump file with
  `useFork` off: the dump is written within `serialize`, and the log is
  compacted at the next tick). Restart builds a new `SyncObj` with the
  node list it was first started with, as a deployment's configuration
  gives it, and the disk alone.
- Commands: `put(key, value, command_id)`, a `@replicated` method of a
  SyncObj subclass holding the key-value store. The door's submit enqueues
  it and lets the leader take its queue at once (`_checkCommandsToApply`,
  which the tick would call), so the index is known; a follower answers
  with a redirect, where the library would forward the command.
- Membership: `addNodeToCluster` / `removeNodeFromCluster`
  (`dynamicMembershipChange`). A server joins as a voter at once (the
  library has no learners): ADD_NONVOTING adds it, PROMOTE and DEMOTE are
  refused.
- Snapshots: `take_snapshot` is `forceLogCompaction`; the library
  serializes at its next tick and compacts the tick after, and sends the
  dump to a lagging follower in chunks, as it does.
- Diagnosis door: `corrected` is this adapter with shipped findings 1, 2,
  3, 4, 6 and 7 (docs/findings.md) corrected where messages, calls and the
  disk cross the door, never inside the library, so that a campaign or a
  shrink through it tells a known failure from a new one. Each correction
  is one named method of `CorrectedNode`; none fires on a clean network.
  `corrected_snapshots` corrects finding 5 as well, and `corrected_terms`
  finding 8 on top of that (the door notes each AppendEntries reply's term
  on its envelope, since the library's reply has none).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from virtraft.adapter import (
    Capabilities,
    FactoryError,
    Membership,
    MembershipChange,
    MessageRole,
    Messages,
    NodeAdapter,
    NodeOptions,
    Redirect,
    Refused,
    Role,
    Scalars,
    Send,
    SubmitResult,
    Submitted,
)
from virtraft.nodes import native

try:
    from pysyncobj import SyncObj, SyncObjConf, replicated
    from pysyncobj import pickle as _pickle
    from pysyncobj import syncobj as _library
    from pysyncobj.config import FAIL_REASON, SERIALIZER_STATE
    from pysyncobj.journal import Journal
    from pysyncobj.node import Node
    from pysyncobj.transport import Transport
except ImportError:  # pragma: no cover - the factory loader reports it in one line
    raise FactoryError(
        "the PySyncObj adapter needs the pysyncobj package: pip install 'virtraft[pysyncobj]'"
    ) from None

# The library logs through logging; without a handler of its own, Python
# would print its warnings (a truncated applied entry) to stderr mid-run.
logging.getLogger("pysyncobj").addHandler(logging.NullHandler())

# Clock reads allowed in one call. The library bounds some loops by wall
# time alone (`__sendAppendEntries` retries a snapshot chunk that is not
# ready until `appendEntriesPeriod` has passed); on a virtual clock that
# stands still during a call such a loop never ends, so it is a finding.
MAX_CLOCK_READS_PER_CALL = 10_000


class BusyLoop(Exception):
    """The library kept reading the clock within one call, waiting for time
    to pass: with a real clock it would spin for that long."""


# syncobj.py's command types (_COMMAND_TYPE), by their first byte.
REGULAR, NO_OP, MEMBERSHIP, VERSION = 0, 1, 2, 3
ENTRY_KINDS = {REGULAR: "normal", NO_OP: "no-op", MEMBERSHIP: "membership", VERSION: "version"}
_ROLE = {0: Role.FOLLOWER, 1: Role.CANDIDATE, 2: Role.LEADER}
# Compaction only when the simulator asks (take_snapshot), never by the
# library's own size or age thresholds.
_NEVER = 10**12


def _entry_id(command: bytes) -> int:
    """The client's command id inside a `put` entry; 0 for the library's own
    entries (no-op, membership, version)."""
    if command[:1] != b"\x00":
        return 0
    call = _pickle.loads(command[1:])
    if isinstance(call, tuple) and len(call) >= 2 and isinstance(call[1], tuple | list):
        args = call[1]
        if len(args) == 3 and isinstance(args[2], int):
            return args[2]
    return 0


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Message:
    """A PySyncObj message as it travels: the pickled dict (what its TCP
    transport sends), with what the harness asks of it read once."""

    kind: str
    body: bytes
    entries: int = 0
    snapshot: bool = False
    last_chunk: bool = False
    # The sender's term, noted beside the library's dict (never inside it)
    # by a door that reads it: `corrected_terms`, on `next_node_idx`.
    term: int | None = None


_ROLES = {
    "request_vote": MessageRole.VOTE,
    "response_vote": MessageRole.VOTE_RESPONSE,
    "append_entries": MessageRole.APPEND,
    "next_node_idx": MessageRole.APPEND_RESPONSE,
}


def _show(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, list | tuple) and len(value) > 2:
        return f"<{len(value)} items>"
    return repr(value)


class PySyncObjMessages(Messages):
    """PySyncObj's messages (dicts with a 'type'), as the harness sees them."""

    def key(self, message: object) -> int:
        if not isinstance(message, Message):
            return zlib.crc32(repr(message).encode())
        content = zlib.crc32(message.body)
        if message.term is None:
            return content
        # Two replies with one body but different noted terms are different
        # messages to the door that reads the term: a replay must tell them apart.
        return zlib.crc32(b"term %d" % message.term, content)

    def content_key(self, message: object) -> int | None:
        return zlib.crc32(message.body) if isinstance(message, Message) else None

    def kind(self, message: object) -> str:
        return message.kind if isinstance(message, Message) else type(message).__name__

    def role(self, message: object) -> MessageRole:
        if not isinstance(message, Message):
            return MessageRole.OTHER
        if message.snapshot:
            return MessageRole.SNAPSHOT
        return _ROLES.get(message.kind, MessageRole.OTHER)

    def entries_carried(self, message: object) -> int:
        return message.entries if isinstance(message, Message) else 0

    def completes_snapshot(self, message: object) -> bool:
        return isinstance(message, Message) and message.last_chunk

    def text(self, message: object) -> str:
        if not isinstance(message, Message):
            return repr(message)
        fields = _pickle.loads(message.body)
        shown = ", ".join(f"{k}={_show(v)}" for k, v in fields.items() if k != "type")
        return f"{message.kind}({shown})"


MESSAGES = PySyncObjMessages()


def _wrap(message: dict[str, Any]) -> Message:
    serialized = message.get("serialized")
    return Message(
        message["type"],
        _pickle.dumps(message),
        len(message.get("entries", ())),
        "serialized" in message,
        bool(serialized) and bool(serialized[2]),
    )


# -------------------------------------------------------------------- disk


class Disk:
    """What survives a crash: the journal's entries and its meta record
    (term, vote and commit index as last stored), and the dump file."""

    __slots__ = ("entries", "ids", "meta", "dump", "dump_index", "dump_term", "writes")

    def __init__(self) -> None:
        self.entries: list[tuple[bytes, int, int]] = []  # (command, index, term)
        self.ids: list[int] = []  # the entry id of each, in step with `entries`
        self.meta: dict[str, Any] = {}
        self.dump: bytes | None = None
        self.dump_index = 0
        self.dump_term = 0
        self.writes = 0

    def store_dump(self, blob: bytes) -> None:
        """Replace the dump file, as atomicReplace would."""
        data = _pickle.loads(blob)
        self.dump = blob
        self.dump_index = data[1][1]
        self.dump_term = data[1][2]
        self.writes += 1

    @property
    def term(self) -> int:
        """The term a restart begins with: syncobj.py takes the larger of the
        stored term and the last entry's."""
        last = self.entries[-1][2] if self.entries else 0
        return max(self.meta.get("currentTerm", 0), last)

    @property
    def last_index(self) -> int:
        return self.entries[-1][1] if self.entries else 0


class DurableJournal(Journal):
    """FileJournal over the node's disk: every entry change is written at
    once; setCurrentTerm stores the meta record at once (with the commit
    index pending in it); setRaftCommitIndex alone waits for the journal's
    one-second timer, as FileJournal's does."""

    def __init__(self, disk: Disk) -> None:
        self._disk = disk
        self._entries = disk.entries
        self._ids = disk.ids
        self._meta = dict(disk.meta)
        self._saved = True

    def add(self, command: bytes, idx: int, term: int) -> None:
        self._entries.append((command, idx, term))
        self._ids.append(_entry_id(command))
        self._disk.writes += 1

    def clear(self) -> None:
        del self._entries[:]
        del self._ids[:]
        self._disk.writes += 1

    def deleteEntriesFrom(self, entryFrom: int) -> None:
        del self._entries[entryFrom:]
        del self._ids[entryFrom:]
        self._disk.writes += 1

    def deleteEntriesTo(self, entryTo: int) -> None:
        del self._entries[:entryTo]
        del self._ids[:entryTo]
        self._disk.writes += 1

    def __getitem__(self, item: Any) -> Any:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def _destroy(self) -> None:
        pass

    def _store_meta(self) -> None:
        self._disk.meta = dict(self._meta)
        self._disk.writes += 1
        self._saved = True

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:
        self._meta["raftCommitIndex"] = raftCommitIndex
        self._saved = False

    def getRaftCommitIndex(self) -> int:
        return self._meta.get("raftCommitIndex", 1)

    def setCurrentTerm(self, term: int, votedForNodeId: Any) -> None:
        self._meta["currentTerm"] = term
        self._meta["votedForNodeId"] = votedForNodeId
        self._store_meta()

    def getCurrentTerm(self) -> int:
        return self._meta.get("currentTerm", 0)

    def getVotedForNodeId(self) -> Any:
        return self._meta.get("votedForNodeId", None)

    def onOneSecondTimer(self) -> None:
        if not self._saved:
            self._store_meta()


class DurableDump:
    """The library's Serializer for a dump file, with useFork off, over the
    node's disk. The dump is pickled without gzip (gzip would stamp it with
    the wall clock)."""

    def __init__(self, node: PySyncObjNode, batch_bytes: int) -> None:
        self._node = node
        self._disk = node.disk
        self._batch = batch_bytes
        self._done = False  # serialized, not yet reported (the library's pid -1)
        self._current_id = 0
        self._transmissions: dict[Any, list[Any]] = {}
        self._incoming: bytes | None = None

    def checkSerializing(self) -> tuple[int, Any]:
        if self._done:
            self._done = False
            self._transmissions = {}
            return SERIALIZER_STATE.SUCCESS, self._current_id
        return SERIALIZER_STATE.NOT_SERIALIZING, None

    def serialize(self, data: Any, id: Any) -> None:
        if self._done:
            return
        self._current_id = id
        self._disk.store_dump(_pickle.dumps(data))
        self._done = True

    def deserialize(self) -> Any:
        assert self._disk.dump is not None, "the library loads a dump the disk lacks"
        data = _pickle.loads(self._disk.dump)
        self._node._dump_loaded(data[1][1])
        return data

    def getTransmissionData(self, transmissionID: Any) -> Any:
        if self._done:
            return None
        transmission = self._transmissions.get(transmissionID)
        if transmission is None:
            if self._disk.dump is None:
                return None  # the library: the file fails to open, logged
            transmission = self._transmissions[transmissionID] = [self._disk.dump, 0]
        blob, sent = transmission
        chunk = blob[sent : sent + self._batch]
        transmission[1] = sent + len(chunk)
        last = not chunk
        if last:
            del self._transmissions[transmissionID]
        return chunk, sent == 0, last

    def setTransmissionData(self, data: Any) -> bool:
        if data is None:
            return False
        chunk, first, last = data
        if first:
            self._incoming = b""
        elif self._incoming is None:
            return False
        self._incoming += _pickle.to_bytes(chunk)
        if not last:
            return False
        blob, self._incoming = self._incoming, None
        self._disk.store_dump(blob)
        return True

    @property
    def receiving(self) -> bool:
        """A transmission's first chunk has arrived and its last has not."""
        return self._incoming is not None

    @property
    def received(self) -> bytes:
        """The chunks of the transmission under way, so far."""
        assert self._incoming is not None
        return self._incoming

    def cancelTransmisstion(self, id: Any) -> None:
        self._transmissions.pop(id, None)


# --------------------------------------------------------------- transport


class _SimTransport(Transport):
    """Hands each message to the simulated network; every partner counts as
    connected (the network decides what arrives)."""

    def __init__(self, node: PySyncObjNode, others: Sequence[Node]) -> None:
        super().__init__(None, None, None)
        self._node = node
        self.partners: dict[int, Node] = {n.id: n for n in others}
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    def tryGetReady(self) -> None:
        self._ready = True
        for node in list(self.partners.values()):
            self._onNodeConnected(node)

    def waitReady(self) -> None:
        self.tryGetReady()

    def addNode(self, node: Node) -> None:
        self.partners[node.id] = node
        self._onNodeConnected(node)

    def dropNode(self, node: Node) -> None:
        self.partners.pop(node.id, None)
        self._onNodeDisconnected(node)

    def send(self, node: Node, message: dict[str, Any]) -> bool:
        self._node._outgoing(node.id, message)
        return True

    def receive(self, src: int, message: Message) -> None:
        node = self.partners.get(src)
        if node is not None:
            self._onMessageReceived(node, _pickle.loads(message.body))

    def destroy(self) -> None:
        pass


class _NoPoller:
    """The poller SyncObj waits on at the end of a tick: nothing to wait for."""

    def subscribe(self, descr: Any, callback: Any, eventMask: Any) -> None:
        raise AssertionError("nothing may subscribe to the simulated poller")

    def unsubscribe(self, descr: Any) -> None:
        pass

    def poll(self, timeout: float) -> None:
        pass


class _DiskPath:
    def __init__(self, disk: Disk) -> None:
        self._disk = disk

    def isfile(self, name: str) -> bool:
        return self._disk.dump is not None


class _DiskOs:
    """`os` as syncobj.py sees it during a call: `os.path.isfile` on the dump."""

    def __init__(self, disk: Disk) -> None:
        self.path = _DiskPath(disk)


class KeyValue(SyncObj):
    """The replicated object: a key-value store, one `put` per client command."""

    def __init__(self, self_node: Node, others: Sequence[Node], conf: SyncObjConf, transport: Any):
        super().__init__(self_node, list(others), conf=conf, nodeClass=Node, transport=transport)
        # Set after SyncObj.__init__: only attributes set later are in its dumps.
        self.kv: dict[str, Any] = {}

    @replicated
    def put(self, key: str, value: Any, command_id: int) -> None:
        self.kv[key] = value


# -------------------------------------------------------------------- node


def _conf(options: NodeOptions) -> SyncObjConf:
    election_s = options.election_timeout_ms / 1000
    # SyncObjConf.validate: raftMinTimeout > 3 * appendEntriesPeriod.
    period_s = min(options.request_timeout_ms / 1000, election_s / 3.5)
    return SyncObjConf(
        autoTick=False,
        appendEntriesUseBatch=True,
        dynamicMembershipChange=True,
        raftMinTimeout=election_s,
        raftMaxTimeout=2 * election_s,
        appendEntriesPeriod=period_s,
        journalFile="journal",  # a name only: createJournal is ours during calls
        fullDumpFile="dump",
        useFork=False,
        logCompactionMinEntries=_NEVER,
        logCompactionMinTime=_NEVER,
    )


class PySyncObjNode(NodeAdapter):
    """One simulated server running PySyncObj; its replicated object is a
    small key-value store."""

    capabilities = Capabilities(
        membership=True,
        snapshots=True,
        options=frozenset({"election_timeout_ms", "request_timeout_ms"}),
        zero_node_id=True,
    )
    alive = False
    recent_applied: list[tuple[int, int, int]] = []

    def __init__(
        self,
        node_id: int,
        members: Membership,
        send: Send,
        rng: random.Random,
        options: NodeOptions,
    ) -> None:
        self.node_id = node_id
        self._send = send
        self._rng = rng
        self._conf = _conf(options)
        self.disk = Disk()
        # The partners it is started with, at every start (its configuration).
        self._started_with = tuple(sorted(n for n, _ in members if n != node_id))
        self._last_members: Membership = tuple(sorted((n, True) for n, _ in members))
        self._now_s = 0.0  # the machine's monotonic clock, in virtual seconds
        self._clock_reads = 0
        self._obj: KeyValue | None = None
        self._transport: _SimTransport | None = None
        self._applied_through = 0
        self._applied: dict[int, tuple[int, int]] = {}  # index -> (term, id), this run
        self._submitted: dict[int, int] = {}  # index -> command id taken here as leader
        self.recent_applied = []
        self._globals = {
            "monotonicTime": self._clock,
            "random": rng,
            "os": _DiskOs(self.disk),
            "createJournal": self._journal,
            "Serializer": self._serializer,
            "createPoller": lambda poller_type: _NoPoller(),
        }
        self._boot()

    # ------------------------------------------------------------ plumbing

    def _clock(self) -> float:
        self._clock_reads += 1
        if self._clock_reads > MAX_CLOCK_READS_PER_CALL:
            raise BusyLoop(
                f"the library read the clock {MAX_CLOCK_READS_PER_CALL} times in one call, "
                "waiting for time to pass"
            )
        return self._now_s

    def _journal(self, journal_file: str | None) -> DurableJournal:
        return DurableJournal(self.disk)

    def _serializer(self, *args: Any) -> DurableDump:
        return DurableDump(self, self._conf.logCompactionBatchSize)

    def _dump_loaded(self, index: int) -> None:
        """The library loaded the dump: what it covers was not applied now."""
        self._applied_through = index

    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a call into the library with its clock, random and files ours."""
        names = _library.__dict__
        self._clock_reads = 0
        saved = {name: names[name] for name in self._globals}
        names.update(self._globals)
        try:
            return function(*args)
        finally:
            names.update(saved)
            if self._obj is not None:
                self._settle()

    def _settle(self) -> None:
        """Report the entries the library applied during the call."""
        obj = self._obj
        assert obj is not None
        applied = obj.raftLastApplied
        start = self._applied_through
        if applied < start:  # a dump of an older state was loaded
            self._applied_through = applied
            return
        disk = self.disk
        for index in range(start + 1, applied + 1):
            # Applied in this call, so still in the journal (it compacts a
            # tick after it dumps), though the dump may already cover it.
            position = self._position(index, compacted=True)
            assert position is not None, f"applied entry {index} is not in the journal"
            entry = (disk.entries[position][2], disk.ids[position])
            self.recent_applied.append((index, *entry))
            self._applied[index] = entry
        self._applied_through = applied

    def _boot(self) -> None:
        others = [Node(n) for n in self._started_with]
        self._transport = _SimTransport(self, others)
        self._applied_through = 1  # the library's first entry (a no-op) counts as applied
        self._applied = {}
        self._submitted = {}
        conf = self._conf
        self._obj = self._call(KeyValue, Node(self.node_id), others, conf, self._transport)
        self.alive = True

    # ------------------------------------------------------------- actions

    def begin_step(self) -> None:
        if self.recent_applied:
            self.recent_applied = []

    def deliver(self, src: int, message: object) -> None:
        if self._obj is not None and isinstance(message, Message):
            assert self._transport is not None
            self._call(self._transport.receive, src, message)

    def _outgoing(self, dst: int, message: dict[str, Any]) -> None:
        """A message the library sends, onto the simulated network."""
        self._send(dst, _wrap(message))

    def _log_term(self, index: int) -> int | None:
        """The term of the journal's entry at `index` (the two entries the
        dump covers included); None when the journal does not hold it."""
        position = self._position(index, compacted=True)
        return None if position is None else self.disk.entries[position][2]

    def tick(self, msec: int) -> None:
        self._now_s += msec / 1000
        if self._obj is not None:
            self._call(self._obj.doTick, 0.0)

    def _redirect(self) -> Redirect:
        leader = self._obj._getLeader() if self._obj is not None else None
        return Redirect(leader.id if leader is not None else None)

    def _take(self, enqueue: Callable[..., None], *args: Any) -> SubmitResult:
        """Enqueue a command and let the leader take its queue now."""
        obj = self._obj
        if obj is None:
            return Refused("down")
        if not obj._isLeader():
            return self._redirect()
        failed: list[int] = []

        def callback(result: Any, error: int) -> None:
            if error != FAIL_REASON.SUCCESS:
                failed.append(error)

        before = self.disk.last_index
        self._call(enqueue, *args, callback)
        self._call(obj._checkCommandsToApply)
        index = self.disk.last_index
        if index == before + 1:
            return Submitted(index, obj.raftCurrentTerm)
        if failed == [FAIL_REASON.REQUEST_DENIED]:
            return Refused("the library denied the change (no-op or a change still pending)")
        return Refused(f"the command was not appended (fail reasons {failed})")

    def submit(self, command_id: int, data: object) -> SubmitResult:
        key, value = data  # type: ignore[misc]
        obj = self._obj

        def put(callback: Callable[..., None]) -> None:
            assert obj is not None
            obj.put(key, value, command_id, callback=callback)

        result = self._take(put)
        if isinstance(result, Submitted):
            self._submitted[result.index] = command_id
        return result

    def change_membership(self, change: MembershipChange, node: int) -> SubmitResult:
        obj = self._obj
        if obj is None:
            return Refused("down")
        if change is MembershipChange.ADD_NONVOTING:
            return self._take(obj.addNodeToCluster, Node(node))
        if change is MembershipChange.REMOVE:
            return self._take(obj.removeNodeFromCluster, Node(node))
        return Refused("PySyncObj has no non-voting members: every member votes")

    def is_committed(self, submitted: Submitted) -> bool | None:
        if self._obj is None:
            return None
        index = submitted.index
        entry = self.entry(index)
        if entry is None:
            if index > self.disk.last_index:
                return False  # truncated since: lost
            held = self._applied.get(index)
            if held is None:
                return None
            return held == (submitted.term, self._submitted.get(index, 0))
        if entry[0] != submitted.term:
            return False
        if index <= self._obj.raftCommitIndex:
            return True
        return None

    def take_snapshot(self) -> bool:
        obj = self._obj
        if obj is None:
            return False
        entries = self.disk.entries
        # The library keeps the two entries before its snapshot point; it
        # compacts only when the last applied entry is past them.
        if obj.raftLastApplied <= entries[0][1] + 1:
            return False
        obj.forceLogCompaction()
        return True

    def crash(self) -> None:
        if self._obj is not None:
            self._last_members = self.members
        self._obj = None
        self._transport = None
        self.alive = False
        self.recent_applied = []
        self._applied = {}
        self._submitted = {}

    def restart(self) -> None:
        self._boot()

    # ---------------------------------------------------------------- view

    def scalars(self) -> Scalars:
        return (
            self.alive,
            self.role,
            self.term,
            self.voted_for,
            self.commit_index,
            self.disk.last_index,
            self.disk.dump_index,
        )

    @property
    def role(self) -> Role:
        obj = self._obj
        return _ROLE[obj._SyncObj__raftState] if obj is not None else Role.FOLLOWER  # type: ignore[attr-defined]

    @property
    def term(self) -> int:
        return self._obj.raftCurrentTerm if self._obj is not None else self.disk.term

    @property
    def voted_for(self) -> int | None:
        if self._obj is not None:
            return self._obj._SyncObj__votedForNodeId  # type: ignore[attr-defined]
        return self.disk.meta.get("votedForNodeId")

    @property
    def commit_index(self) -> int:
        return self._obj.raftCommitIndex if self._obj is not None else 0

    @property
    def last_applied(self) -> int:  # type: ignore[override]
        return self._obj.raftLastApplied if self._obj is not None else 0

    @property
    def last_index(self) -> int:
        return self.disk.last_index

    @property
    def snapshot_index(self) -> int:
        return self.disk.dump_index

    @property
    def snapshot_term(self) -> int:
        return self.disk.dump_term

    def _position(self, index: int, *, compacted: bool = False) -> int | None:
        """Where `index` is in the journal; None when absent, or inside the
        dump unless `compacted` (the library keeps two entries it covers)."""
        disk = self.disk
        if (index <= disk.dump_index and not compacted) or not disk.entries:
            return None
        position = index - disk.entries[0][1]
        return position if 0 <= position < len(disk.entries) else None

    def entry(self, index: int) -> tuple[int, int] | None:
        position = self._position(index)
        if position is None:
            return None
        return self.disk.entries[position][2], self.disk.ids[position]

    def entry_kind(self, index: int) -> str:
        position = self._position(index)
        if position is None:
            return ""
        command = self.disk.entries[position][0]
        kind = ENTRY_KINDS.get(command[0], str(command[0]))
        if command[0] == MEMBERSHIP:
            request = _pickle.loads(command[1:])
            return f"{request[0]} {request[1]}"
        return kind

    @property
    def members(self) -> Membership:
        obj = self._obj
        if obj is None:
            return self._last_members
        others = obj._SyncObj__otherNodes  # type: ignore[attr-defined]
        return tuple(sorted([(self.node_id, True), *((n.id, True) for n in others)]))

    def leader_hint(self) -> int | None:
        if self._obj is None:
            return None
        leader = self._obj._getLeader()
        return leader.id if leader is not None else None

    def describe(self) -> dict[str, object]:
        """Extra facts for reports."""
        kv = self._obj.kv if self._obj is not None else {}
        return {"kv_keys": len(kv), "disk_writes": self.disk.writes}


factory = native.node_factory(
    PySyncObjNode, "pysyncobj", MESSAGES, "A PySyncObj server (the installed `pysyncobj` package)."
)


# ------------------------------------------------------- diagnosis door


class CorrectedNode(PySyncObjNode):
    """PySyncObj with shipped findings 1, 2, 3, 4, 6 and 7 corrected at the door.

    Each correction is one method below and changes only what crosses the
    door: a message is dropped or rewritten before the library reads it, a
    call is refused, the disk is compacted as the library would have done
    at its next tick, or a restart is given the node list of the server's
    latest configuration. A failure found through this door is therefore
    another cause (finding 5 was shrunk through it). None of the
    corrections acts on a clean network; `corrections` counts each one's
    uses, so a test can tell that a run never needed them.
    """

    drop_older_snapshots = False

    def __init__(
        self,
        node_id: int,
        members: Membership,
        send: Send,
        rng: random.Random,
        options: NodeOptions,
    ) -> None:
        self._voters: tuple[int, frozenset[int]] = (-1, frozenset())
        self.corrections: dict[str, int] = {}
        self._dump: DurableDump | None = None
        super().__init__(node_id, members, send, rng, options)

    def _corrected(self, name: str) -> None:
        self.corrections[name] = self.corrections.get(name, 0) + 1

    def deliver(self, src: int, message: object) -> None:
        if self._obj is None or not isinstance(message, Message):
            return
        fields = _pickle.loads(message.body)
        if message.kind == "response_vote" and self._second_vote(src, fields):
            return
        if message.kind == "append_entries" and self._older_snapshot(fields):
            return
        if message.kind == "append_entries":
            fields = self._checked_append(fields)
            message = _wrap(fields) if fields is not None else message
        super().deliver(src, message)

    def _second_vote(self, src: int, fields: dict[str, Any]) -> bool:
        """Finding 1: a candidate counts each voter once (Raft, Figure 2);
        the library counts responses of its term, so a second one from the
        same voter is dropped here."""
        obj = self._obj
        assert obj is not None
        term = obj.raftCurrentTerm
        if fields.get("term") != term:
            return False  # the library ignores it
        voted_term, voters = self._voters
        if voted_term != term:
            voters = frozenset()
        if src not in voters:
            self._voters = (term, voters | {src})
            return False
        self._corrected("second_vote")
        return True

    def _checked_append(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Findings 2 and 4: what an AppendEntries may do to this log.

        A snapshot chunk (no `prevLogIdx`) checks nothing, so its commit
        index must not move this server's (finding 4). A regular one whose
        entries this server already holds, followed by entries of the
        message's own term, is older than what its leader has since sent:
        Raft keeps those entries (Figure 2, AppendEntries rule 3), the
        library deletes them (finding 2), so it becomes a heartbeat at the
        end of that suffix. Either way the commit index given to the
        library covers only entries known to be the leader's (rule 5)."""
        obj = self._obj
        assert obj is not None
        commit = fields["commit_index"]
        if "prevLogIdx" not in fields:
            if commit > obj.raftCommitIndex and not self._installs(fields.get("serialized")):
                self._corrected("snapshot_chunk_commit")
                return {**fields, "commit_index": 0}
            return fields
        if "transmission" in fields:
            return fields
        prev = fields["prevLogIdx"]
        if self._log_term(prev) != fields["prevLogTerm"]:
            return fields  # the library rejects it
        entries = fields.get("entries", [])
        covered = prev + len(entries)
        if any(self._log_term(idx) not in (None, term) for _, idx, term in entries):
            return fields  # a conflict: the library's truncation is Raft's
        term = fields["term"]
        end = covered
        while self._log_term(end + 1) == term:
            end += 1
        fixed = fields
        if end > covered:
            self._corrected("stale_append")
            fixed = {**fields, "prevLogIdx": end, "prevLogTerm": term, "entries": []}
        if commit > end and self._log_term(end + 1) is not None:
            self._corrected("unchecked_commit")
            fixed = {**fixed, "commit_index": end}
        return fixed

    def _older_snapshot(self, fields: dict[str, Any]) -> bool:
        """Finding 5, corrected only through `corrected_snapshots`: the last
        chunk of a dump at or below this server's commit index describes a
        prefix of its log, which Raft keeps (§7); the library replaces the
        log with it, so the chunk is dropped here."""
        serialized = fields.get("serialized")
        if (
            not self.drop_older_snapshots
            or "prevLogIdx" in fields
            or not self._installs(serialized)
        ):
            return False
        assert self._dump is not None and self._obj is not None
        chunk = _pickle.to_bytes(serialized[0])
        blob = chunk if serialized[1] else self._dump.received + chunk
        if _pickle.loads(blob)[1][1] > self._obj.raftCommitIndex:
            return False
        self._corrected("older_snapshot")
        return True

    def _serializer(self, *args: Any) -> DurableDump:
        self._dump = super()._serializer(*args)
        return self._dump

    def _installs(self, serialized: Any) -> bool:
        """Whether this chunk completes a transmission, so the library loads
        the dump (and its commit index then covers only the dump)."""
        if not serialized or not serialized[2]:
            return False
        assert self._dump is not None
        return bool(serialized[1]) or self._dump.receiving

    def change_membership(self, change: MembershipChange, node: int) -> SubmitResult:
        """Finding 3: one membership change at a time (dissertation §4.1);
        the library's own guard never fires."""
        obj = self._obj
        if obj is not None and self._change_in_flight(obj.raftCommitIndex):
            self._corrected("second_change")
            return Refused("a membership change is still in flight")
        return super().change_membership(change, node)

    def _change_in_flight(self, commit_index: int) -> bool:
        return any(
            command[:1] == bytes([MEMBERSHIP])
            for command, index, _ in self.disk.entries
            if index > commit_index
        )

    def restart(self) -> None:
        self._compact_dumped_journal()
        self._start_with_latest_configuration()
        super().restart()

    def _compact_dumped_journal(self) -> None:
        """Finding 6: a restart finds the dump inside a journal not yet
        compacted; compacting it first, as the library's next tick would
        have, keeps the entries after the dump that the library clears."""
        disk = self.disk
        if disk.dump is None:
            return
        data = _pickle.loads(disk.dump)
        dumped = (tuple(data[2]), tuple(data[1]))
        for position in range(1, len(disk.entries) - 1):
            if tuple(disk.entries[position : position + 2]) == dumped:
                self._corrected("uncompacted_restart")
                del disk.entries[:position]
                del disk.ids[:position]
                return

    def _start_with_latest_configuration(self) -> None:
        """Finding 7: a server's configuration is the latest membership entry
        in its log (dissertation §4.1). The library applies one when it
        appends it and again only when it applies it after a restart, so the
        configuration it had at the crash is its log's; it restarts with that
        node list instead of the one it was first started with."""
        latest = tuple(sorted(n for n, _ in self._last_members if n != self.node_id))
        if latest != self._started_with:
            self._corrected("restart_configuration")
            self._started_with = latest


corrected = native.node_factory(
    CorrectedNode,
    "pysyncobj_corrected",
    MESSAGES,
    "PySyncObj with shipped findings 1, 2, 3, 4, 6 and 7 corrected at the door.",
)


class SnapshotCorrectedNode(CorrectedNode):
    """`CorrectedNode` with finding 5 corrected too (an older snapshot is
    dropped): the door that finding 8 was looked for through, since finding
    5 is most of what fails through `corrected`."""

    drop_older_snapshots = True


corrected_snapshots = native.node_factory(
    SnapshotCorrectedNode,
    "pysyncobj_corrected_snapshots",
    MESSAGES,
    "PySyncObj with shipped findings 1 to 7 corrected at the door.",
)


class TermCorrectedNode(SnapshotCorrectedNode):
    """`SnapshotCorrectedNode` with finding 8 corrected too: a leader drops
    an AppendEntries reply sent in another term.

    `next_node_idx` carries no term, so the door notes the sender's term on
    the envelope (beside the library's dict, which reaches the receiver
    unchanged) and the receiving leader's door reads it there."""

    def _outgoing(self, dst: int, message: dict[str, Any]) -> None:
        if message["type"] != "next_node_idx":
            super()._outgoing(dst, message)
            return
        # The follower answers after taking the AppendEntries' term, so its
        # own term is the term of the request it answers.
        self._send(dst, dataclasses.replace(_wrap(message), term=self.term))

    def deliver(self, src: int, message: object) -> None:
        if isinstance(message, Message) and self._earlier_term_ack(message):
            return
        super().deliver(src, message)

    def _earlier_term_ack(self, message: Message) -> bool:
        """Finding 8: a leader ignores replies of other terms (Raft, Figure
        2; the reply carries the term). The library takes any `next_node_idx`
        as about its current term, so a match from its earlier leadership
        counts for entries the follower may since have lost; it is dropped
        here."""
        if message.kind != "next_node_idx" or message.term is None:
            return False
        if self.role is not Role.LEADER or message.term == self.term:
            return False
        self._corrected("earlier_term_ack")
        return True


corrected_terms = native.node_factory(
    TermCorrectedNode,
    "pysyncobj_corrected_terms",
    MESSAGES,
    "PySyncObj with shipped findings 1 to 8 corrected at the door.",
)
