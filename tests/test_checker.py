"""Unit tests for virtraft.check.checker: every invariant fires, by name, on a
hand-made history that breaks it, and stays silent on healthy histories
(election, replication, commit, truncation of an uncommitted suffix by a new
leader, snapshot compaction, crash and restart).

The views are a tiny fake `NodeView`; `Cluster.event(...)` plays one
simulator event: it calls `observe` with the nodes the event touched, then
forgets `recent_applied` as the simulator's `begin_step()` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from virtraft.adapter import NodeView, Role
from virtraft.check.checker import INVARIANTS, Checker, Violation, read_scalars

Membership = tuple[tuple[int, bool], ...]
THREE: Membership = ((1, True), (2, True), (3, True))


@dataclass
class FakeNode:
    """A node's view, edited by hand; counts entry() reads."""

    node_id: int
    alive: bool = True
    role: Role = Role.FOLLOWER
    term: int = 0
    voted_for: int | None = None
    commit_index: int = 0
    last_index: int = 0
    snapshot_index: int = 0
    snapshot_term: int = 0
    members: Membership = THREE
    recent_applied: list[tuple[int, int, int]] = field(default_factory=list)
    log: dict[int, tuple[int, int]] = field(default_factory=dict)
    last_applied: int = 0
    reads: int = 0

    def scalars(self) -> tuple:
        return read_scalars(self)

    def entry(self, index: int) -> tuple[int, int] | None:
        self.reads += 1
        if index <= self.snapshot_index or index > self.last_index:
            return None
        return self.log[index]

    def append(self, *entries: tuple[int, int]) -> FakeNode:
        for entry in entries:
            self.last_index += 1
            self.log[self.last_index] = entry
        return self

    def truncate(self, last: int) -> None:
        """Drop entries after `last`."""
        for index in range(last + 1, self.last_index + 1):
            del self.log[index]
        self.last_index = last

    def copy_log(self, other: FakeNode) -> None:
        """Become a replica of other's log (what AppendEntries achieves)."""
        self.truncate(self.snapshot_index)
        for index in range(self.snapshot_index + 1, other.last_index + 1):
            self.append(other.log[index])

    def apply_to(self, index: int) -> None:
        """Commit and apply through `index`."""
        self.commit_index = max(self.commit_index, index)
        for i in range(self.last_applied + 1, index + 1):
            term, entry_id = self.log[i]
            self.recent_applied.append((i, term, entry_id))
        self.last_applied = index

    def compact(self, through: int) -> None:
        """Snapshot through `through` (applied)."""
        self.snapshot_term = self.log[through][0]
        for index in range(self.snapshot_index + 1, through + 1):
            del self.log[index]
        self.snapshot_index = through

    def crash(self, *, keep_log_through: int | None = None) -> None:
        """Lose volatile state; the view shows what is durable."""
        self.alive = False
        self.role = Role.FOLLOWER
        self.commit_index = 0
        self.last_applied = self.snapshot_index
        if keep_log_through is not None:
            self.truncate(keep_log_through)

    def restart(self) -> None:
        self.alive = True


