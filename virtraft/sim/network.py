"""The network: messages in flight, links up, down or held.

A sent message waits `delay_ms` in `_future`, then joins `pool`, from which
the scheduler picks what to deliver, drop or duplicate (any of them: that is
how reordering happens). A message on a link that is down is lost; on a held
(clogged) link it waits until the link is released. Link state is the set of
links down and the set held: every other link between two servers is up
(`has_link`). That is all connectivity questions need (Raft asks for direct
links, never paths), so the run does not load a graph library (about 20 MB,
more than a whole peer-w2 run).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from raftcore import quorum
from virtraft.adapter import DEFAULT_MESSAGES, Messages

Link = tuple[int, int]


@dataclass(slots=True, eq=False)
class Envelope:
    """One message in flight. Compared by identity: two copies are two envelopes."""

    id: int
    src: int
    dst: int
    message: object
    kind: str
    key: int
    sent_ms: int
    origin: int  # id of the envelope first sent: a copy keeps its original's


@dataclass(slots=True)
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    lost_on_cut_links: int = 0


class Network:
    def __init__(self, nodes: Iterable[int], messages: Messages = DEFAULT_MESSAGES) -> None:
        # What a message's kind and identity are: the implementation says (the door).
        self._key = messages.key
        # None: the type's name, read inline (a call per message sent costs).
        self._kind = messages.kind if type(messages).kind is not Messages.kind else None
        self._content_key = (
            messages.content_key if type(messages).content_key is not Messages.content_key else None
        )
        self.pool: list[Envelope] = []
        self._future: list[tuple[int, int, Envelope]] = []
        self._held: dict[Link, list[Envelope]] = {}
        self._down: set[Link] = set()
        self._held_links: set[Link] = set()
        # Every envelope in flight (deliverable, delayed or held) by id, so an
        # event names its envelope by id and does not keep it (or its message)
        # alive once it has left the network.
        self._flying: dict[int, Envelope] = {}
        self._next_id = 0
        self.stats = NetworkStats()
        self._nodes: list[int] = []
        self._node_set: set[int] = set()
        for node in nodes:
            self.add_node(node)

    # -------------------------------------------------------------- topology

    @property
    def nodes(self) -> Sequence[int]:
        return self._nodes

    def add_node(self, node: int) -> None:
        """A new server joins with links up to and from everyone."""
        if node in self._node_set:
            return
        self._node_set.add(node)
        self._nodes.append(node)
        self._nodes.sort()

    def remove_node(self, node: int) -> None:
        """Forget a node that never joined or is gone for good (its id is not
        used again): what was on its way to it is lost, its links go from the
        partition; what it sent before is still delivered, as a real network would."""
        if node not in self._node_set:
            return
        self._node_set.discard(node)
        self._nodes.remove(node)
        self._down = {link for link in self._down if node not in link}
        self._held_links = {link for link in self._held_links if node not in link}
        lost = [env for env in self.pool if env.dst == node]
        lost += [item[2] for item in self._future if item[2].dst == node]
        for link in [link for link in self._held if node in link]:
            held = self._held.pop(link)
            if link[1] == node:
                lost += held
            else:  # its link is gone, not held any more
                self.pool.extend(held)
        if not lost:
            return
        self.stats.lost_on_cut_links += len(lost)
        for env in lost:
            del self._flying[env.id]
        self.pool = [env for env in self.pool if env.dst != node]
        if any(item[2].dst == node for item in self._future):
            self._future = [item for item in self._future if item[2].dst != node]
            heapq.heapify(self._future)

    @property
    def partitioned(self) -> bool:
        return bool(self._down or self._held_links)

    def set_partition(self, down: Iterable[Link], held: Iterable[Link] = ()) -> None:
        """Replace the link state: `down` links lose messages, `held` keep them."""
        self.heal()
        self._down = set(down)
        self._held_links = set(held) - self._down
        kept: list[Envelope] = []
        for env in self.pool:
            self._route(env, kept)
        self.pool = kept
        if self._future:
            future = []
            for item in self._future:
                env = item[2]
                if (env.src, env.dst) in self._down:
                    self.stats.lost_on_cut_links += 1
                    del self._flying[env.id]
                else:
                    future.append(item)
            heapq.heapify(future)
            self._future = future

    def heal(self) -> None:
        """All links up again; held messages rejoin the pool in send order."""
        self._down.clear()
        self._held_links.clear()
        released = [env for link in sorted(self._held) for env in self._held[link]]
        released.sort(key=lambda env: env.id)
        self._held.clear()
        self.pool.extend(released)

    def has_link(self, src: int, dst: int) -> bool:
        """Is the link from `src` to `dst` up (neither down nor held)? A server
        has no link to itself, and none to or from a server the network forgot."""
        link = (src, dst)
        return (
            src != dst
            and src in self._node_set
            and dst in self._node_set
            and link not in self._down
            and link not in self._held_links
        )

    def connected_majority(self, voters: Sequence[int]) -> bool:
        """Could some voter lead? True when one voter has two-way links to
        enough others to make a majority with itself (Raft needs direct
        links from the leader, not paths)."""
        need = quorum.majority(len(voters))
        present = [v for v in voters if v in self._node_set]
        return any(
            1 + sum(1 for w in present if self.has_link(v, w) and self.has_link(w, v)) >= need
            for v in present
        )

    # -------------------------------------------------------------- messages

    def send(self, src: int, dst: int, message: object, now_ms: int, delay_ms: int) -> None:
        self.stats.sent += 1
        if (src, dst) in self._down:
            self.stats.lost_on_cut_links += 1
            return
        env = Envelope(
            self._next_id,
            src,
            dst,
            message,
            type(message).__name__ if self._kind is None else self._kind(message),
            self._key(message),
            now_ms,
            self._next_id,
        )
        self._next_id += 1
        self._flying[env.id] = env
        if delay_ms > 0:
            heapq.heappush(self._future, (now_ms + delay_ms, env.id, env))
        elif self._held_links and (src, dst) in self._held_links:
            self._held.setdefault((src, dst), []).append(env)
        else:
            self.pool.append(env)

    def advance(self, now_ms: int) -> None:
        """Messages whose delay has passed become deliverable."""
        future = self._future
        while future and future[0][0] <= now_ms:
            env = heapq.heappop(future)[2]
            self._route(env, self.pool)

    def _route(self, env: Envelope, pool: list[Envelope]) -> None:
        link = (env.src, env.dst)
        if link in self._down:
            self.stats.lost_on_cut_links += 1
            del self._flying[env.id]
        elif link in self._held_links:
            self._held.setdefault(link, []).append(env)
        else:
            pool.append(env)

    def envelope(self, env_id: int) -> Envelope | None:
        """The envelope in flight with this id, if it is still in flight."""
        return self._flying.get(env_id)

    def find(self, src: int, dst: int, key: int) -> Envelope | None:
        """The oldest message on src->dst with this content digest, deliverable
        now or still delayed (a replayed trace may deliver a message sooner
        than the run that recorded it); held messages are not deliverable.
        When none has it, and the door's key covers a note beside the
        message, the oldest whose content alone has it."""
        for env in self.pool:
            if env.key == key and env.src == src and env.dst == dst:
                return env
        match = None
        for _due, _id, env in self._future:
            if (
                env.key == key
                and env.src == src
                and env.dst == dst
                and (match is None or env.id < match.id)
            ):
                match = env
        if match is None and self._content_key is not None:
            return self._find_by_content(src, dst, key, self._content_key)
        return match

    def _find_by_content(
        self, src: int, dst: int, key: int, content_key: Callable[[object], int | None]
    ) -> Envelope | None:
        """`find` by the digest of the message alone (a trace recorded through
        a door that notes nothing beside it). Its own loops, not a predicate
        `find` shares: `find` runs for every message event a replay applies."""
        for env in self.pool:
            if env.src == src and env.dst == dst and content_key(env.message) == key:
                return env
        later = [
            env
            for _due, _id, env in self._future
            if env.src == src and env.dst == dst and content_key(env.message) == key
        ]
        return min(later, key=lambda env: env.id, default=None)

    def find_newest(self, src: int, dst: int, kind: str) -> Envelope | None:
        """The newest message of type `kind` on src->dst, whatever its content
        (by when it was first sent: a network copy is as old as its original).
        Shrinking uses it when the exact message is gone: with events removed
        before it, what the trace meant is most like the latest message of
        its type (a vote request of the term the sender has reached now, not
        one left over from an earlier round)."""
        flying = itertools.chain(self.pool, (item[2] for item in self._future))
        same = [env for env in flying if env.kind == kind and env.src == src and env.dst == dst]
        return max(same, key=lambda env: (env.origin, env.id), default=None)

    def take(self, env: Envelope) -> None:
        """Remove a message from flight (delivered or dropped)."""
        try:
            self.pool.remove(env)
        except ValueError:
            self._future = [item for item in self._future if item[2] is not env]
            heapq.heapify(self._future)
        self._flying.pop(env.id, None)

    def duplicate(self, env: Envelope) -> Envelope:
        copy = Envelope(
            self._next_id, env.src, env.dst, env.message, env.kind, env.key, env.sent_ms, env.origin
        )
        self._next_id += 1
        self._flying[copy.id] = copy
        self._route(copy, self.pool)
        self.stats.duplicated += 1
        return copy

    @property
    def in_flight(self) -> int:
        return len(self.pool) + len(self._future) + sum(len(v) for v in self._held.values())

    def drop_all_in_flight(self) -> None:
        """Forget every message in flight (used to start a clean liveness phase)."""
        self.stats.dropped += self.in_flight
        self.pool.clear()
        self._future.clear()
        self._held.clear()
        self._flying.clear()
