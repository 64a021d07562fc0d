"""RaftServer: one Raft participant, driven by calls, speaking through callbacks.

Reading guide. Each rule of the protocol lives in one place named for it:

- message validation ...... `validation.py`, one `check_*` per message type
- the term rule ........... `step` (leader stickiness), `_follow_newer_term`
- election timeout ........ `periodic`, `_reset_election_timer`
- who may campaign ........ `membership.may_campaign`
- vote granting ........... `_may_grant_vote`
- up-to-date log check .... `_candidate_log_is_up_to_date`
- leader stickiness ....... `_in_leader_lease`
- log consistency check ... `_log_matches`
- conflict hint ........... `_conflict_hint`
- truncation .............. `_truncate_log_from`
- appending new entries ... `_append_new_entries`
- follower commit ......... `_advance_follower_commit`
- the commit rule ......... `_maybe_commit` (majorities in `quorum.py`)
- check-quorum ............ `_check_quorum`
- replication flow ........ `progress.Progress`: PROBE, REPLICATE, SNAPSHOT
- durable first ........... `_append_entry`, `_truncate_log_from`, `_compact_log`,
                            `become_follower`, `become_candidate`
- synced before replying .. `_sync_before_reply`; before sending, counting its
                            own log (`_maybe_commit`) and after a snapshot:
                            `callbacks.sync()`
- membership changes ...... `membership.py`: `apply_change`, `Configurations`,
                            `check_proposal` (via `_validate_membership_change`)
- caught-up members ....... `_maybe_report_sufficient_logs`
- linearizable reads ...... `read_index`, `_serve_reads`, `_lease_holds` (§6.4,
                            bookkeeping in `reads.py`); a follower's read:
                            `_forward_read`, `_handle_readindex_*`,
                            `_serve_forwarded`; sessions in `sessions.py`
- leadership transfer ..... `transfer_leadership`, `_maybe_send_timeoutnow`,
                            `_handle_timeoutnow` (§3.10)

Every message enters through `step`, directly or through the seed's
`recv_*` names: it is validated once, the term rule is applied once, and a
table sends it to its handler (`_handle_*`). A refused message raises an
InvalidMessage and changes nothing. Roles change only in the `become_*`
methods.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from raftcore import membership, quorum, validation
from raftcore.callbacks import Callbacks, MembershipEvent
from raftcore.config import Config
from raftcore.errors import (
    InvalidMessage,
    InvalidOperation,
    NeedsSnapshot,
    NotLeader,
    Shutdown,
    SnapshotInProgress,
)
from raftcore.log import Log
from raftcore.membership import MEMBERSHIP_CHANGES, Configurations, Membership
from raftcore.messages import (
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
    is_entry_type,
)
from raftcore.progress import REPLICATE, Progress
from raftcore.reads import PendingRead, Reads


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRECANDIDATE = "precandidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


# The roles as module globals for the comparisons made on every message and
# tick: on Python 3.11 `Role.LEADER` is found through EnumType.__getattr__,
# at several times the cost of a global.
_FOLLOWER = Role.FOLLOWER
_PRECANDIDATE = Role.PRECANDIDATE
_CANDIDATE = Role.CANDIDATE
_LEADER = Role.LEADER


class _Kind(enum.Enum):
    """Who sends a message type, which decides what its newer term does."""

    VOTE_REQUEST = "vote request"  # from a (pre-)candidate
    VOTE_RESPONSE = "vote response"  # to a (pre-)candidate
    LEADER_REQUEST = "leader request"  # from a leader: AppendEntries, InstallSnapshot
    LEADER_RESPONSE = "leader response"  # to a leader


@dataclass(frozen=True, slots=True)
class _Route:
    """How `step` takes one message type."""

    check: validation.Check
    kind: _Kind
    # The RaftServer method that handles it, looked up by name so that a
    # subclass may override it.
    handler: str


_ROUTES: dict[type, _Route] = {
    RequestVote: _Route(validation.check_requestvote, _Kind.VOTE_REQUEST, "_handle_requestvote"),
    RequestVoteResponse: _Route(
        validation.check_requestvote_response, _Kind.VOTE_RESPONSE, "_handle_requestvote_response"
    ),
    AppendEntries: _Route(
        validation.check_appendentries, _Kind.LEADER_REQUEST, "_handle_appendentries"
    ),
    AppendEntriesResponse: _Route(
        validation.check_appendentries_response,
        _Kind.LEADER_RESPONSE,
        "_handle_appendentries_response",
    ),
    InstallSnapshot: _Route(
        validation.check_installsnapshot, _Kind.LEADER_REQUEST, "_handle_installsnapshot"
    ),
    InstallSnapshotResponse: _Route(
        validation.check_installsnapshot_response,
        _Kind.LEADER_RESPONSE,
        "_handle_installsnapshot_response",
    ),
    TimeoutNow: _Route(validation.check_timeoutnow, _Kind.LEADER_REQUEST, "_handle_timeoutnow"),
    ReadIndexRequest: _Route(
        validation.check_readindex_request, _Kind.LEADER_RESPONSE, "_handle_readindex_request"
    ),
    ReadIndexResponse: _Route(
        validation.check_readindex_response, _Kind.LEADER_REQUEST, "_handle_readindex_response"
    ),
}


class RaftServer:
    def __init__(
        self,
        node_id: int,
        callbacks: Callbacks,
        *,
        config: Config | None = None,
        rng: random.Random,
    ) -> None:
        validation.check_int(node_id, "node_id")
        if not isinstance(rng, random.Random):
            raise TypeError("rng must be a random.Random; raftcore has no randomness of its own")
        self.node_id = node_id
        self.callbacks = callbacks
        self.config = config if config is not None else Config()
        self._rng = rng
        self._log = Log()
        # Durable state: taken only once its callback has persisted it, and
        # so before anyone hears of it.
        self.current_term = 0
        self.voted_for: int | None = None
        # Volatile state. Invariant: last_applied <= commit_index <= last_log_index.
        self.role = _FOLLOWER
        self.leader_id: int | None = None
        self.commit_index = 0
        self.last_applied = 0
        self._election_elapsed_ms = 0
        self._heartbeat_elapsed_ms = 0
        self._election_timeout_ms = 0
        self._votes: set[int] = set()
        # Membership: which configuration is in force at each index, and the
        # leader's progress for each member of the latest one.
        self._configs = Configurations()
        # Invariant: _members holds exactly the members of _configs.latest().
        self._members: dict[int, Progress] = {}
        self._peers: list[Progress] = []  # members except self, sorted by id
        self._members_view: Membership = ()  # what members() returns, kept with _members
        # Snapshots.
        self.snapshot: Snapshot | None = None
        self._snapshot_in_progress: int | None = None
        self._incoming_snapshot: tuple[int, int, bytearray] | None = None
        self._loading_snapshot: list[tuple[int, Entry]] | None = None
        # Time as this server has seen it pass (periodic), for read leases.
        self._clock_ms = 0
        # A leader's reads in waiting and heartbeat rounds (§6.4).
        self._reads = Reads()
        # A follower's forwarded reads: request id -> the leader's read index
        # (None until the leader answered).
        self._forwarded: dict[int, int | None] = {}
        # Leadership transfer (§3.10): the member handed to, and for how long.
        self._transfer_target: int | None = None
        self._transfer_elapsed_ms = 0
        self._transfer_campaign = False  # this election was asked by TimeoutNow
        # That makes 29 attributes. On Python 3.11 attribute access is fast
        # only for instances of up to 29: a 30th (even a plain int) was
        # measured to cost the server ~6% more instructions per message and
        # tick. Group a new field into one of the objects above instead.
        self._reset_election_timer()

    # ------------------------------------------------------------------ restart

    @classmethod
    def restore(
        cls,
        node_id: int,
        callbacks: Callbacks,
        *,
        config: Config | None = None,
        rng: random.Random,
        members: Membership,
        term: int,
        voted_for: int | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> RaftServer:
        """Rebuild a server from what its callbacks persisted.

        `members` is the bootstrap configuration; a snapshot's membership and
        the membership entries in `entries` are replayed on top of it.
        """
        server = cls(node_id, callbacks, config=config, rng=rng)
        validation.check_int(term, "term")
        server.current_term = term
        server.voted_for = voted_for
        if snapshot is not None:
            server._log.reset(snapshot.last_index, snapshot.last_term)
            server.snapshot = snapshot
            server.commit_index = server.last_applied = snapshot.last_index
            server._set_base_members(snapshot.members)
            callbacks.load_snapshot(snapshot)
        else:
            server._set_base_members(members)
        for entry in entries:
            index = server._log.append(entry)
            if entry.type in MEMBERSHIP_CHANGES:
                server._apply_membership_entry(entry, index)
        return server

    # ------------------------------------------------------- bootstrap membership

    def add_node(self, node_id: int, *, is_self: bool = False) -> None:
        """Bootstrap: declare a voting member (the seed's raft_add_node)."""
        self._add_bootstrap_member(node_id, True, is_self)

    def add_non_voting_node(self, node_id: int, *, is_self: bool = False) -> None:
        """Bootstrap: declare a member that replicates but does not vote."""
        self._add_bootstrap_member(node_id, False, is_self)

    def remove_node(self, node_id: int) -> None:
        """Bootstrap: forget a member (used when loading a snapshot by hand)."""
        members = tuple(m for m in self._configs.base if m[0] != node_id)
        self._set_base_members(members)

    def _add_bootstrap_member(self, node_id: int, voting: bool, is_self: bool) -> None:
        validation.check_int(node_id, "node_id")
        if is_self and node_id != self.node_id:
            raise InvalidOperation(f"node {node_id} is not this server ({self.node_id})")
        members = dict(self._configs.base)
        members[node_id] = voting
        self._set_base_members(tuple(sorted(members.items())))

    def _set_base_members(self, members: Membership) -> None:
        self._configs.base = tuple(sorted(members))
        self._install_members(self._configs.latest())

    # ---------------------------------------------------------------- getters

    @property
    def last_log_index(self) -> int:
        return self._log.last_index

    @property
    def last_log_term(self) -> int:
        return self._log.last_term

    @property
    def snapshot_last_index(self) -> int:
        return self._log.base_index

    @property
    def snapshot_last_term(self) -> int:
        return self._log.base_term

    @property
    def is_leader(self) -> bool:
        return self.role is _LEADER

    def get_current_leader(self) -> int | None:
        """Who to redirect a client to: the leader this server last heard from."""
        return self.leader_id

    def get_entry(self, index: int) -> Entry | None:
        """The entry at index, or None when it is compacted or not there."""
        return self._log.get(index)

    def term_at(self, index: int) -> int | None:
        return self._log.term_at(index)

    def members(self) -> Membership:
        """The configuration in force: (node id, is voting), sorted by id."""
        return self._members_view

    def members_at(self, index: int) -> Membership:
        """The configuration in force once entry `index` is appended."""
        return self._configs.at(index)

    def is_member(self, node_id: int) -> bool:
        """node_id is in the configuration in force."""
        return node_id in self._members

    def voting_members(self) -> tuple[int, ...]:
        return tuple(m.node_id for m in self._sorted_members() if m.voting)

    def is_voter(self, node_id: int | None = None) -> bool:
        member = self._members.get(self.node_id if node_id is None else node_id)
        return member is not None and member.voting

    def member_progress(self, node_id: int) -> Progress | None:
        """The leader's view of a member (next and match index, flow state);
        read-only use."""
        return self._members.get(node_id)

    @property
    def snapshot_in_progress(self) -> bool:
        return self._snapshot_in_progress is not None

    # ------------------------------------------------------------------- roles

    def become_follower(self, term: int, leader_id: int | None) -> None:
        if self.role is _LEADER:
            self._leave_leadership()
        if term > self.current_term:
            self.callbacks.persist_term(term, None)
            self.current_term = term
            self.voted_for = None
        self.role = _FOLLOWER
        self.leader_id = leader_id
        self._votes.clear()

    def become_precandidate(self) -> None:
        """Raft dissertation §9.6: poll the voters before disrupting anyone."""
        self.role = _PRECANDIDATE
        self.leader_id = None
        self._votes = {self.node_id}
        self._reset_election_timer()
        if self._won_election():
            self.become_candidate()
            return
        self._request_votes(prevote=True)

    def become_candidate(self) -> None:
        term = self.current_term + 1
        self.callbacks.persist_term(term, self.node_id)
        self.current_term = term
        self.voted_for = self.node_id
        self.role = _CANDIDATE
        self.leader_id = None
        self._votes = {self.node_id}
        self._reset_election_timer()
        if self._won_election():
            self.become_leader()
            return
        self._request_votes(prevote=False)

    def become_leader(self) -> None:
        assert self.role is _CANDIDATE
        self.role = _LEADER
        self.leader_id = self.node_id
        self._reads = Reads()
        self._transfer_target = None
        self._heartbeat_elapsed_ms = 0
        self._election_elapsed_ms = 0
        next_index = self._log.last_index + 1
        for member in self._peers:
            member.reset(next_index)
        self.callbacks.log(f"node {self.node_id} became leader in term {self.current_term}")
        if self.config.noop_on_election:
            # Appending sends the no-op to every peer: it is the first heartbeat.
            self._append_as_leader([Entry(self.current_term, 0, EntryType.NOOP)])
        else:
            self._maybe_commit()
            self._send_heartbeats()

    def _start_election(self) -> None:
        if self.config.prevote:
            self.become_precandidate()
        else:
            self.become_candidate()

    def _request_votes(self, *, prevote: bool) -> None:
        term = self.current_term + 1 if prevote else self.current_term
        msg = RequestVote(
            term,
            self.node_id,
            self._log.last_index,
            self._log.last_term,
            prevote,
            self._transfer_campaign,
        )
        self.callbacks.sync()  # the new term and the vote for itself, before anyone hears
        for member in self._peers:
            if member.voting:
                self.callbacks.send_requestvote(member.node_id, msg)

    def _won_election(self) -> bool:
        return quorum.vote_result(self.voting_members(), self._votes)

    # -------------------------------------------------------------------- time

    def periodic(self, msec: int) -> None:
        """Let `msec` milliseconds pass: heartbeats, check-quorum, elections."""
        if type(msec) is not int or msec < 0:
            raise InvalidOperation(f"periodic needs a whole number of msec >= 0, got {msec!r}")
        self._election_elapsed_ms += msec
        self._clock_ms += msec
        if self.role is _LEADER:
            self._heartbeat_elapsed_ms += msec
            if self._transfer_target is not None:
                self._age_transfer(msec)
            if self._election_elapsed_ms >= self.config.election_timeout_ms:
                self._election_elapsed_ms = 0
                if self.config.check_quorum and self._check_quorum():
                    return
            if self._heartbeat_elapsed_ms >= self.config.request_timeout_ms:
                self._heartbeat_elapsed_ms = 0
                self._send_heartbeats()
        elif self._election_elapsed_ms >= self._election_timeout_ms and membership.may_campaign(
            self.node_id, self._configs, self.commit_index
        ):
            self._start_election()

    def _reset_election_timer(self) -> None:
        """Raft §5.2: a random timeout in [T, 2T) keeps split votes rare."""
        base = self.config.election_timeout_ms
        self._election_elapsed_ms = 0
        self._election_timeout_ms = base + self._rng.randrange(base)

    def _in_leader_lease(self) -> bool:
        """Leader stickiness (dissertation §4.2.3): while a leader was heard from
        within the minimum election timeout, vote requests are ignored. With
        read leases a server that just started ignores them too for its
        first election timeout: it may have answered a leader's round
        before it went down, and that leader's lease counts on its vote."""
        timeout = self.config.election_timeout_ms
        if self.config.lease_read and self._clock_ms < timeout:
            return True
        return self.leader_id is not None and self._election_elapsed_ms < timeout

    def _check_quorum(self) -> bool:
        """Dissertation §6.2: step down if a majority was not heard from within
        an election timeout. Returns True when the leader stepped down."""
        active = [self.node_id] if self.is_voter() else []
        for member in self._peers:
            if member.recent_active and member.voting:
                active.append(member.node_id)
            member.recent_active = False
        if quorum.vote_result(self.voting_members(), active):
            return False
        self.callbacks.log(f"node {self.node_id} lost contact with a majority; stepping down")
        self.become_follower(self.current_term, None)
        self._reset_election_timer()
        return True

    # ---------------------------------------------------------------- messages

    def step(self, src: int, msg: Message) -> Message | None:
        """Take one message from node `src`: validate it, apply the term rule,
        and hand it to its handler. Returns the response to send back to
        `src` (requests), or None (responses)."""
        route = _ROUTES.get(type(msg))
        if route is None:
            raise InvalidMessage(f"not a raftcore message: {type(msg).__name__}")
        route.check(self, src, msg)
        if msg.term > self.current_term:
            if route.kind is _Kind.VOTE_REQUEST and not msg.transfer and self._in_leader_lease():
                # Leader stickiness (dissertation §4.2.3): while a leader is
                # heard from, a vote request's newer term is neither adopted
                # nor voted for.
                return RequestVoteResponse(self.current_term, False, msg.prevote)
            if not self._follow_newer_term(src, msg, route.kind):
                return self._sync_before_reply(None)
        return self._sync_before_reply(getattr(self, route.handler)(src, msg))

    def _sync_before_reply(self, reply: Message | None) -> Message | None:
        """Raft Figure 2: persistent state is "updated on stable storage before
        responding to RPCs". Every message taken ends here, a response too, so
        a newer term it brought is durable before the next message: a term
        never goes back across a crash that loses unsynced writes."""
        self.callbacks.sync()
        return reply

    def _follow_newer_term(self, src: int, msg: Any, kind: _Kind) -> bool:
        """The term rule (Raft Figure 2, rules for all servers): a request or
        response with a newer term makes this server a follower in that term.
        Pre-vote traffic is the exception (dissertation §9.6): it carries the
        term a candidate would stand in, and changes nobody's. Returns False
        when nothing is left to handle: a response from a newer term says only
        that this server is behind."""
        if kind is _Kind.VOTE_REQUEST and msg.prevote:
            return True
        if kind is _Kind.VOTE_RESPONSE and msg.prevote and msg.vote_granted:
            return True
        self.become_follower(msg.term, src if kind is _Kind.LEADER_REQUEST else None)
        if kind is _Kind.LEADER_RESPONSE:
            # The timer of a leader counted check-quorum rounds, not toward an
            # election: give the deposed leader a fresh timeout.
            self._reset_election_timer()
        return kind is _Kind.VOTE_REQUEST or kind is _Kind.LEADER_REQUEST

    # The seed's entry points, one per message type.

    def recv_requestvote(self, node_id: int, msg: RequestVote) -> RequestVoteResponse:
        validation.expect(msg, RequestVote)
        return cast(RequestVoteResponse, self.step(node_id, msg))

    def recv_requestvote_response(self, node_id: int, msg: RequestVoteResponse) -> None:
        validation.expect(msg, RequestVoteResponse)
        self.step(node_id, msg)

    def recv_appendentries(self, node_id: int, msg: AppendEntries) -> AppendEntriesResponse:
        validation.expect(msg, AppendEntries)
        return cast(AppendEntriesResponse, self.step(node_id, msg))

    def recv_appendentries_response(self, node_id: int, msg: AppendEntriesResponse) -> None:
        validation.expect(msg, AppendEntriesResponse)
        self.step(node_id, msg)

    def recv_installsnapshot(self, node_id: int, msg: InstallSnapshot) -> InstallSnapshotResponse:
        validation.expect(msg, InstallSnapshot)
        return cast(InstallSnapshotResponse, self.step(node_id, msg))

    def recv_installsnapshot_response(self, node_id: int, msg: InstallSnapshotResponse) -> None:
        validation.expect(msg, InstallSnapshotResponse)
        self.step(node_id, msg)

    # ------------------------------------------------------------- RequestVote

    def _handle_requestvote(self, node_id: int, msg: RequestVote) -> RequestVoteResponse:
        """Raft Figure 2, RequestVote receiver; a pre-vote only asks whether
        the vote would be granted, and nothing is recorded."""
        if msg.prevote:
            granted = msg.term > self.current_term and self._candidate_log_is_up_to_date(
                msg.last_log_index, msg.last_log_term
            )
            return RequestVoteResponse(msg.term if granted else self.current_term, granted, True)
        granted = self._may_grant_vote(msg)
        if granted:
            self.callbacks.persist_vote(msg.candidate_id)
            self.voted_for = msg.candidate_id
            self._reset_election_timer()
        return RequestVoteResponse(self.current_term, granted)

    def _may_grant_vote(self, msg: RequestVote) -> bool:
        """Raft §5.2, §5.4.1: one vote per term, and only for an up-to-date log."""
        return (
            msg.term == self.current_term
            and self.role is _FOLLOWER
            and self.voted_for in (None, msg.candidate_id)
            and self._candidate_log_is_up_to_date(msg.last_log_index, msg.last_log_term)
        )

    def _candidate_log_is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft §5.4.1: compare last terms first, then lengths."""
        my_term = self._log.last_term
        if last_term != my_term:
            return last_term > my_term
        return last_index >= self._log.last_index

    def _handle_requestvote_response(self, node_id: int, msg: RequestVoteResponse) -> None:
        """Count a vote given in this term (a pre-vote: for the next one)."""
        if not msg.vote_granted:
            return
        if msg.prevote:
            if self.role is _PRECANDIDATE and msg.term == self.current_term + 1:
                self._count_vote(node_id, self.become_candidate)
        elif self.role is _CANDIDATE and msg.term == self.current_term:
            self._count_vote(node_id, self.become_leader)

    def _count_vote(self, node_id: int, on_win) -> None:
        self._votes.add(node_id)
        if self._won_election():
            on_win()

    # ----------------------------------------------------------- AppendEntries

    def _handle_appendentries(self, node_id: int, msg: AppendEntries) -> AppendEntriesResponse:
        """Raft Figure 2, AppendEntries receiver, rules 1-5."""
        if msg.term < self.current_term:
            return AppendEntriesResponse(
                self.current_term,
                False,
                rejected_index=msg.prev_log_index,
                hint_index=self._log.last_index,
            )
        self._hear_from_leader(msg.term, msg.leader_id)
        if not self._log_matches(msg.prev_log_index, msg.prev_log_term):
            # A rejection still answers the leader's round: it is this term's leader.
            return AppendEntriesResponse(
                self.current_term,
                False,
                rejected_index=msg.prev_log_index,
                hint_index=self._conflict_hint(msg.prev_log_index),
                read_round=msg.read_round,
            )
        match_index = self._append_new_entries(msg.prev_log_index, msg.entries)
        self._advance_follower_commit(min(msg.leader_commit, match_index))
        return AppendEntriesResponse(
            self.current_term, True, match_index=match_index, read_round=msg.read_round
        )

    def _hear_from_leader(self, term: int, leader_id: int) -> None:
        """The leader of this server's term spoke: follow it, and restart the
        election timer. (`step` has already adopted a newer term.)"""
        if self.role is not _FOLLOWER:
            self.become_follower(term, leader_id)
        self.leader_id = leader_id
        self._reset_election_timer()

    def _log_matches(self, prev_index: int, prev_term: int) -> bool:
        """Raft §5.3 consistency check. A compacted index is committed, and a
        committed entry is on every leader's log (§5.4), so it matches."""
        if prev_index < self._log.base_index:
            return True
        return self._log.term_at(prev_index) == prev_term

    def _conflict_hint(self, prev_index: int) -> int:
        """The last index that may still match the leader: the end of a short
        log, or just before the conflicting term's first entry (§5.3 note)."""
        if prev_index > self._log.last_index:
            return self._log.last_index
        conflict_term = self._log.term_at(prev_index)
        index = prev_index - 1
        while index > self.commit_index and self._log.term_at(index) == conflict_term:
            index -= 1
        return max(index, self.commit_index)

    def _append_new_entries(self, prev_index: int, entries: Sequence[Entry]) -> int:
        """Append what is new; truncate only at a real conflict (Raft §5.3)."""
        log = self._log
        index = prev_index
        for offset, entry in enumerate(entries):
            index = prev_index + 1 + offset
            if index <= log.base_index:
                continue
            if index <= log.last_index:
                if log.term_at(index) == entry.term:
                    continue
                self._truncate_log_from(index)
            self._append_entry(entry)
        return prev_index + len(entries)

    def _truncate_log_from(self, index: int) -> None:
        """Drop entries index.. (youngest first). Committed entries never go.
        Each leaves memory only once log_pop has removed it from disk; if the
        host refuses one, the log ends there, and so does the undoing of the
        configurations truncated."""
        # validation.check_committed_entries_kept refused any request that
        # would get here with a committed index.
        assert index > self.commit_index, (index, self.commit_index)
        log = self._log
        try:
            while log.last_index >= index:
                last = log.last_index
                entry = log.get(last)
                assert entry is not None
                self.callbacks.log_pop(entry, last)
                log.pop()
        finally:
            self._undo_membership_from(log.last_index + 1)

    def _append_entry(self, entry: Entry) -> int:
        """Offer the entry to the durable log, then keep in memory what the
        host stored: the entry, or the one log_offer returned for it."""
        index = self._log.last_index + 1
        stored = self.callbacks.log_offer(entry, index)
        if stored is not None:
            entry = _offered_entry(entry, stored)
        self._log.append(entry)
        if entry.type in MEMBERSHIP_CHANGES:
            self._apply_membership_entry(entry, index)
        return index

    def _advance_follower_commit(self, index: int) -> None:
        """Raft §5.3: commit up to min(leader_commit, last index verified)."""
        if index > self.commit_index:
            self.commit_index = index
            self._apply_committed()

    def _handle_appendentries_response(self, node_id: int, msg: AppendEntriesResponse) -> None:
        """Move the member's progress and the commit index on, or back off on
        a rejection and probe again (Raft §5.3)."""
        if self.role is not _LEADER or msg.term != self.current_term:
            return  # stale: from another term or another role
        member = self._members.get(node_id)
        if member is None or node_id == self.node_id:
            return
        if msg.success and msg.match_index > self._log.last_index:
            # This term's leader sent every index it could acknowledge.
            raise InvalidMessage(
                f"match_index {msg.match_index} beyond leader's last index {self._log.last_index}"
            )
        member.recent_active = True
        if msg.read_round:
            self._answer_round(node_id, msg.read_round)
        if msg.success:
            # False for a duplicate or an answer to a heartbeat: nothing new.
            progressed = member.maybe_update(msg.match_index)
            if progressed and self._maybe_commit() and not self.is_leader:
                return  # committed its own removal and stepped down
            # Even an answer with nothing new may find a member caught up whose
            # report waited for a pending change to commit.
            self._maybe_report_sufficient_logs(member)
            if (
                progressed
                and member.next_index <= self._log.last_index
                and node_id in self._members
            ):
                self._replicate(member)
            if node_id == self._transfer_target:
                self._maybe_send_timeoutnow(member)
            return
        if msg.rejected_index > self._log.last_index:
            return  # answers a request of an earlier term, from a longer log
        if member.is_stale_rejection(msg.rejected_index):
            return
        member.back_off(msg.rejected_index, msg.hint_index)
        self._send_appendentries(member)

    def _maybe_commit(self) -> bool:
        """The commit rule (Raft §5.3, §5.4.2): an index stored on a majority of
        voters is committed, but only counted for entries of the current term."""
        if self.role is not _LEADER:
            return False
        self.callbacks.sync()  # its own log counts toward a majority once durable
        acked = [m.match_index for m in self._peers if m.voting]
        if self.is_voter():
            acked.append(self._log.last_index)
        index = quorum.committed_index(acked)
        if index <= self.commit_index or self._log.term_at(index) != self.current_term:
            return False
        self.commit_index = index
        self._apply_committed()
        self._maybe_step_down_after_removal()
        if self._reads.pending and self.role is _LEADER:
            self._serve_reads()
        return True

    def _maybe_step_down_after_removal(self) -> None:
        """A leader that committed its own removal or demotion steps down."""
        if (
            self.role is _LEADER
            and not self.is_voter()
            and self._configs.is_committed(self.commit_index)
        ):
            self.callbacks.log(f"node {self.node_id} left the voters; stepping down")
            self.become_follower(self.current_term, None)

    def _maybe_report_sufficient_logs(self, member: Progress) -> bool:
        """Tell the host that a non-voting member has caught up, so that it may
        promote it (dissertation §4.2.1): once, and only when a promotion
        proposed now can be taken, with no membership change pending and an
        entry of this term committed. A member that caught up meanwhile is
        reported at its first answer after that (the seed's
        raft_recv_appendentries_response). A callback that raises is asked
        again next time, as the seed asks again after an error."""
        if (
            self.role is not _LEADER
            or member.voting
            or member.sufficient_logs_reported
            or member.match_index < self._log.last_index
            or not self._configs.is_committed(self.commit_index)
            or self._log.term_at(self.commit_index) != self.current_term
        ):
            return False
        member.sufficient_logs_reported = True
        try:
            self.callbacks.node_has_sufficient_logs(member.node_id)
        except BaseException:
            member.sufficient_logs_reported = False
            raise
        return True

    def _apply_committed(self) -> None:
        while self.last_applied < self.commit_index:
            index = self.last_applied + 1
            entry = self._log.get(index)
            assert entry is not None, f"entry {index} to apply is missing"
            self.last_applied = index
            self.callbacks.applylog(entry, index)
        if self._forwarded:
            self._serve_forwarded()

    def _send_heartbeats(self) -> None:
        if self.config.lease_read:  # every round renews the lease
            self._reads.start_round(self._clock_ms)
        for member in self._peers:
            self._send_heartbeat(member)

    def _send_heartbeat(self, member: Progress) -> None:
        """Every request timeout: reset the member's election timer, and
        recover requests that were lost."""
        stalled = member.match_index == member.match_at_heartbeat
        member.match_at_heartbeat = member.match_index
        if member.window_full(self.config.max_inflight_msgs):
            if not stalled:
                self._send_keepalive(member)
                return
            member.become_probe()  # a full window and no progress: assume losses
        self._send_appendentries(member)

    def _send_keepalive(self, member: Progress) -> None:
        """An empty AppendEntries at the member's last acknowledged index: it
        always matches, so it keeps the member's timer reset without
        disturbing the requests already in flight."""
        prev_term = self._log.term_at(member.match_index)
        if prev_term is None:
            self._send_appendentries(member)
            return
        msg = AppendEntries(
            self.current_term,
            self.node_id,
            member.match_index,
            prev_term,
            (),
            self.commit_index,
            self._reads.round,
        )
        self.callbacks.sync()  # durable before a message leaves
        self.callbacks.send_appendentries(member.node_id, msg)

    def _replicate(self, member: Progress) -> None:
        """Send what the member lacks: one probe, or batches up to the window."""
        limit = self.config.max_inflight_msgs
        log = self._log
        self._send_appendentries(member)
        while (
            member.state is REPLICATE
            and log.base_index < member.next_index <= log.last_index
            and not member.window_full(limit)
        ):
            self._send_appendentries(member)

    def _send_appendentries(self, member: Progress) -> None:
        next_index = member.next_index
        if next_index <= self._log.base_index:
            self._send_installsnapshot(member)
            return
        prev_index = next_index - 1
        prev_term = self._log.term_at(prev_index)
        assert prev_term is not None
        entries = self._log.slice(next_index, self.config.max_entries_per_msg)
        msg = AppendEntries(
            self.current_term,
            self.node_id,
            prev_index,
            prev_term,
            entries,
            self.commit_index,
            self._reads.round,
        )
        if entries:
            member.sent(prev_index + len(entries))
        self.callbacks.sync()  # durable before a message leaves
        self.callbacks.send_appendentries(member.node_id, msg)

    # ------------------------------------------------------------ client API

    def recv_entry(self, entry: Entry) -> EntryResponse:
        """Append a client's entry; the leader stamps it with its term."""
        return self.recv_entries([entry])[0]

    def recv_entries(self, entries: Sequence[Entry]) -> list[EntryResponse]:
        """Append a batch of client entries with one message per follower."""
        if self.role is not _LEADER:
            if self._members.get(self.node_id) is None and self._members:
                raise Shutdown(f"node {self.node_id} is not a member of the cluster")
            raise NotLeader(self.leader_id)
        if self._transfer_target is not None:
            raise InvalidOperation(
                f"node {self.node_id} is handing leadership to node {self._transfer_target}"
            )
        for entry in entries:
            if not isinstance(entry, Entry) or not is_entry_type(entry.type):
                raise InvalidOperation(f"a client entry must be an Entry, got {entry!r}")
        changes = [e for e in entries if e.type in MEMBERSHIP_CHANGES]
        if changes:
            self._validate_membership_change(changes)
        stamped = [Entry(self.current_term, e.id, e.type, e.data, e.node) for e in entries]
        return self._append_as_leader(stamped)

    def _append_as_leader(self, entries: Sequence[Entry]) -> list[EntryResponse]:
        responses = []
        for entry in entries:
            index = self._append_entry(entry)
            responses.append(EntryResponse(entry.id, entry.term, index))
        first = responses[0].index if responses else self._log.last_index + 1
        limit = self.config.max_inflight_msgs
        for member in self._peers:
            # Only members that have been sent everything before these entries;
            # the others get them when their acknowledgments come back.
            if member.next_index == first and not member.window_full(limit):
                self._send_appendentries(member)
        self._maybe_commit()
        return responses

    def entry_committed(self, response: EntryResponse) -> EntryState:
        """COMMITTED, PENDING, or LOST (another leader overwrote its index).

        LOST describes this server's log: a later leader may still hold and
        commit the entry (Figure 8), after which this server reports it
        COMMITTED."""
        if not isinstance(response, EntryResponse):
            raise InvalidOperation(f"expected an EntryResponse, got {response!r}")
        validation.check_int(response.index, "index", 1)
        validation.check_int(response.term, "term")
        term = self._log.term_at(response.index)
        if term is None:
            if response.index > self._log.last_index:
                return EntryState.PENDING
            # Compacted, hence committed: but was it this entry?
            term = self._log.compacted_term(response.index)
            if term is None:
                # Only a snapshot from elsewhere covers it; a newer term than
                # the snapshot's proves it lost, else this server cannot tell.
                if response.term > self._log.base_term:
                    return EntryState.LOST
                return EntryState.PENDING
            return EntryState.COMMITTED if term == response.term else EntryState.LOST
        if term != response.term:
            return EntryState.LOST
        if response.index <= self.commit_index:
            return EntryState.COMMITTED
        return EntryState.PENDING

    # ---------------------------------------------------------------- reads

    def read_index(self, request_id: int) -> None:
        """Ask to read the state machine linearizably (dissertation §6.4).
        `callbacks.read_ready(request_id, index)` follows once the read is
        safe, or `read_failed(request_id)` if this server stops leading
        first. Raises NotLeader on a follower: the client asks the leader."""
        validation.check_int(request_id, "request_id")
        if self.role is not _LEADER:
            self._forward_read(request_id)
            return
        if self._transfer_target is not None:
            raise InvalidOperation(
                f"node {self.node_id} is handing leadership to node {self._transfer_target}"
            )
        self._queue_read(request_id)

    def _queue_read(self, request_id: int, reply_to: int | None = None) -> None:
        """A read of ours or of a follower (`reply_to`) waits for its round, or
        for none while the lease holds (§6.4.1)."""
        reads = self._reads
        if self._lease_holds():
            reads.pending.append(PendingRead(request_id, 0, None, reply_to))
        else:
            round_ = reads.start_round(self._clock_ms)
            reads.pending.append(PendingRead(request_id, round_, None, reply_to))
            self._send_heartbeats_for_read()
        self._serve_reads()

    def _forward_read(self, request_id: int) -> None:
        """§6.4 on a follower (`Config.forward_reads`): ask the leader for a
        read index; `read_ready` follows once applied that far."""
        if (
            not self.config.forward_reads
            or self.leader_id is None
            or self.leader_id == self.node_id
        ):
            raise NotLeader(self.leader_id)
        self._forwarded[request_id] = None
        msg = ReadIndexRequest(self.current_term, request_id)
        self.callbacks.send_readindex(self.leader_id, msg)

    def _handle_readindex_request(self, node_id: int, msg: ReadIndexRequest) -> None:
        """A follower's read: the same proof of leadership as a read of our
        own, then the read index goes back to it (it serves the read)."""
        if self.role is not _LEADER or msg.term != self.current_term:
            reply = ReadIndexResponse(self.current_term, msg.request_id, 0, False)
            self.callbacks.send_readindex(node_id, reply)
            return None
        self._queue_read(msg.request_id, node_id)
        return None

    def _handle_readindex_response(self, node_id: int, msg: ReadIndexResponse) -> None:
        if msg.request_id not in self._forwarded:
            return None  # a copy, or an answer to a read this server forgot
        if not msg.ok:
            del self._forwarded[msg.request_id]
            self.callbacks.read_failed(msg.request_id)
            return None
        self._forwarded[msg.request_id] = msg.index
        self._serve_forwarded()
        return None

    def _serve_forwarded(self) -> None:
        """A forwarded read is ready once this server applied its read index."""
        ready = [
            r
            for r, index in self._forwarded.items()
            if index is not None and index <= self.last_applied
        ]
        for request_id in ready:
            index = self._forwarded.pop(request_id)
            assert index is not None
            self.callbacks.read_ready(request_id, index)

    def _send_heartbeats_for_read(self) -> None:
        """The round a read waits for: an AppendEntries to every member now,
        carrying the new round (empty where nothing is due)."""
        for member in self._peers:
            self._send_heartbeat(member)

    def _committed_in_current_term(self) -> bool:
        """§6.4 step 1: only then is the commit index as high as any other's."""
        return self._log.term_at(self.commit_index) == self.current_term or (
            self.commit_index == self._log.base_index and self._log.base_term == self.current_term
        )

    def _lease_holds(self) -> bool:
        """§6.4.1: a majority answered a round sent less than an election
        timeout (minus the drift margin) ago, and leadership is not being
        handed over."""
        return (
            self.config.lease_read
            and self._transfer_target is None
            and self._clock_ms < self._reads.lease_until_ms
        )

    def _answer_round(self, node_id: int, round_: int) -> None:
        """A member answered a heartbeat round: the newest round a majority of
        voters answered is confirmed (this server answers its own rounds)."""
        reads = self._reads
        acked = reads.acked
        acked[node_id] = max(acked.get(node_id, 0), round_)
        rounds = [acked.get(m.node_id, 0) for m in self._peers if m.voting]
        if self.is_voter():
            rounds.append(reads.round)
        lease = self.config.election_timeout_ms - self.config.lease_drift_ms
        reads.confirm(quorum.committed_index(rounds), lease if self.config.lease_read else None)
        if reads.pending:
            self._serve_reads()

    def _serve_reads(self) -> None:
        """§6.4 steps 1-3, oldest read first: a read gets its index once this
        term has committed an entry, and is ready once its round is confirmed
        (or the lease covers it) and the state machine has applied the index."""
        reads = self._reads
        if len(self.voting_members()) == 1 and self.is_voter():
            reads.confirm(reads.round, None)  # a cluster of one answers itself
        if not self._committed_in_current_term():
            return
        ready: list[PendingRead] = []
        for read in reads.pending:
            if read.index is None:
                read.index = self.commit_index
            if read.round > reads.confirmed:
                break
            # A follower applies up to the index itself; a read of ours waits here.
            if read.reply_to is None and self.last_applied < read.index:
                break
            ready.append(read)
        if not ready:
            return
        del reads.pending[: len(ready)]
        for read in ready:
            assert read.index is not None
            if read.reply_to is None:
                self.callbacks.read_ready(read.request_id, read.index)
            else:
                reply = ReadIndexResponse(self.current_term, read.request_id, read.index, True)
                self.callbacks.send_readindex(read.reply_to, reply)

    def _leave_leadership(self) -> None:
        """Stepping down: reads in waiting will never be served here."""
        pending, self._reads = self._reads.pending, Reads()
        self._transfer_target = None
        for read in pending:
            if read.reply_to is None:
                self.callbacks.read_failed(read.request_id)
            else:
                reply = ReadIndexResponse(self.current_term, read.request_id, 0, False)
                self.callbacks.send_readindex(read.reply_to, reply)

    # ------------------------------------------------------ leadership transfer

    def transfer_leadership(self, node_id: int) -> None:
        """Dissertation §3.10: hand leadership to a voting member. New entries
        are refused meanwhile; once the member's log matches, it is told to
        start an election now (TimeoutNow). Abandoned after an election
        timeout without a new leader."""
        validation.check_int(node_id, "node_id")
        if self.role is not _LEADER:
            raise NotLeader(self.leader_id)
        member = self._members.get(node_id)
        if member is None or not member.voting or node_id == self.node_id:
            raise InvalidOperation(f"node {node_id} is not another voting member")
        self._transfer_target = node_id
        self._transfer_elapsed_ms = 0
        if not self._maybe_send_timeoutnow(member):
            self._replicate(member)

    def _maybe_send_timeoutnow(self, member: Progress) -> bool:
        if member.match_index < self._log.last_index:
            return False
        self.callbacks.send_timeoutnow(member.node_id, TimeoutNow(self.current_term, self.node_id))
        return True

    def _age_transfer(self, msec: int) -> None:
        self._transfer_elapsed_ms += msec
        if self._transfer_elapsed_ms >= self.config.election_timeout_ms:
            self.callbacks.log(f"node {self.node_id} gives up handing leadership over")
            self._transfer_target = None

    def _handle_timeoutnow(self, node_id: int, msg: TimeoutNow) -> None:
        """The leader of this term hands over: campaign at once, without a
        pre-vote, asking voters to set leader stickiness aside."""
        if msg.term != self.current_term or not self.is_voter():
            return None
        self._transfer_campaign = True
        try:
            self.become_candidate()
        finally:
            self._transfer_campaign = False
        return None

    # -------------------------------------------------------------- membership

    def _validate_membership_change(self, changes: list[Entry]) -> None:
        """The leader's rules for proposing a change (`membership.check_proposal`)."""
        membership.check_proposal(
            changes,
            dict(self._members_view),
            change_pending=not self._configs.is_committed(self.commit_index),
            committed_in_term=self._log.term_at(self.commit_index) == self.current_term,
        )

    def _apply_membership_entry(self, entry: Entry, index: int) -> None:
        """A configuration takes effect as soon as it is appended (§4.1)."""
        self._install_members(self._configs.append(index, entry))

    def _undo_membership_from(self, index: int) -> None:
        """Truncating a membership entry reverts its configuration (§4.1)."""
        if self._configs.maybe_truncate_from(index):
            self._install_members(self._configs.latest())

    def _install_members(self, config: Membership) -> None:
        """Track progress for each member of `config`, telling the host who
        came and who went."""
        old = self._members
        new: dict[int, Progress] = {}
        next_index = self._log.last_index + 1
        for node_id, voting in config:
            member = old.get(node_id)
            if member is None:
                member = Progress(node_id, voting, next_index=next_index)
                if node_id != self.node_id:
                    self.callbacks.notify_membership_event(node_id, MembershipEvent.ADDED)
            member.voting = voting
            new[node_id] = member
        for node_id in sorted(old):
            if node_id not in new and node_id != self.node_id:
                self.callbacks.notify_membership_event(node_id, MembershipEvent.REMOVED)
        self._members = new
        ordered = self._sorted_members()
        self._peers = [m for m in ordered if m.node_id != self.node_id]
        self._members_view = tuple((m.node_id, m.voting) for m in ordered)

    def _sorted_members(self) -> list[Progress]:
        return [self._members[node_id] for node_id in sorted(self._members)]

    # --------------------------------------------------------------- snapshots

    def begin_snapshot(self) -> int:
        """Start a snapshot of everything applied; returns its last index."""
        if self._snapshot_in_progress is not None:
            raise SnapshotInProgress("a snapshot is already being taken")
        if self.last_applied <= self._log.base_index:
            raise InvalidOperation("nothing applied since the last snapshot")
        self._snapshot_in_progress = self.last_applied
        return self.last_applied

    def cancel_snapshot(self) -> None:
        """Give the snapshot begun up: the server is as it was before
        begin_snapshot (the seed's raft_cancel_snapshot)."""
        if self._snapshot_in_progress is None:
            raise InvalidOperation("cancel_snapshot without begin_snapshot")
        self._snapshot_in_progress = None

    def end_snapshot(self, data: bytes = b"") -> Snapshot:
        """Finish the snapshot with the state machine's bytes; compact the log."""
        index = self._snapshot_in_progress
        if index is None:
            raise InvalidOperation("end_snapshot without begin_snapshot")
        if not isinstance(data, bytes):
            raise InvalidOperation("snapshot data must be bytes")
        self._snapshot_in_progress = None
        if index <= self._log.base_index:
            raise SnapshotInProgress("a newer snapshot was loaded while this one was taken")
        term = self._log.term_at(index)
        assert term is not None
        snapshot = Snapshot(index, term, self.members_at(index), data)
        self.callbacks.persist_snapshot(snapshot)
        self._compact_log(snapshot)
        self.callbacks.sync()  # the user may drop what the snapshot covers
        return snapshot

    def _compact_log(self, snapshot: Snapshot) -> None:
        """Poll the entries the snapshot covers from the durable log, eldest
        first; memory lets go of them once every log_poll has succeeded."""
        log = self._log
        for index in range(log.base_index + 1, snapshot.last_index + 1):
            entry = log.get(index)
            assert entry is not None
            self.callbacks.log_poll(entry, index)
        log.compact(snapshot.last_index)
        self.snapshot = snapshot
        self._configs.compact(snapshot.last_index, snapshot.members)

    def _send_installsnapshot(self, member: Progress) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            raise NeedsSnapshot(f"node {member.node_id} needs compacted entries but no snapshot")
        if member.state is REPLICATE:
            # The requests in its window may still be answered: the member
            # keeps pipelining once the snapshot is in (etcd would enter
            # SNAPSHOT here too).
            member.aim_snapshot(snapshot.last_index)
        else:
            member.become_snapshot(snapshot.last_index)
        offset = member.snapshot_offset
        chunk = snapshot.data[offset : offset + self.config.snapshot_chunk_bytes]
        msg = InstallSnapshot(
            self.current_term,
            self.node_id,
            snapshot.last_index,
            snapshot.last_term,
            snapshot.members,
            offset,
            chunk,
            offset + len(chunk) >= len(snapshot.data),
        )
        self.callbacks.sync()  # durable before a message leaves
        self.callbacks.send_installsnapshot(member.node_id, msg)

    def _handle_installsnapshot(
        self, node_id: int, msg: InstallSnapshot
    ) -> InstallSnapshotResponse:
        """Raft Figure 13, InstallSnapshot receiver: collect the chunks in
        order, then load the snapshot."""
        if msg.term < self.current_term:
            return InstallSnapshotResponse(self.current_term, msg.last_index, 0)
        self._hear_from_leader(msg.term, msg.leader_id)
        if msg.last_index <= self.commit_index:
            return InstallSnapshotResponse(self.current_term, msg.last_index, 0, done=True)
        buffer = self._receive_snapshot_chunk(msg)
        if buffer is None:
            expected = self._incoming_snapshot_offset(msg)
            return InstallSnapshotResponse(self.current_term, msg.last_index, expected)
        if not msg.done:
            return InstallSnapshotResponse(self.current_term, msg.last_index, len(buffer))
        snapshot = Snapshot(msg.last_index, msg.last_term, msg.members, bytes(buffer))
        self.begin_load_snapshot(snapshot)  # may refuse: then the chunks are kept
        self._incoming_snapshot = None
        self.end_load_snapshot()
        return InstallSnapshotResponse(self.current_term, msg.last_index, len(buffer), done=True)

    def _receive_snapshot_chunk(self, msg: InstallSnapshot) -> bytearray | None:
        """Collect chunks in order; None when this chunk is not the next one."""
        if msg.offset == 0:
            self._incoming_snapshot = (msg.last_index, msg.last_term, bytearray(msg.data))
            return self._incoming_snapshot[2]
        incoming = self._incoming_snapshot
        if incoming is None or incoming[:2] != (msg.last_index, msg.last_term):
            return None
        if msg.offset != len(incoming[2]):
            return None
        incoming[2].extend(msg.data)
        return incoming[2]

    def _incoming_snapshot_offset(self, msg: InstallSnapshot) -> int:
        incoming = self._incoming_snapshot
        if incoming is None or incoming[:2] != (msg.last_index, msg.last_term):
            return 0
        return len(incoming[2])

    def _handle_installsnapshot_response(self, node_id: int, msg: InstallSnapshotResponse) -> None:
        """Send the next chunk; once the snapshot is in, what follows it."""
        member = self._members.get(node_id)
        if self.role is not _LEADER or msg.term != self.current_term or member is None:
            return
        if msg.done and msg.last_index > self._log.last_index:
            raise InvalidMessage(f"snapshot index {msg.last_index} beyond the leader's log")
        member.recent_active = True
        if msg.done:
            if member.maybe_update(msg.last_index):
                self._maybe_commit()
            self._maybe_report_sufficient_logs(member)
            if member.next_index <= self._log.last_index:
                self._send_appendentries(member)
            return
        snapshot = self.snapshot
        if snapshot is None or msg.last_index != snapshot.last_index:
            return  # about a snapshot this leader no longer sends
        if member.next_index > self._log.base_index:
            return  # a late answer: the member no longer needs the snapshot
        member.snapshot_offset = min(msg.next_offset, len(snapshot.data))
        self._send_installsnapshot(member)

    def begin_load_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the log's prefix with a snapshot from the leader. The term
        and vote stay as they are: a snapshot never lowers them."""
        if self._snapshot_in_progress is not None:
            raise SnapshotInProgress("cannot load a snapshot while taking one")
        if self._loading_snapshot is not None:
            raise SnapshotInProgress("begin_load_snapshot called twice")
        if snapshot.last_index <= self.commit_index:
            raise InvalidOperation(
                f"snapshot through {snapshot.last_index} is not ahead of commit index "
                f"{self.commit_index}"
            )
        log = self._log
        if log.term_at(snapshot.last_index) == snapshot.last_term:
            # Dissertation Figure 5.3, step 6: keep the entries that follow it.
            kept = [
                (snapshot.last_index + 1 + offset, entry)
                for offset, entry in enumerate(log.entries_after(snapshot.last_index))
                if entry.type in MEMBERSHIP_CHANGES
            ]
            self.callbacks.load_snapshot(snapshot)
            self._compact_log(snapshot)
        else:
            # The snapshot covers entries this log lacks or contradicts, all of
            # them committed on the leader: the whole log goes.
            kept = []
            while log.last_index > log.base_index:
                last = log.last_index
                entry = log.get(last)
                assert entry is not None
                self.callbacks.log_pop(entry, last)
                log.pop()
            self.callbacks.load_snapshot(snapshot)
            log.reset(snapshot.last_index, snapshot.last_term)
            self.snapshot = snapshot
        self._loading_snapshot = kept
        self.commit_index = snapshot.last_index
        self.last_applied = snapshot.last_index

    def end_load_snapshot(self) -> None:
        """Take the snapshot's membership, then replay later membership entries."""
        if self._loading_snapshot is None:
            raise InvalidOperation("end_load_snapshot without begin_load_snapshot")
        kept, self._loading_snapshot = self._loading_snapshot, None
        assert self.snapshot is not None
        self._configs.base = tuple(sorted(self.snapshot.members))
        self._configs.changes = []
        for index, entry in kept:
            self._apply_membership_entry(entry, index)
        self._install_members(self._configs.latest())


def _offered_entry(offered: Entry, stored: object) -> Entry:
    """The entry log_offer returned to keep in memory instead of `offered`:
    the host may set its data (the seed's callback may set the entry's data
    buffer), nothing else, for the log must still agree with the leader's."""
    if not isinstance(stored, Entry) or (stored.term, stored.id, stored.type, stored.node) != (
        offered.term,
        offered.id,
        offered.type,
        offered.node,
    ):
        raise InvalidOperation(
            f"log_offer may replace an entry's data only: offered {offered!r}, got {stored!r}"
        )
    return stored


def entries_of(server: RaftServer, first: int = 1) -> Iterable[tuple[int, Entry]]:
    """(index, entry) for every entry the server holds from `first` on."""
    for index in range(max(first, server.snapshot_last_index + 1), server.last_log_index + 1):
        entry = server.get_entry(index)
        assert entry is not None
        yield index, entry