class Cluster:
    """Fake nodes 1..n plus a checker; one `event` is one simulator step."""

    def __init__(
        self, n: int = 3, invariants: list[str] | None = None, *, given_reads: bool = False
    ) -> None:
        self.nodes = [FakeNode(i) for i in range(1, n + 1)]
        self.checker = Checker(invariants)
        # Hand observe() the touched nodes' scalars, as the simulator does,
        # instead of letting the checker read them.
        self.given_reads = given_reads
        self.step = 0
        self.found: list[Violation] = []
        self.event()  # the checker's first look at the cluster

    def __getitem__(self, node_id: int) -> FakeNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def event(self, *touched: int) -> list[str]:
        """One step touching `touched`; returns the names of what fired."""
        self.step += 1
        reads = [self[n].scalars() for n in touched] if self.given_reads else ()
        found = self.checker.observe(self.step, self.nodes, touched, reads)
        for node in self.nodes:
            node.recent_applied.clear()
        for violation in found:
            assert violation.step == self.step
            assert violation.invariant in INVARIANTS
            assert violation.message
            json.dumps(violation.witness)  # must be JSON-serialisable
        self.found.extend(found)
        return [v.invariant for v in found]

    def restart(self, node_id: int) -> list[str]:
        self[node_id].restart()
        self.checker.node_restarted(node_id)
        return self.event(node_id)

    def elect(self, leader: int, term: int, voters: tuple[int, ...] = ()) -> list[str]:
        """`leader` wins `term` with its own vote and `voters`' votes."""
        fired = []
        node = self[leader]
        node.term, node.voted_for, node.role = term, leader, Role.CANDIDATE
        fired += self.event(leader)
        for voter in voters:
            v = self[voter]
            v.term, v.voted_for, v.role = term, leader, Role.FOLLOWER
            fired += self.event(voter)
        node.role = Role.LEADER
        fired += self.event(leader)
        return fired

    def replicate(self, leader: int, *followers: int) -> list[str]:
        fired = []
        for f in followers:
            self[f].term = self[leader].term
            self[f].copy_log(self[leader])
            fired += self.event(f)
        return fired


def healthy_cluster() -> Cluster:
    """Node 1 leads term 1 and commits (1,100) (1,101) everywhere."""
    c = Cluster()
    assert c.elect(1, 1, (2, 3)) == []
    c[1].append((1, 100), (1, 101))
    assert c.event(1) == []
    assert c.replicate(1, 2, 3) == []
    c[1].apply_to(2)
    assert c.event(1) == []
    for f in (2, 3):
        c[f].apply_to(2)
        assert c.event(f) == []
    return c


# ------------------------------------------------------------------- API


def test_invariant_names_in_stable_order() -> None:
    assert INVARIANTS == (
        "ElectionSafety",
        "VoteOnce",
        "VoteForSelf",
        "TermMonotonic",
        "CommitMonotonic",
        "LeaderAppendOnly",
        "LogMatching",
        "LeaderCompleteness",
        "StateMachineSafety",
        "CommittedNeverLost",
    )
    assert Checker().invariants == INVARIANTS


def test_unknown_invariant_name_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="ElectionSafty"):
        Checker(["ElectionSafety", "ElectionSafty"])


def test_fake_node_satisfies_the_protocol() -> None:
    assert isinstance(FakeNode(1), NodeView)


def test_a_subset_checks_only_those_invariants() -> None:
    c = Cluster(invariants=["TermMonotonic"])
    assert c.checker.invariants == ("TermMonotonic",)
    for node_id in (1, 2):  # two leaders of term 4: not checked here
        c[node_id].term, c[node_id].role = 4, Role.LEADER
        assert c.event(node_id) == []
    c[1].term = 3
    assert c.event(1) == ["TermMonotonic"]


def test_a_single_name_string_is_one_invariant() -> None:
    assert Checker("LogMatching").invariants == ("LogMatching",)


def test_healthy_history_with_every_invariant_on() -> None:
    """Election, replication, commit, an uncommitted suffix truncated by a new
    leader, crash and restart, compaction: nothing fires."""
    c = healthy_cluster()
    # Node 1 appends (1,102) (1,103); only node 2 gets (1,102); 102 commits.
    c[1].append((1, 102), (1, 103))
    assert c.event(1) == []
    c[2].truncate(2)
    c[2].append((1, 102))
    assert c.event(2) == []
    c[1].apply_to(3)
    assert c.event(1) == []
    # Node 1 crashes with (1,103) uncommitted; node 2 leads term 2.
    c[1].crash()
    assert c.event(1) == []
    assert c.elect(2, 2, (3,)) == []
    c[2].append((2, 0))  # the no-op
    assert c.event(2) == []
    assert c.replicate(2, 3) == []
    c[2].apply_to(4)
    assert c.event(2) == []
    # Node 1 restarts and learns term 2: its (1,103) at index 4 is replaced.
    assert c.restart(1) == []
    c[1].term = 2
    assert c.event(1) == []
    assert c.replicate(2, 1) == []
    for node_id in (1, 3):
        c[node_id].apply_to(4)
        assert c.event(node_id) == []
    # Everyone compacts through 3; the leader keeps appending.
    for node_id in (1, 2, 3):
        c[node_id].compact(3)
        assert c.event(node_id) == []
    c[2].append((2, 104))
    assert c.event(2) == []
    assert c.replicate(2, 1, 3) == []
    c[2].apply_to(5)
    assert c.event(2) == []
    assert c.found == []
    assert c.checker.committed is not None
    assert c.checker.committed.index == 5


