"""Mutants of raftcore: each puts back one real, documented Raft mistake.

Every mutant is a RaftServer subclass that overrides exactly one method, the
one where the mistake lives, and says where the mistake comes from (the
paper's figure, or a bug report or fix in another project). Class attributes
say what the checker must make of it:

- `kind`: "safety" (an invariant must break), "liveness" (the cluster stops
  making progress: the liveness verdict must fail), "slow" (a control that
  converges, late: it may be reported slow, never stuck) or "harmless" (the
  negative control: the checker must stay silent).
- `expected_invariant`: the invariant(s) that catch a safety mutant, named in
  its docstring too; None for the others.

Each mutant enters the simulator through a node factory named after it, e.g.
`--node-factory virtraft.zoo.mutants:fig8_commit_old_term` (run from the
repository root). `MUTANTS` maps those names to the classes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from raftcore import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryType,
    NotLeader,
    RaftServer,
    RequestVote,
    RequestVoteResponse,
    Role,
    Snapshot,
    quorum,
    validation,
)
from raftcore.errors import InvalidOperation, OneVotingChangeOnly, SnapshotInProgress
from raftcore.progress import Progress, ProgressState
from raftcore.reads import PendingRead
from virtraft.adapter import Command, NodeFactory
from virtraft.nodes.raftcore import RaftcoreNode, factory

MODULE = "virtraft.zoo.mutants"


class Mutant(RaftServer):
    """What every mutant declares about itself."""

    kind: ClassVar[str] = "safety"
    expected_invariant: ClassVar[tuple[str, ...] | None] = None
    # The method the mutant overrides: the one place its mistake lives.
    mutated: ClassVar[str] = ""


# ----------------------------------------------------------------- elections


class GrantVoteTwice(Mutant):
    """Double voting: grants a vote without looking at whom it already voted
    for in this term (Raft Figure 2, RequestVote receiver rule 2: "If votedFor
    is null or candidateId ..."). The same mistake: djjonno/kerala#18, "2
    candidates elected to leader state" (nodes voting more than once for
    different nodes in one term).

    Caught by: VoteOnce (a second, different vote in one term).
    """

    expected_invariant = ("VoteOnce",)
    mutated = "_may_grant_vote"

    def _may_grant_vote(self, msg: RequestVote) -> bool:
        return (
            msg.term == self.current_term
            and self.role is Role.FOLLOWER
            # BUG: no `self.voted_for in (None, msg.candidate_id)`
            and self._candidate_log_is_up_to_date(msg.last_log_index, msg.last_log_term)
        )


class ForgetVoteOnLeaderContact(Mutant):
    """Double voting, the subtle way: a follower forgets its vote when it first
    hears from the leader of its term, so a late RequestVote of that term from
    another candidate gets a second vote. Reported in camunda/camunda#5356
    ("Raft elects two leaders at the same term": lastVotedFor reset on the
    first message from the new leader) and ktoso/akka-raft#56 ("Nodes should
    not forget who they voted for").

    Caught by: VoteOnce.
    """

    expected_invariant = ("VoteOnce",)
    mutated = "_hear_from_leader"

    def _hear_from_leader(self, term: int, leader_id: int) -> None:
        super()._hear_from_leader(term, leader_id)
        if self.voted_for is not None:
            # BUG: "we follow a leader now, the vote is no longer needed"
            self.voted_for = None
            self.callbacks.persist_vote(None)


class VoteNotPersisted(Mutant):
    """Vote state not persisted: the vote is granted and answered but never
    written to disk, so after a crash and restart the server votes again in
    the same term. Raft Figure 2, "Persistent state on all servers (updated on
    stable storage before responding to RPCs): currentTerm, votedFor, log[]".
    The same mistake: NodeDB-Lab/nodedb#161 ("HardState ... is never
    persisted - split-brain on restart").

    Caught by: VoteOnce (vote A, crash, restart, vote B in the same term).
    """

    expected_invariant = ("VoteOnce",)
    mutated = "_handle_requestvote"

    def _handle_requestvote(self, node_id: int, msg: RequestVote) -> RequestVoteResponse:
        if msg.prevote:
            granted = msg.term > self.current_term and self._candidate_log_is_up_to_date(
                msg.last_log_index, msg.last_log_term
            )
            return RequestVoteResponse(msg.term if granted else self.current_term, granted, True)
        granted = self._may_grant_vote(msg)
        if granted:
            self.voted_for = msg.candidate_id
            # BUG: no self.callbacks.persist_vote(msg.candidate_id)
            self._reset_election_timer()
        return RequestVoteResponse(self.current_term, granted)


class CandidateVoteNotRecorded(Mutant):
    """The candidate counts its own vote but never records it: it starts its
    term with votedFor empty, so once it steps down in that term (the winner's
    AppendEntries) it can grant the same term's vote to another candidate, and
    a restart forgets its candidacy. Raft Figure 2, Rules for Servers,
    Candidates: "On conversion to candidate, start election: Increment
    currentTerm, Vote for self"; votedFor is persistent state, "updated on
    stable storage before responding to RPCs".

    Caught by: VoteForSelf (a candidate of a term whose vote is not its own).
    """

    expected_invariant = ("VoteForSelf",)
    mutated = "become_candidate"

    def become_candidate(self) -> None:
        self.current_term += 1
        # BUG: votedFor stays empty: no `self.voted_for = self.node_id`, and
        # the persisted vote is None, yet the vote is counted just below.
        self.voted_for = None
        self.callbacks.persist_term(self.current_term, None)
        self.role = Role.CANDIDATE
        self.leader_id = None
        self._votes = {self.node_id}
        self._reset_election_timer()
        if self._won_election():
            self.become_leader()
            return
        self._request_votes(prevote=False)


class StaleVoteResponseCounted(Mutant):
    """Counts a granted vote from an older term: a candidate takes a delayed
    "yes" given to its previous candidacy as a vote in its current term, when
    that voter may since have voted for someone else. andreev-io/little-raft#44
    ("process_vote_response_as_candidate should ignore vote with stale term",
    two leaders in one term); willemt/raft's raft_recv_requestvote_response
    ignores such responses ("this is an old message we should ignore").

    Caught by: ElectionSafety (two leaders in one term) or LeaderCompleteness
    (the stale voter would not have voted for its log: a leader without a
    committed entry), or CommittedNeverLost (that leader's first entry
    overwrites a committed one on a follower before anyone sees it lead).
    """

    expected_invariant = ("ElectionSafety", "LeaderCompleteness", "CommittedNeverLost")
    mutated = "_handle_requestvote_response"

    def _handle_requestvote_response(self, node_id: int, msg: RequestVoteResponse) -> None:
        if not msg.vote_granted:
            return
        if msg.prevote:
            if self.role is Role.PRECANDIDATE and msg.term == self.current_term + 1:
                self._count_vote(node_id, self.become_candidate)
        elif self.role is Role.CANDIDATE:  # BUG: no `and msg.term == self.current_term`
            self._count_vote(node_id, self.become_leader)


class NoStepDownOnHigherTermVoteResponse(Mutant):
    """No step-down on a higher-term vote response: the server takes the newer
    term from the response but keeps its role, so a leader of an old term goes
    on leading in a term whose election it never won. Raft Figure 2, rules for
    all servers: "If RPC request or response contains term T > currentTerm:
    set currentTerm = T, convert to follower"; this does only the first half.
    Caught in review in vesoft-inc/nebula#3415 ("When req.get_term() > term_,
    we should also update term_ and step to follower"); the seed's C library
    pairs raft_set_current_term with raft_become_follower for this reason.

    Caught by: VoteForSelf (it leads a term it never campaigned in: its vote
    there is empty), ElectionSafety (the old leader and the term's real
    leader) or LeaderCompleteness (it now leads a term in which another
    leader committed entries it lacks).
    """

    expected_invariant = ("VoteForSelf", "ElectionSafety", "LeaderCompleteness")
    mutated = "_follow_newer_term"

    def _follow_newer_term(self, src: int, msg: Any, kind: Any) -> bool:
        if not isinstance(msg, RequestVoteResponse) or (msg.prevote and msg.vote_granted):
            return super()._follow_newer_term(src, msg, kind)
        # BUG: the term is taken, the role kept (no become_follower).
        self.current_term = msg.term
        self.voted_for = None
        self.callbacks.persist_term(msg.term, None)
        return False


class DuplicateVotesCounted(Mutant):
    """Counts duplicated vote responses: votes are tallied per response, not
    per voter, so a duplicated "yes" counts twice and a candidate wins without
    a majority. ktoso/akka-raft#45 ("Candidate does not distinguish between
    votes from same follower"), xnnyygn/xraft#27 ("Duplicate vote response
    can make illegal leader without a quorum").

    Caught by: ElectionSafety, or LeaderCompleteness (a leader elected without
    a real majority need not hold what a majority committed).
    """

    expected_invariant = ("ElectionSafety", "LeaderCompleteness")
    mutated = "_count_vote"

    def _count_vote(self, node_id: int, on_win) -> None:
        # BUG: a list of responses instead of a set of voters.
        votes = self._votes if isinstance(self._votes, list) else sorted(self._votes)
        votes.append(node_id)
        self._votes = votes  # type: ignore[assignment]
        voters = set(self.voting_members())
        if voters and sum(1 for v in votes if v in voters) >= quorum.majority(len(voters)):
            on_win()


class UpToDateByLengthOnly(Mutant):
    """Up-to-date check by log length only: a longer log of stale entries
    beats a shorter log holding a newer term, so a server lacking committed
    entries can be elected (Raft §5.4.1: compare the last terms first).
    streed/simpleRaft#10 ("Check for log term in on_vote_request"),
    sile/noraft#22 ("handle_request_vote_call compared only log index").

    Caught by: LeaderCompleteness (a leader without a committed entry).
    """

    expected_invariant = ("LeaderCompleteness",)
    mutated = "_candidate_log_is_up_to_date"

    def _candidate_log_is_up_to_date(self, last_index: int, last_term: int) -> bool:
        return last_index >= self._log.last_index  # BUG: last terms never compared


# --------------------------------------------------------------- replication


class Fig8CommitOldTerm(Mutant):
    """Commits an old term's entry by counting replicas: the situation of the
    Raft paper's Figure 8 (§5.4.2: "Raft never commits log entries from
    previous terms by counting replicas"). logcabin/logcabin#44 ("critical
    Raft data corruption bug: commitment of entries from prior terms"),
    goraft/raft#27, canonical/raft#220.

    Caught by: LeaderCompleteness (a later leader lacks the entry counted as
    committed) or StateMachineSafety (once another entry is applied there).
    """

    expected_invariant = ("LeaderCompleteness", "StateMachineSafety")
    mutated = "_maybe_commit"

    def _maybe_commit(self) -> bool:
        if self.role is not Role.LEADER:
            return False
        self.callbacks.sync()
        acked = [m.match_index for m in self._peers if m.voting]
        if self.is_voter():
            acked.append(self._log.last_index)
        index = quorum.committed_index(acked)
        if index <= self.commit_index:  # BUG: no `term_at(index) == current_term`
            return False
        self.commit_index = index
        self._apply_committed()
        self._maybe_step_down_after_removal()
        return True


class PrevLogTermNotChecked(Mutant):
    """The AppendEntries consistency check looks only at the index: a follower
    that holds some entry at prevLogIndex accepts the new entries after it,
    whatever that entry's term. Raft Figure 2, AppendEntries receiver rule 2
    ("Reply false if log doesn't contain an entry at prevLogIndex whose term
    matches prevLogTerm"); the Students' Guide to Raft (Gjengset, 2016) lists
    it among the common mistakes.

    Caught by: LogMatching (same index and term, different entries before it),
    or StateMachineSafety when an empty AppendEntries "matches" a stale entry:
    the log does not change, but the follower commits and applies the entry.
    """

    expected_invariant = ("LogMatching", "StateMachineSafety")
    mutated = "_log_matches"

    def _log_matches(self, prev_index: int, prev_term: int) -> bool:
        if prev_index < self._log.base_index:
            return True
        return prev_index <= self._log.last_index  # BUG: the term is not compared


class TruncateOnStaleAppendEntries(Mutant):
    """Truncates on a stale AppendEntries: the follower replaces everything
    after prevLogIndex with the request's entries even where they match, so a
    delayed or duplicated request takes back entries it already acknowledged
    (and the leader counted). Raft Figure 2 rule 3 truncates only at a real
    conflict; the Students' Guide to Raft (Gjengset, 2016): "If the follower
    has all the entries the leader sent, the follower MUST NOT truncate its
    log". The same fix: amino-os/Amino.Run#143. Entries this follower knows
    committed are spared (raftcore refuses to truncate those).

    Caught by: CommittedNeverLost (a counted replica disappears), or
    LeaderCompleteness (a server elected because the entry is gone from the
    majority that voted for it).
    """

    expected_invariant = ("CommittedNeverLost", "LeaderCompleteness")
    mutated = "_append_new_entries"

    def _append_new_entries(self, prev_index: int, entries: Sequence[Entry]) -> int:
        log = self._log
        start = max(prev_index + 1, self.commit_index + 1, log.base_index + 1)
        if start <= log.last_index:
            self._truncate_log_from(start)  # BUG: whether or not anything conflicts
        for offset, entry in enumerate(entries):
            index = prev_index + 1 + offset
            if index <= log.last_index:
                continue  # committed here, or compacted: kept
            self._append_entry(entry)
        return prev_index + len(entries)


class FollowerCommitBeyondVerified(Mutant):
    """Follower commit beyond what was verified: the follower commits up to
    min(leaderCommit, its own last index) instead of the last index the
    request verified, applying stale entries from an old term that the
    leader's log does not hold. atomix/copycat#265 ("Followers may commit
    inconsistent entries"), scylladb/scylladb#9965 ("follower may mark
    obsolete entries committed"); Raft Figure 2 rule 5 says "index of last
    new entry".

    Caught by: StateMachineSafety (two entries applied at one index) or
    CommittedNeverLost (the stale entry it reports committed is on no majority).
    """

    expected_invariant = ("StateMachineSafety", "CommittedNeverLost")
    mutated = "_handle_appendentries"

    def _handle_appendentries(self, node_id: int, msg: AppendEntries) -> AppendEntriesResponse:
        if msg.term < self.current_term:
            return AppendEntriesResponse(
                self.current_term,
                False,
                rejected_index=msg.prev_log_index,
                hint_index=self._log.last_index,
            )
        self._hear_from_leader(msg.term, msg.leader_id)
        if not self._log_matches(msg.prev_log_index, msg.prev_log_term):
            return AppendEntriesResponse(
                self.current_term,
                False,
                rejected_index=msg.prev_log_index,
                hint_index=self._conflict_hint(msg.prev_log_index),
            )
        match_index = self._append_new_entries(msg.prev_log_index, msg.entries)
        # BUG: the log's end, not match_index, bounds the commit.
        self._advance_follower_commit(min(msg.leader_commit, self._log.last_index))
        return AppendEntriesResponse(self.current_term, True, match_index=match_index)


class CommitIndexGoesBack(Mutant):
    """The follower sets commitIndex from every AppendEntries, so a delayed one
    with an older leaderCommit moves it backwards. ongardie/raft.tla#19 ("The
    commitIndex of a node in the follower state may decrease"); etcd-io/etcd
    #1203 compares with the current commit index first "to avoid commit index
    decrease".

    Caught by: CommitMonotonic.
    """

    expected_invariant = ("CommitMonotonic",)
    mutated = "_advance_follower_commit"

    def _advance_follower_commit(self, index: int) -> None:
        self.commit_index = index  # BUG: no `if index > self.commit_index`
        self._apply_committed()


class ReplyBeforeSync(Mutant):
    """Replies before syncing: a vote is granted and entries are acknowledged
    while the writes behind them (the newer term, the vote, the appended
    entries) still sit in the disk's write cache, so a power cut makes the
    server forget what it promised. Raft Figure 2: persistent state is
    "updated on stable storage before responding to RPCs"; nats-io/nats-server
    #7564 ("JetStream loses acknowledged writes by default due to deferred
    fsync", Jepsen's NATS 2.12.1 analysis, 2025): acknowledged, not yet
    synced, lost in a power failure. Only lossy crashes show it.

    Caught by: TermMonotonic (the term it answered in is gone), VoteOnce (it
    votes again in a term it voted in), CommittedNeverLost (an acknowledged
    entry is gone), LeaderCompleteness or ElectionSafety (a majority built
    on the forgotten vote or entry).
    """

    expected_invariant = (
        "TermMonotonic",
        "VoteOnce",
        "CommittedNeverLost",
        "LeaderCompleteness",
        "ElectionSafety",
    )
    mutated = "_sync_before_reply"

    def _sync_before_reply(self, reply: Any) -> Any:
        return reply  # BUG: no self.callbacks.sync() before the reply leaves


# ---------------------------------------------------------------- membership


class TwoMembershipChangesAtOnce(Mutant):
    """Two membership changes at once: the leader accepts a change while the
    previous one is still uncommitted, so consecutive configurations can
    differ by two voters and have disjoint majorities. Dissertation §4.1 and
    §4.3 (one server at a time, the next change only after the previous one
    committed); the check the seed's raft_recv_entry makes ("Only one voting
    cfg change at a time"), dropped.

    Caught by: ElectionSafety (two leaders elected by disjoint majorities),
    LeaderCompleteness or CommittedNeverLost (a majority of one configuration
    that misses what a majority of the other committed), or StateMachineSafety
    (the two sides commit different entries).
    """

    expected_invariant = (
        "ElectionSafety",
        "LeaderCompleteness",
        "CommittedNeverLost",
        "StateMachineSafety",
    )
    mutated = "_validate_membership_change"

    def _validate_membership_change(self, changes: list[Entry]) -> None:
        # BUG: no "a membership change is already in progress" check.
        if self._log.term_at(self.commit_index) != self.current_term:
            raise OneVotingChangeOnly(
                "the leader has not committed an entry of its term yet; retry shortly"
            )
        for change in changes:
            if type(change.node) is not int or change.node < 0:
                raise InvalidOperation(f"{change.type.name} needs a node id")
            member = self._members.get(change.node)
            kind = change.type
            if kind is EntryType.ADD_NONVOTING_NODE and member is not None:
                raise InvalidOperation(f"node {change.node} is already a member")
            if kind is EntryType.ADD_NODE and (member is None or member.voting):
                raise InvalidOperation(f"node {change.node} must be a non-voting member first")
            if kind is EntryType.DEMOTE_NODE and (member is None or not member.voting):
                raise InvalidOperation(f"node {change.node} is not a voting member")
            if kind is EntryType.REMOVE_NODE and member is None:
                raise InvalidOperation(f"node {change.node} is not a member")


# ----------------------------------------------------------------- snapshots


class SnapshotInstallLosesEntries(Mutant):
    """Snapshot install loses entries: the follower discards its whole log on
    every snapshot, including acknowledged entries after the snapshot's last
    index when the snapshot describes a prefix of its log. Dissertation
    Figure 5.3 step 6 / paper §7 ("entries following the snapshot are still
    valid and must be retained"); camunda/camunda#6092 ("Snapshot install on
    follower can cause entries to be lost"); etcd-io/etcd#1763.

    Caught by: CommittedNeverLost.
    """

    expected_invariant = ("CommittedNeverLost",)
    mutated = "begin_load_snapshot"

    def begin_load_snapshot(self, snapshot: Snapshot) -> None:
        if self._snapshot_in_progress is not None:
            raise SnapshotInProgress("cannot load a snapshot while taking one")
        if self._loading_snapshot is not None:
            raise SnapshotInProgress("begin_load_snapshot called twice")
        if snapshot.last_index <= self.commit_index:
            raise InvalidOperation("snapshot is not ahead of the commit index")
        log = self._log
        # BUG: the whole log goes, even when the snapshot matches an entry in it.
        while log.last_index > log.base_index:
            last = log.last_index
            self.callbacks.log_pop(log.pop(), last)
        self.callbacks.load_snapshot(snapshot)
        log.reset(snapshot.last_index, snapshot.last_term)
        self.snapshot = snapshot
        self._loading_snapshot = []
        self.commit_index = snapshot.last_index
        self.last_applied = snapshot.last_index


class SnapshotLowersTerm(Mutant):
    """Snapshot install lowers the term: the follower takes the snapshot's
    lastIncludedTerm (the term of its last entry) as its current term,
    confusing it with the leader's term that the request carries (Raft
    Figure 13: "term: leader's term", "lastIncludedTerm: term of
    lastIncludedIndex"). A server whose term goes back can vote twice in a
    term and accept a deposed leader.

    Caught by: TermMonotonic.
    """

    expected_invariant = ("TermMonotonic",)
    mutated = "begin_load_snapshot"

    def begin_load_snapshot(self, snapshot: Snapshot) -> None:
        super().begin_load_snapshot(snapshot)
        # BUG: the snapshot's last term is not this server's term.
        self.current_term = snapshot.last_term
        self.voted_for = None
        self.callbacks.persist_term(snapshot.last_term, None)


# ----------------------------------------------------------------- liveness


class ElectionTimerNeverReset(Mutant):
    """Liveness: the election timer is never restarted, only given a new
    timeout, so once a follower has waited one timeout it campaigns on every
    tick, however often it hears from the leader, and no leader lasts. The
    Students' Guide to Raft (Gjengset, 2016): "make sure you reset your
    election timer exactly when Figure 2 says you should".

    Caught by: the liveness verdict (no leader, or no commit, in the bound).
    """

    kind = "liveness"
    mutated = "_reset_election_timer"

    def _reset_election_timer(self) -> None:
        base = self.config.election_timeout_ms
        # BUG: no `self._election_elapsed_ms = 0`
        self._election_timeout_ms = base + self._rng.randrange(base)


class VoteOnlyForLongerLogs(Mutant):
    """Liveness: votes only for a candidate whose log is strictly more up to
    date, where Raft §5.4.1 and Figure 2 grant a vote to a log "at least as
    up-to-date as receiver's log". Servers with equal logs (every server, at
    the start) refuse each other, and no leader is ever elected. Safe: it
    only grants fewer votes. neo4j/neo4j#6289 ("Correct voting logic") fixed a
    comparison that was stricter than the paper's.

    Caught by: the liveness verdict.
    """

    kind = "liveness"
    mutated = "_candidate_log_is_up_to_date"

    def _candidate_log_is_up_to_date(self, last_index: int, last_term: int) -> bool:
        my_term = self._log.last_term
        if last_term != my_term:
            return last_term > my_term
        return last_index > self._log.last_index  # BUG: > where Raft says >=


class RejectionNeverBacksOff(Mutant):
    """Liveness: the leader takes a rejected AppendEntries without moving
    nextIndex back, so every retry (the next heartbeat) asks about the same
    prevLogIndex and a follower that lacks or contradicts that entry is never
    caught up. Raft Figure 2, rules for leaders: "If AppendEntries fails
    because of log inconsistency: decrement nextIndex and retry".
    matrixarkai/TemporalStore#114 ("the retreat after a rejection was
    computed but never used ... every retry asked about the same index");
    etcd-io/etcd#1366 (a leader that "only sends heartbeats and never
    transmits the missed log entries" after a rejection it could not apply).

    Caught by: the liveness verdict when the stuck followers are needed for a
    majority (no commit in the bound); otherwise only by a verdict that every
    core member catches up.
    """

    kind = "liveness"
    mutated = "_handle_appendentries_response"

    def _handle_appendentries_response(self, node_id: int, msg: AppendEntriesResponse) -> None:
        if msg.success or self.role is not Role.LEADER or msg.term != self.current_term:
            super()._handle_appendentries_response(node_id, msg)
            return
        member = self._members.get(node_id)
        if member is not None and node_id != self.node_id:
            member.recent_active = True
            # BUG: no member.back_off(...): nextIndex stays where it was rejected.


class CompactedPrefixRejected(Mutant):
    """Liveness: a follower rejects an AppendEntries whose prevLogIndex lies
    inside its own snapshot as "very old", where Raft says a compacted index
    is committed and so matches. If its acknowledgment of that entry was lost
    and it then snapshotted, the leader's retry can never succeed: the
    leader's progress already counts the entry, so it takes each rejection as
    stray. scylladb/scylladb#9552 ("cluster may become stuck when a follower
    takes a snapshot after an accepted entry that the leader didn't learn
    about"); Raft §7 (the snapshot replaces committed entries).

    Caught by: the liveness verdict when the stuck followers are needed for a
    majority; otherwise only by a verdict that every core member catches up.
    """

    kind = "liveness"
    mutated = "_log_matches"

    def _log_matches(self, prev_index: int, prev_term: int) -> bool:
        if prev_index < self._log.base_index:
            return False  # BUG: "we got some very old AppendEntries"
        return self._log.term_at(prev_index) == prev_term


class SnapshotSendNeverRetried(Mutant):
    """Liveness: the leader pauses a member that it is sending a snapshot to
    until the snapshot is answered, and its heartbeats skip that member; a
    lost InstallSnapshot (or its answer) leaves the member paused for good,
    with no heartbeat, no snapshot and no entries. etcd-io/etcd#10225 ("Force
    kill a node during snapshot retrieval goes into limbo": the progress stays
    in snapshot state until ReportSnapshot), fixed in dgraph-io/dgraph#2707
    ("Make raft leader resume probing after snapshot crash").

    Caught by: a verdict that every core member catches up (the leader commits
    with the others); today's phase only when the paused member is needed for
    a majority.
    """

    kind = "liveness"
    mutated = "_send_heartbeat"

    def _send_heartbeat(self, member: Progress) -> None:
        if member.state is ProgressState.SNAPSHOT:
            return  # BUG: paused until the snapshot is answered
        super()._send_heartbeat(member)


class FullWindowNeverProbed(Mutant):
    """Liveness: a member whose window of pipelined AppendEntries is full only
    ever gets empty keep-alives, even when the window made no progress for a
    whole heartbeat interval; if every request in the window was lost, no
    acknowledgment ever frees it, and the member gets no entries again.
    etcd-io/raft#52 (a heartbeat response now sends an append "allowing it to
    recover from situations in which all the messages that filled up
    Inflights in the first place were dropped"); etcd-io/etcd#2089 (a dropped
    MsgAppResp in a quiet cluster took long to recover from).

    Caught by: the liveness verdict when the stalled members are needed for a
    majority; otherwise only by a verdict that every core member catches up.
    """

    kind = "liveness"
    mutated = "_send_heartbeat"

    def _send_heartbeat(self, member: Progress) -> None:
        member.match_at_heartbeat = member.match_index
        if member.window_full(self.config.max_inflight_msgs):
            self._send_keepalive(member)  # BUG: no become_probe() when nothing moved
            return
        self._send_appendentries(member)


class HeartbeatCommitIgnored(Mutant):
    """Liveness: a follower takes leaderCommit only from AppendEntries that
    carry entries, never from heartbeats, so the last entries of a burst stay
    uncommitted (and unapplied) on the followers until more traffic comes.
    etcd-io/etcd#1732 ("Add the logic to update commit index from heartbeat
    MsgApp": while streaming, a follower got no fresh commit index); Raft
    Figure 2, AppendEntries receiver rule 5 applies to heartbeats too.

    Caught by: a verdict that every core member's commit index and applied
    state catch up; today's phase (a leader and one commit) passes it.
    """

    kind = "liveness"
    mutated = "_handle_appendentries"

    def _handle_appendentries(self, node_id: int, msg: AppendEntries) -> AppendEntriesResponse:
        if not msg.entries:
            # BUG: a heartbeat's leaderCommit is dropped (replaced by our own).
            msg = dataclasses.replace(msg, leader_commit=self.commit_index)
        return super()._handle_appendentries(node_id, msg)


class CheckQuorumNeverStepsDown(Mutant):
    """Liveness: check-quorum counts the members heard from but never steps
    down, so a leader that can send but not hear (a one-way cut) keeps every
    follower's timer reset and in its lease: nobody campaigns, and the leader
    commits nothing. RedisLabs/raft#24 ("Prevote, leader stickiness and check
    quorum are required to provide liveness"); the November 2020 Cloudflare
    outage with etcd under a partial switch failure, as told in
    signalapp/SecureValueRecovery#4; dissertation §6.2.

    Caught by: a liveness phase that keeps a one-way cut standing (the old
    leader outside the core, its incoming links cut); today's phase heals
    every cut first, and passes it.
    """

    kind = "liveness"
    mutated = "_check_quorum"

    def _check_quorum(self) -> bool:
        for member in self._peers:
            member.recent_active = False
        return False  # BUG: never steps down, whoever was heard from


class PrecandidateKeepsLeader(Mutant):
    """Liveness: a server whose election timer fired becomes a pre-candidate
    but keeps the old leader's id, so for a whole election timeout after each
    of its pre-vote rounds it still believes itself in that leader's lease and
    refuses the other pre-candidates' pre-votes. etcd-io/etcd#8334 ("raft:
    set lead to none when becomePreCandidate"), reported as etcd-io/etcd#9586
    ("No leader using prevote feature"); ported as tikv/raft-rs#84 ("Make
    peace between Prevote and Check Quorum").

    Ported as etcd had it: its becomePreCandidate did not call reset(), so a
    pre-candidate keeps the randomized timeout it drew as a follower and
    fires at a fixed period. Pre-candidates whose periods and phases leave
    each one outside the others' grant windows (its timer past the election
    timeout, not yet fired) refuse each other for ever: no leader. (Drawing
    a fresh timeout each round, as raftcore does, hides it: a later round
    lands in a window by chance, and elections are only slow.)

    Caught by: LeaderElected (stuck: pre-candidates in the core, no leader).
    """

    kind = "liveness"
    mutated = "become_precandidate"

    def become_precandidate(self) -> None:
        # etcd's becomePreCandidate before the fix: the role, the votes and the
        # pre-vote round change; the timer restarts (tickElection zeroes
        # electionElapsed) but keeps the randomized timeout it had (no reset()).
        self.role = Role.PRECANDIDATE
        # BUG: no `self.leader_id = None`: the old leader's lease still holds.
        self._votes = {self.node_id}
        self._election_elapsed_ms = 0
        if self._won_election():
            self.become_candidate()
            return
        self._request_votes(prevote=True)


class LaggardNeverSentSnapshot(Mutant):
    """Liveness: a member that needs entries the leader has compacted is sent
    AppendEntries from the leader's snapshot on instead of the snapshot; it
    rejects them (the gap), the leader takes the rejection as stray, and the
    member never catches up. hashicorp/raft#212 ("Really out of date
    followers can get stuck not getting a snapshot installed"); Raft §7
    ("the leader must occasionally send snapshots to followers that lag
    behind").

    Caught by: a verdict that every core member catches up; today's phase
    only when the laggards are needed for a majority.
    """

    kind = "liveness"
    mutated = "_send_appendentries"

    def _send_appendentries(self, member: Progress) -> None:
        log = self._log
        if member.next_index > log.base_index:
            super()._send_appendentries(member)
            return
        # BUG: no _send_installsnapshot(member): entries after the snapshot instead.
        entries = log.slice(log.base_index + 1, self.config.max_entries_per_msg)
        msg = AppendEntries(
            self.current_term,
            self.node_id,
            log.base_index,
            log.base_term,
            entries,
            self.commit_index,
        )
        self.callbacks.send_appendentries(member.node_id, msg)


# ---------------------------------------------------------------------- slow


class WideElectionTimeouts(Mutant):
    """Slow control: each election timeout is drawn from [T, 8T) instead of
    [T, 2T). Correct (Raft §5.2 asks only that timeouts be random and well
    above the broadcast time; the dissertation §9.3 measures how the range
    trades split votes against the time an election takes), but an election
    after a leader's loss takes up to four times as long. It must never be
    reported stuck; a verdict that bounds elections may report it slow.
    """

    kind = "slow"
    mutated = "_reset_election_timer"

    def _reset_election_timer(self) -> None:
        base = self.config.election_timeout_ms
        self._election_elapsed_ms = 0
        self._election_timeout_ms = base + self._rng.randrange(7 * base)  # not randrange(base)


class HalfAsManyHeartbeats(Mutant):
    """Slow control: the leader's heartbeat clock runs at half speed, so it
    sends heartbeats about every two request timeouts instead of one.
    Correct while that stays well below the election timeout (Raft §5.6:
    broadcastTime << electionTimeout; the default timers keep it at 0.4 of
    it), but commit indexes reach the followers, and lost requests are
    resent, half as often. It must never be reported stuck.
    """

    kind = "slow"
    mutated = "periodic"

    def periodic(self, msec: int) -> None:
        if self.role is Role.LEADER and type(msec) is int and msec > 0:
            self._heartbeat_elapsed_ms -= msec // 2  # slower: half of the time passes
        super().periodic(msec)


# ----------------------------------------------------------------- harmless


class RequestVoteTwice(Mutant):
    """Negative control: a candidate sends every RequestVote twice, as a
    retransmission would. Raft RPCs are idempotent (§5.1: "servers retry RPCs
    if they do not receive a response in a timely manner") and votes are
    counted per voter, so this costs messages and nothing else. The checker
    must stay silent.
    """

    kind = "harmless"
    mutated = "_request_votes"

    def _request_votes(self, *, prevote: bool) -> None:
        term = self.current_term + 1 if prevote else self.current_term
        msg = RequestVote(term, self.node_id, self._log.last_index, self._log.last_term, prevote)
        self.callbacks.sync()
        for member in self._peers:
            if member.voting:
                self.callbacks.send_requestvote(member.node_id, msg)
                self.callbacks.send_requestvote(member.node_id, msg)  # the extra copy


# ------------------------------------------------------------ linearizability
# What clients were told: caught only by the linearizability verdict on the
# clients' history (`--clients`), never by an invariant over the logs.


class LeaseWithoutConfirmation(Mutant):
    """A lease read without confirming leadership: the leader takes its read
    lease as held from the moment it leads, before any heartbeat round a
    majority answered, and never lets it expire (dissertation §6.4.1: the
    lease starts when a round that a majority answered was sent, and lasts
    an election timeout less the clock drift). The same mistake: Jepsen's
    "Call me maybe: etcd and Consul" (2014), stale reads from a leader that
    answered from its own state without checking it still led.

    Caught by: Linearizability (a read, served by a deposed leader, returns a
    value overwritten by a write that completed before the read began).
    """

    kind = "linearizability"
    expected_invariant = ("Linearizability",)
    mutated = "_lease_holds"

    def _lease_holds(self) -> bool:
        # BUG: no `self._clock_ms < self._reads.lease_until_ms`
        return self.config.lease_read and self._transfer_target is None


class ReadBeforeTermCommit(Mutant):
    """ReadIndex answered before the leader committed an entry of its own
    term (dissertation §6.4 step 1): a new leader's commit index may lag the
    last leader's, so the read misses a write that was already acknowledged.
    The same mistake: etcd 3189a66 ("raft: do not serve read index before
    the leader commits an entry in its term") and redisraft 1149155 (reads
    answered by a new leader before its first commit).

    Caught by: Linearizability (a stale read after a leader change).
    """

    kind = "linearizability"
    expected_invariant = ("Linearizability",)
    mutated = "_committed_in_current_term"

    def _committed_in_current_term(self) -> bool:
        return True  # BUG: the term's first commit is not waited for


class ReadWithoutHeartbeatRound(Mutant):
    """A read served by a leader cut off from the majority: ReadIndex skips
    its heartbeat round and trusts the last round a majority answered, which
    may predate a partition and a newer leader (dissertation §6.4 step 2:
    "the leader must check whether it has been deposed", by a round a
    majority answers after the read arrived). The same mistake: the stale
    reads Jepsen found in etcd 0.4 and Consul (2014), served by an isolated
    leader that still believed it led.

    Caught by: Linearizability (a stale read from a deposed leader).
    """

    kind = "linearizability"
    expected_invariant = ("Linearizability",)
    mutated = "read_index"

    def read_index(self, request_id: int) -> None:
        validation.check_int(request_id, "request_id")
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader_id)
        if self._transfer_target is not None:
            raise InvalidOperation(
                f"node {self.node_id} is handing leadership to node {self._transfer_target}"
            )
        # BUG: no new round; the newest one a majority answered will do
        self._reads.pending.append(PendingRead(request_id, self._reads.confirmed, None))
        self._serve_reads()


class RetriedWriteAppliedTwice(RaftcoreNode):
    """A retried write applied twice without sessions (dissertation §6.3):
    the state machine applies every committed command, so a client's retry
    of a command that had committed (its answer lost with a crashed leader)
    takes effect a second time, and a compare-and-set retried answers from
    the second try ("false") although the first swapped.

    It lives in the state machine, not in RaftServer: sessions are the
    application's (raftcore's `Sessions` is a helper the state machine
    calls), so the one method to override is the node's `_apply_once`,
    which runs the command through the session; here it runs it straight.

    Caught by: Linearizability (a cas told "false" whose value was written,
    or a value written again after a later write).
    """

    kind: ClassVar[str] = "linearizability"
    expected_invariant: ClassVar[tuple[str, ...] | None] = ("Linearizability",)
    mutated: ClassVar[str] = "_apply_once"

    def _apply_once(self, command: Command) -> bool | None:
        return self._execute(command)  # BUG: no self.sessions.apply(...)


# ------------------------------------------------------------------ registry


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


MUTANTS: dict[str, type[Mutant]] = {
    _snake(cls.__name__): cls
    for cls in (
        GrantVoteTwice,
        ForgetVoteOnLeaderContact,
        VoteNotPersisted,
        CandidateVoteNotRecorded,
        StaleVoteResponseCounted,
        NoStepDownOnHigherTermVoteResponse,
        DuplicateVotesCounted,
        UpToDateByLengthOnly,
        Fig8CommitOldTerm,
        PrevLogTermNotChecked,
        TruncateOnStaleAppendEntries,
        FollowerCommitBeyondVerified,
        CommitIndexGoesBack,
        ReplyBeforeSync,
        TwoMembershipChangesAtOnce,
        SnapshotInstallLosesEntries,
        SnapshotLowersTerm,
        ElectionTimerNeverReset,
        VoteOnlyForLongerLogs,
        RejectionNeverBacksOff,
        CompactedPrefixRejected,
        SnapshotSendNeverRetried,
        FullWindowNeverProbed,
        HeartbeatCommitIgnored,
        CheckQuorumNeverStepsDown,
        PrecandidateKeepsLeader,
        LaggardNeverSentSnapshot,
        WideElectionTimeouts,
        HalfAsManyHeartbeats,
        RequestVoteTwice,
        LeaseWithoutConfirmation,
        ReadBeforeTermCommit,
        ReadWithoutHeartbeatRound,
    )
}
"""Mutant name (also the name of its node factory here) -> class."""

# Mutants of the node's state machine (a RaftcoreNode subclass, running
# plain RaftServer), where the mistake is the application's, not Raft's.
NODE_MUTANTS: dict[str, type[RaftcoreNode]] = {
    _snake(cls.__name__): cls for cls in (RetriedWriteAppliedTwice,)
}
MUTANTS.update(NODE_MUTANTS)  # type: ignore[arg-type]

FACTORIES: dict[str, NodeFactory] = {
    name: factory(node_class=cls) if name in NODE_MUTANTS else factory(cls)  # type: ignore[arg-type]
    for name, cls in MUTANTS.items()
}
globals().update(FACTORIES)  # fig8_commit_old_term = factory(Fig8CommitOldTerm), ...


def factory_spec(name: str) -> str:
    """The --node-factory spec of a mutant."""
    if name not in MUTANTS:
        raise KeyError(f"no mutant {name!r}; known: {', '.join(MUTANTS)}")
    return f"{MODULE}:{name}"
