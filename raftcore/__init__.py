"""raftcore: a Raft server in pure Python, driven by calls and callbacks.

No networking, no clock, no global randomness: you deliver messages, you call
`periodic(msec)`, and the server talks back through your `Callbacks`. A tour,
three servers wired by hand through one queue:

>>> import random
>>> from raftcore import Callbacks, Config, Entry, EntryState, RaftServer
>>> queue = []
>>> class Wire(Callbacks):
...     def __init__(self, me): self.me, self.applied = me, []
...     def send_requestvote(self, to, msg): queue.append((self.me, to, msg))
...     def send_appendentries(self, to, msg): queue.append((self.me, to, msg))
...     def applylog(self, entry, index): self.applied.append(entry.data)
...     def persist_vote(self, vote): pass
...     def persist_term(self, term, vote): pass
...     def log_offer(self, entry, index): pass
...     def log_pop(self, entry, index): pass
>>> servers = {}
>>> for me in (1, 2, 3):
...     server = RaftServer(me, Wire(me), config=Config(), rng=random.Random(me))
...     for peer in (1, 2, 3):
...         server.add_node(peer, is_self=peer == me)
...     servers[me] = server
>>> def pump():
...     while queue:
...         src, dst, msg = queue.pop(0)
...         name = type(msg).__name__.lower()
...         reply = getattr(servers[dst], "recv_" + name)(src, msg)
...         if reply is not None:
...             getattr(servers[src], "recv_" + name + "_response")(dst, reply)
>>> servers[1].periodic(2000)      # node 1's election timeout fires first
>>> pump()
>>> servers[1].is_leader
True
>>> response = servers[1].recv_entry(Entry(term=0, id=7, data="x=1"))
>>> pump()
>>> servers[1].entry_committed(response) is EntryState.COMMITTED
True
>>> servers[1].callbacks.applied
[None, 'x=1']
>>> servers[2].periodic(200); pump()   # no heartbeat of its own to send: a follower
>>> servers[2].commit_index >= 1 and servers[2].get_current_leader()
1
"""

from raftcore.callbacks import Callbacks, MembershipEvent
from raftcore.config import Config
from raftcore.errors import (
    InvalidMessage,
    InvalidOperation,
    NeedsSnapshot,
    NotLeader,
    OneVotingChangeOnly,
    RaftError,
    Shutdown,
    SnapshotInProgress,
)
from raftcore.messages import (
    FIRST_USER_TYPE,
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryResponse,
    EntryState,
    EntryType,
    InstallSnapshot,
    InstallSnapshotResponse,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
    TimeoutNow,
)
from raftcore.server import RaftServer, Role

__all__ = [
    "FIRST_USER_TYPE",
    "AppendEntries",
    "AppendEntriesResponse",
    "Callbacks",
    "Config",
    "Entry",
    "EntryResponse",
    "EntryState",
    "EntryType",
    "InstallSnapshot",
    "InstallSnapshotResponse",
    "InvalidMessage",
    "InvalidOperation",
    "MembershipEvent",
    "Message",
    "NeedsSnapshot",
    "NotLeader",
    "OneVotingChangeOnly",
    "RaftError",
    "RaftServer",
    "RequestVote",
    "RequestVoteResponse",
    "Role",
    "Shutdown",
    "Snapshot",
    "SnapshotInProgress",
    "ReadIndexRequest",
    "ReadIndexResponse",
    "TimeoutNow",
]