# -------------------------------------------------------------- ElectionSafety


def test_election_safety_two_leaders_in_one_term() -> None:
    c = Cluster()
    assert c.elect(1, 4, (2,)) == []
    c[3].term, c[3].voted_for, c[3].role = 4, 3, Role.LEADER
    assert c.event(3) == ["ElectionSafety"]
    violation = c.found[0]
    assert violation.nodes == (1, 3)
    assert violation.message == "nodes 1 and 3 both led term 4"


def test_election_safety_fires_even_if_the_first_leader_is_long_gone() -> None:
    c = Cluster(invariants=["ElectionSafety"])
    c.elect(1, 4, (2,))
    c[1].term, c[1].role = 5, Role.FOLLOWER
    c.event(1)
    c[3].term, c[3].role = 4, Role.LEADER
    assert c.event(3) == ["ElectionSafety"]


def test_election_safety_silent_on_successive_leaders() -> None:
    c = Cluster()
    assert c.elect(1, 1, (2,)) == []
    assert c.event(1, 2, 3) == []  # the same leader seen again
    c[1].role = Role.FOLLOWER
    assert c.elect(2, 2, (1, 3)) == []
    assert c.elect(3, 3, (1,)) == []
    assert c.found == []


# -------------------------------------------------------------------- VoteOnce


def test_vote_once_two_votes_in_one_term() -> None:
    c = Cluster()
    c[2].term, c[2].voted_for = 3, 1
    assert c.event(2) == []
    c[2].voted_for = 3
    assert c.event(2) == ["VoteOnce"]
    assert c.found[0].message == "node 2 voted for node 1 and then for node 3 in term 3"


def test_vote_once_vote_forgotten_across_a_restart() -> None:
    """The "vote not persisted" bug: A, then None after a restart, then B."""
    c = Cluster()
    c[2].term, c[2].voted_for = 3, 1
    assert c.event(2) == []
    c[2].crash()
    c[2].voted_for = None
    assert c.event(2) == []
    assert c.restart(2) == []
    c[2].voted_for = 3
    assert c.event(2) == ["VoteOnce"]


def test_vote_once_silent_on_one_vote_per_term_and_a_persisted_vote() -> None:
    c = Cluster()
    c[2].term, c[2].voted_for = 1, 1
    assert c.event(2) == []
    c[2].term, c[2].voted_for = 2, None  # a new term clears the vote
    assert c.event(2) == []
    c[2].voted_for = 3
    assert c.event(2) == []
    c[2].crash()
    assert c.event(2) == []
    assert c.restart(2) == []
    assert c.event(2) == []
    c[2].term, c[2].voted_for = 3, 1
    assert c.event(2) == []
    assert c.found == []


# ----------------------------------------------------------------- VoteForSelf


def test_vote_for_self_candidate_that_did_not_record_its_own_vote() -> None:
    """Raft Figure 2, Candidates: "Increment currentTerm, Vote for self". The
    vote is counted but not recorded, so VoteOnce has nothing to compare."""
    c = Cluster()
    c[1].term, c[1].role = 2, Role.CANDIDATE
    assert c.event(1) == ["VoteForSelf"]
    violation = c.found[0]
    assert violation.nodes == (1,)
    assert violation.message == "node 1 is candidate of term 2 but voted for nobody in that term"
    assert violation.witness == {"node": 1, "term": 2, "role": "candidate", "voted_for": None}


def test_vote_for_self_candidate_still_holding_its_vote_for_another() -> None:
    c = Cluster()
    c[1].term, c[1].voted_for = 3, 2  # a follower's vote in term 3
    assert c.event(1) == []
    c[1].role = Role.CANDIDATE  # campaigns in term 3 without a new term
    assert c.event(1) == ["VoteForSelf"]
    assert c.found[0].nodes == (1, 2)


def test_vote_for_self_leader_of_a_term_it_never_campaigned_in() -> None:
    """A leader that takes a higher term from a response but keeps leading
    (the zoo's no_step_down_on_higher_term_vote_response)."""
    c = Cluster()
    assert c.elect(1, 2, (2,)) == []
    c[1].term, c[1].voted_for = 3, None
    assert c.event(1) == ["VoteForSelf"]
    assert c.found[0].message == "node 1 is leader of term 3 but voted for nobody in that term"


def test_vote_for_self_silent_on_pre_candidates_campaigns_and_crashed_views() -> None:
    c = Cluster()
    # Pre-vote (dissertation §9.6) changes neither the term nor the vote.
    c[1].term, c[1].voted_for = 1, 2
    assert c.event(1) == []
    c[1].role = Role.PRECANDIDATE
    assert c.event(1) == []
    # A new campaign: a new term and its own vote; then again after a timeout.
    c[1].term, c[1].voted_for, c[1].role = 2, 1, Role.CANDIDATE
    assert c.event(1) == []
    c[1].term = 3
    assert c.event(1) == []
    c[1].role = Role.LEADER
    assert c.event(1) == []
    # A view that reports the vote only while the node runs, and the last
    # role even when down: a crashed node is bound to nothing.
    c[1].alive, c[1].voted_for = False, None
    assert c.event(1) == []
    c[1].role = Role.FOLLOWER
    assert c.restart(1) == []
    c[1].voted_for = 1
    assert c.event(1) == []
    assert c.found == []


# --------------------------------------------------------------- TermMonotonic


def test_term_monotonic_term_goes_down() -> None:
    c = Cluster()
    c[1].term = 5
    assert c.event(1) == []
    c[1].term = 3
    assert c.event(1) == ["TermMonotonic"]
    assert c.found[0].message == "node 1's term went from 5 down to 3"


def test_term_monotonic_term_lost_by_a_crash() -> None:
    c = Cluster(invariants=["TermMonotonic"])
    c[1].term = 5
    c.event(1)
    c[1].crash()
    c[1].term = 4  # the durable term was behind
    assert c.event(1) == ["TermMonotonic"]


def test_term_monotonic_silent_across_crash_and_restart() -> None:
    c = Cluster()
    for term in (1, 2, 2, 7):
        c[1].term = term
        assert c.event(1) == []
    c[1].crash()
    assert c.event(1) == []
    assert c.restart(1) == []
    c[1].term = 8
    assert c.event(1) == []


# ------------------------------------------------------------- CommitMonotonic


def test_commit_monotonic_commit_goes_down_while_alive() -> None:
    c = healthy_cluster()
    c[2].commit_index = 1
    assert c.event(2) == ["CommitMonotonic"]
    assert c.found[0].nodes == (2,)


def test_commit_monotonic_silent_on_crash_and_restart() -> None:
    c = healthy_cluster()
    c[2].crash()  # a crashed view reports commit index 0
    assert c.event(2) == []
    assert c.restart(2) == []
    c[2].apply_to(1)
    assert c.event(2) == []
    c[2].apply_to(2)
    assert c.event(2) == []


def test_commit_monotonic_reset_by_node_restarted_alone() -> None:
    """An adapter whose crash and restart fit in one event still restarts commit."""
    c = healthy_cluster()
    c[3].commit_index = 0
    c.checker.node_restarted(3)
    assert c.event(3) == []
    c[3].commit_index = 1
    assert c.event(3) == []
    c[3].commit_index = 0  # same incarnation again
    assert c.event(3) == ["CommitMonotonic"]


# ------------------------------------------------------------ LeaderAppendOnly


def test_leader_append_only_leader_truncates_its_log() -> None:
    c = Cluster()
    c.elect(1, 2, (2,))
    c[1].append((2, 1), (2, 2), (2, 3))
    assert c.event(1) == []
    c[1].truncate(2)
    assert c.event(1) == ["LeaderAppendOnly"]
    assert c.found[0].message == "leader 1 of term 2 removed its entry (term 2, id 3) at index 3"


def test_leader_append_only_leader_overwrites_an_entry() -> None:
    c = Cluster()
    c.elect(1, 2, (2,))
    c[1].append((2, 1), (2, 2), (2, 3))
    assert c.event(1) == []
    c[1].log[3] = (2, 9)
    # Its own earlier (index 3, term 2) record contradicts it too.
    assert c.event(1) == ["LeaderAppendOnly", "LogMatching"]
    assert c.found[0].witness["index"] == 3
    assert c.found[0].witness["before"] == {"term": 2, "id": 3}
    assert c.found[0].witness["after"] == {"term": 2, "id": 9}


@pytest.mark.parametrize("given_reads", [False, True])
def test_an_entry_replaced_under_unchanged_scalars_is_seen(given_reads: bool) -> None:
    """A follower's last entry replaced by one of a newer leader: no scalar
    moves (same length, term, vote, commit), only the entry at the top."""
    c = Cluster(given_reads=given_reads)
    c.elect(1, 2, (2,))
    c[2].append((1, 7))
    c[2].term = 2
    assert c.event(2) == []
    c[2].log[1] = (2, 8)
    assert c.event(2) == []
    # Seen: its (term 2, id 8) contradicts the leader's own entry 1 of term 2.
    # Unseen, node 2 would still hold (term 1, id 7) and nothing would fire.
    c[1].append((2, 9))
    assert c.event(1) == ["LogMatching"]
    assert c.found[0].witness["index"] == 1


def test_leader_append_only_silent_on_appends_compaction_and_after_stepping_down() -> None:
    c = Cluster()
    c.elect(1, 2, (2,))
    for entry_id in range(1, 6):
        c[1].append((2, entry_id))
        assert c.event(1) == []
    assert c.replicate(1, 2) == []
    c[1].commit_index = 3
    c[1].compact(3)
    assert c.event(1) == []
    # Deposed by term 3, node 1 may lose its uncommitted suffix.
    c[1].term, c[1].role = 3, Role.FOLLOWER
    c[1].truncate(4)
    assert c.event(1) == []
    assert c.found == []


# ----------------------------------------------------------------- LogMatching


def test_log_matching_same_index_and_term_different_entry() -> None:
    c = Cluster(invariants=["LogMatching"])
    c[1].append((1, 10))
    assert c.event(1) == []
    c[2].append((1, 11))
    assert c.event(2) == ["LogMatching"]
    assert c.found[0].message == (
        "node 2 holds (term 1, id 11) at index 1 but node 1 holds (term 1, id 10) there"
    )


def test_log_matching_same_entry_different_prefix() -> None:
    c = Cluster(invariants=["LogMatching"])
    c[1].append((1, 10), (2, 20))
    assert c.event(1) == []
    c[2].append((2, 15), (2, 20))
    assert c.event(2) == ["LogMatching"]
    assert c.found[0].witness["index"] == 2
    assert c.found[0].witness["entry"]["prev_term"] == 2
    assert c.found[0].witness["other"]["prev_term"] == 1


def test_log_matching_checks_entries_after_a_snapshot() -> None:
    """The first entry after a snapshot is matched with the snapshot's term."""
    c = Cluster(invariants=["LogMatching"])
    c[1].append((1, 10), (2, 20))
    assert c.event(1) == []
    c[2].snapshot_index, c[2].snapshot_term, c[2].last_index = 1, 3, 1
    c[2].log[2] = (2, 20)
    c[2].last_index = 2
    assert c.event(2) == ["LogMatching"]


def test_log_matching_reads_a_snapshot_term_that_changes_without_its_index() -> None:
    """A view may show a snapshot's index before its term (a snapshot loaded in
    two steps): the entry after it is matched with the term it has now."""
    c = Cluster()
    c[1].append((1, 10), (2, 20))
    assert c.event(1) == []
    c[2].snapshot_index, c[2].last_index = 1, 1  # its term not shown yet
    assert c.event(2) == []
    c[2].snapshot_term = 1
    c[2].log[2] = (2, 20)
    c[2].last_index = 2
    assert c.event(2) == []
    assert c.found == []


def test_a_snapshot_term_changed_under_its_index_names_the_invariant_it_breaks() -> None:
    """A snapshot of another history installed over one of the same index: the
    committed entry there is gone from a majority (CommittedNeverLost), and
    the entry appended after it agrees with the new term, not the stale one
    (no LogMatching)."""
    c = Cluster()
    c.elect(1, 1, (2,))
    c[1].append((1, 10), (1, 11))
    assert c.event(1) == []
    assert c.replicate(1, 2) == []
    c[1].apply_to(2)
    assert c.event(1) == []
    c[2].apply_to(2)
    c[2].compact(2)
    assert c.event(2) == []
    c[3].term = 1
    c[3].append((1, 10), (2, 15), (2, 30))  # a stale branch, never committed
    assert c.event(3) == []
    c[2].snapshot_term = 2
    c[2].append((2, 30))
    assert c.event(2) == ["CommittedNeverLost"]
    assert c.found[0].witness["holders"] == [1]


def test_a_snapshot_term_changed_alone_is_a_log_change() -> None:
    """Nothing else about the node moves: its snapshot still ends at the
    committed index, under another term, so it no longer holds that entry."""
    c = Cluster(invariants=["CommittedNeverLost"])
    c.elect(1, 1, (2,))
    c[1].append((1, 10), (1, 11))
    c.event(1)
    c.replicate(1, 2)
    c[1].commit_index = 2
    c.event(1)
    c[2].compact(2)
    assert c.event(2) == []
    c[2].snapshot_term = 3
    assert c.event(2) == ["CommittedNeverLost"]


def test_log_matching_rechecks_entries_after_a_snapshot_whose_term_differs() -> None:
    """A snapshot whose term is not that of the entry it replaces: the entries
    kept after it now follow another term, and disagree with other logs."""
    c = Cluster(invariants=["LogMatching"])
    c[1].append((1, 10), (1, 11), (1, 12))
    assert c.event(1) == []
    c[2].append((1, 10), (1, 11), (1, 12))
    assert c.event(2) == []
    c[2].compact(2)
    c[2].snapshot_term = 2
    assert c.event(2) == ["LogMatching"]
    assert c.found[0].witness["index"] == 3
    assert c.found[0].witness["entry"]["prev_term"] == 2


def test_log_matching_silent_on_truncated_and_replaced_suffix() -> None:
    c = Cluster()
    c.elect(1, 1, (2,))
    c[1].append((1, 10), (1, 11))
    assert c.event(1) == []
    assert c.replicate(1, 2) == []
    c[1].crash()
    assert c.event(1) == []
    assert c.elect(3, 2, (2,)) == []
    c[3].append((2, 0), (2, 30))
    assert c.event(3) == []
    # Node 2's (1,10) (1,11) were never committed: the new leader's log replaces them.
    assert c.replicate(3, 2) == []
    assert c.restart(1) == []
    c[1].term = 2
    assert c.replicate(3, 1) == []
    assert c.found == []


# ---------------------------------------------------------- LeaderCompleteness


def test_leader_completeness_new_leader_lacks_a_committed_entry() -> None:
    c = Cluster(invariants=["LeaderCompleteness"])
    c.elect(1, 1, (2,))
    c[1].append((1, 10), (1, 11))
    c.event(1)
    c.replicate(1, 2)
    c[1].commit_index = 2
    assert c.event(1) == []
    c[3].append((1, 10))
    c.event(3)
    assert c.elect(3, 2, (2,)) == ["LeaderCompleteness"]
    assert c.found[0].message == (
        "node 3 became leader of term 2 without the committed entry (term 1, id 11) "
        "at index 2 (its log ends at index 1)"
    )


def test_leader_completeness_silent_when_the_leader_holds_it_or_a_snapshot_covers_it() -> None:
    c = healthy_cluster()
    c[1].role = Role.FOLLOWER
    assert c.elect(2, 2, (3,)) == []
    c[2].role = Role.FOLLOWER
    c[3].compact(2)
    c[3].truncate(2)
    assert c.event(3) == []
    assert c.elect(3, 3, (1,)) == []
    assert c.found == []


def test_leader_completeness_silent_for_a_leader_of_an_older_term() -> None:
    """Votes granted before the commit may still elect a leader of an older
    term (delayed vote responses): Raft §5.4 only binds higher terms."""
    c = Cluster(invariants=["LeaderCompleteness"])
    c.elect(1, 5, (2,))
    c[1].append((5, 10))
    c.event(1)
    c.replicate(1, 2)
    c[1].commit_index = 1
    c.event(1)
    c[3].term, c[3].role = 4, Role.LEADER
    assert c.event(3) == []


# ---------------------------------------------------------- StateMachineSafety


def test_state_machine_safety_two_entries_applied_at_one_index() -> None:
    c = Cluster(invariants=["StateMachineSafety"])
    c[1].recent_applied.append((9, 2, 12))
    assert c.event(1) == []
    c[2].recent_applied.append((9, 3, 17))
    assert c.event(2) == ["StateMachineSafety"]
    assert c.found[0].message == (
        "node 2 applied (term 3, id 17) at index 9 but node 1 applied (term 2, id 12) there"
    )


def test_state_machine_safety_silent_when_a_restart_reapplies() -> None:
    c = healthy_cluster()
    c[1].crash()
    assert c.event(1) == []
    assert c.restart(1) == []
    c[1].apply_to(2)  # applies (1..2) again, the same entries
    assert c.event(1) == []


# ---------------------------------------------------------- CommittedNeverLost


def test_committed_never_lost_when_a_holder_loses_unsynced_writes() -> None:
    c = Cluster(invariants=["CommittedNeverLost"])
    c.elect(1, 1, (2,))
    c[1].append((1, 10))
    c.event(1)
    c.replicate(1, 2)
    c[1].commit_index = 1
    assert c.event(1) == []
    c[2].crash(keep_log_through=0)  # acknowledged, but never reached the disk
    assert c.event(2) == ["CommittedNeverLost"]
    v = c.found[0]
    assert v.witness["holders"] == [1]
    assert v.witness["needed"] == 2
    assert c.event(1, 2, 3) == []  # reported once, not at every step


def test_committed_never_lost_when_the_configuration_grows() -> None:
    c = Cluster(n=5, invariants=["CommittedNeverLost"])
    for node in c.nodes[:3]:
        node.members = THREE
    c.elect(1, 1, (2,))
    c[1].append((1, 10))
    c.event(1)
    c.replicate(1, 2)
    c[1].commit_index = 1
    assert c.event(1) == []
    # Two voters join without the entry: 2 of 5 no longer meet every majority.
    c[1].members = tuple((i, True) for i in range(1, 6))
    c[1].append((1, 0))
    assert c.event(1) == ["CommittedNeverLost"]


def test_committed_never_lost_silent_on_crash_snapshot_and_lagging_follower() -> None:
    c = Cluster()
    c.elect(1, 1, (2,))
    c[1].append((1, 10), (1, 11))
    c.event(1)
    c.replicate(1, 2)  # node 3 lags
    c[1].commit_index = 2
    assert c.event(1) == []
    c[2].crash()  # its log is durable
    assert c.event(2) == []
    c[1].compact(2)  # a snapshot holds it too
    assert c.event(1) == []
    c[3].snapshot_index, c[3].snapshot_term, c[3].last_index = 2, 1, 2  # installed
    assert c.event(3) == []
    assert c.found == []


def five_nodes_shrunk_to_three() -> Cluster:
    """Nodes 1..5; leader 1 removes 4 and 5, then commits (2,7) on 1 and 2."""
    five: Membership = tuple((i, True) for i in range(1, 6))
    c = Cluster(n=5)
    for node in c.nodes:
        node.members = five
    c.elect(1, 2, (2, 3))
    for node_id in (1, 2, 3):
        c[node_id].members = THREE  # the configuration entry, in effect once appended
    c[1].append((2, 0))
    c.event(1)
    c.replicate(1, 2, 3)
    c[1].append((2, 7))
    c.event(1)
    c.replicate(1, 2)
    c[1].commit_index = 2
    assert c.event(1) == []
    return c


def test_committed_never_lost_ignores_a_stale_node_with_a_higher_term() -> None:
    """Without pre-vote, a partitioned node's term runs ahead while its log and
    configuration stay stale: its 5 voters are not the configuration."""
    c = five_nodes_shrunk_to_three()
    c[4].term, c[4].voted_for, c[4].role = 9, 4, Role.CANDIDATE
    assert c.event(4) == []
    assert c.found == []


def test_committed_never_lost_keeps_the_configuration_while_its_source_is_down() -> None:
    """A crashed view may not know its configuration (raftcore's shows the
    bootstrap one): members are only read from a live node."""
    c = five_nodes_shrunk_to_three()
    c[1].crash()
    c[1].members = tuple((i, True) for i in range(1, 6))
    assert c.event(1) == []
    c[2].crash()
    c[2].members = c[1].members
    assert c.event(2) == []  # 1 and 2 still hold it on disk
    c[2].truncate(1)  # node 2's disk loses it: now only node 1 has it
    assert c.event(2) == ["CommittedNeverLost"]
    assert c.found[0].witness["voters"] == [1, 2, 3]


# ------------------------------------------------------- incremental and bounded


def test_a_node_appearing_later_is_checked() -> None:
    c = Cluster(invariants=["LogMatching"])
    c[1].append((1, 10))
    c.event(1)
    c.nodes.append(FakeNode(4).append((1, 99)))
    assert c.event(4) == ["LogMatching"]


def test_a_node_appearing_untouched_is_still_read() -> None:
    c = Cluster(invariants=["ElectionSafety"])
    c.elect(1, 4, (2,))
    c.nodes.append(FakeNode(4, term=4, voted_for=4, role=Role.LEADER))
    assert c.event() == ["ElectionSafety"]


def test_reads_per_event_do_not_grow_with_the_log() -> None:
    c = Cluster()
    c.elect(1, 1, (2, 3))
    for entry_id in range(1, 2001):
        c[1].append((1, entry_id))
    c.event(1)
    assert c.replicate(1, 2, 3) == []
    for node in c.nodes:
        node.reads = 0
    c[1].append((1, 5000))
    assert c.event(1) == []
    assert c[1].reads <= 2
    assert c.event(1, 2, 3) == []
    assert sum(node.reads for node in c.nodes) <= 5


def test_records_are_pruned_below_every_members_snapshot() -> None:
    c = Cluster()
    c.elect(1, 1, (2, 3))
    c[1].append(*[(1, i) for i in range(1, 101)])
    c.event(1)
    assert c.replicate(1, 2, 3) == []
    for node in c.nodes:
        node.apply_to(100)
        assert c.event(node.node_id) == []
    full = c.checker.records()
    assert full["LogMatching"] >= 100
    assert full["StateMachineSafety"] >= 100
    for node in c.nodes[:2]:
        node.compact(90)
        assert c.event(node.node_id) == []
    assert c.checker.records()["LogMatching"] >= 100  # node 3 still holds them
    c[3].compact(90)
    assert c.event(3) == []
    pruned = c.checker.records()
    assert pruned["LogMatching"] <= 10
    assert pruned["StateMachineSafety"] <= 10
    assert pruned["shadows"] <= 30


def test_a_removed_node_does_not_hold_memory_down() -> None:
    c = Cluster(n=4)
    for node in c.nodes:
        node.members = ((1, True), (2, True), (3, True), (4, True))
    c.elect(1, 1, (2, 3))
    c[1].append(*[(1, i) for i in range(1, 51)])
    c.event(1)
    assert c.replicate(1, 2, 3) == []
    c[1].members = THREE  # node 4 removed; it stays in the views, never compacting
    c[1].append((1, 0))
    c.event(1)
    for node in c.nodes[:3]:
        node.compact(50)
        assert c.event(node.node_id) == []
    assert c.checker.records()["LogMatching"] <= 1
    assert c.found == []
