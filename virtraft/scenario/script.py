"""Runs a scenario: its phases in file order on one simulation, with what
must follow each one checked after every step.

Each phase happens at a virtual time (or step), does one thing (partition,
heal, crash, restart, add or remove a member, snapshot, send client
commands; see `actions`) and may state what must follow (a leader within N
ms, a commit within N ms, no leader change; see `expect`). Scripted actions
become ordinary simulator events, so a run, scripted and background, is one
event list that `virtraft replay` replays. After the script a liveness
phase asks for a leader and a commit within a bound, reported apart from
safety. Reading the file is `schema`'s.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from virtraft.adapter import Capabilities, MembershipChange
from virtraft.check.checker import Checker, Violation
from virtraft.run.factory import DEFAULT_FACTORY, load_factory
from virtraft.run.liveness import Liveness, liveness_in_place, liveness_phase
from virtraft.run.seed import RunResult
from virtraft.scenario.actions import Ongoing, Plan, Wait
from virtraft.scenario.expect import RETRY_MS, Check, ExpectationOutcome, roles
from virtraft.scenario.fields import ROLES, Ref
from virtraft.scenario.schema import (
    Phase,
    Scenario,
    ScenarioError,
    list_scenarios,
    load_scenario,
    read_scenario,
)
from virtraft.sim.events import ChangeMembership, Event
from virtraft.sim.scheduler import Scheduler
from virtraft.sim.simulation import NotApplicable, Simulation
from virtraft.trace.format import trace_lines

# Callers read and run scenarios through this module.
__all__ = [
    "ScenarioError",
    "ScenarioOutcome",
    "list_scenarios",
    "load_scenario",
    "read_scenario",
    "run_scenario",
]


class _Violated(Exception):
    """A scripted event broke an invariant; the run stops."""


class _Script:
    """Runs the phases in file order, each when its time has come and the one
    before it is done; keeps the open checks up to date. It is the `Stage`
    the actions act on."""

    def __init__(self, scenario: Scenario, sim: Simulation) -> None:
        self.scenario = scenario
        self.sim = sim
        self.labels: dict[str, int] = {}
        self.next = 0  # index of the next phase to run
        self.due_since_ms: int | None = None
        self.last_try_ms: int | None = None
        self.ongoing: Ongoing | None = None
        self.checks: list[Check] = []
        self.phase_failures: list[ExpectationOutcome] = []
        self.blocked = False
        self.waiting: str | None = None  # why the next phase is not happening yet
        self.promotions: dict[int, int | None] = {}  # joining node -> last attempt ms
        self.violation: Violation | None = None

    # ---- the loop's view

    def finished(self) -> bool:
        s, sim = self.scenario, self.sim
        return (
            (self.blocked or (self.next >= len(s.phases) and self.ongoing is None))
            and sim.clock_ms >= s.duration_ms
            and (s.steps is None or sim.step >= s.steps)
            and not any(check.holds_run_open for check in self.checks)
        )

    def before_step(self) -> Violation | None:
        """Apply what the script wants now; returns a violation if one was found."""
        try:
            for check in self.checks:
                event = check.event()
                if event is not None:
                    self.apply(event)
                    check.applied(event)
            self._promote()
            self._phases()
        except _Violated:
            return self.violation
        return None

    def observe(self) -> None:
        for check in self.checks:
            if check.result is None:
                check.observe()

    def outcomes(self, why: str, ended: bool) -> list[ExpectationOutcome]:
        """Every check's result, then every phase that failed, did not finish
        or did not run. Windows close only when the script `ended`; a run
        stopped first (max_steps, a violation) leaves them undecided."""
        for check in self.checks:
            if ended:
                check.window_closed("the script ended")
            check.finish(why)
        results = [check.result for check in self.checks if check.result is not None]
        return results + self.phase_failures + self._unfinished(why)

    def _unfinished(self, why: str) -> list[ExpectationOutcome]:
        """A scenario passes only when it checked what it says: a phase cut
        short or never run is a failure that says why."""
        sim, phases = self.sim, self.scenario.phases
        stopped = f"{why} at {sim.clock_ms} ms"
        out = []
        if self.ongoing is not None:
            phase = phases[self.next - 1]
            out.append(ExpectationOutcome(phase.describe(), False, f"did not finish: {stopped}"))
        if self.blocked:
            blocker = phases[self.next]
            return out + [
                ExpectationOutcome(
                    phase.describe(),
                    False,
                    f"did not run: phase {blocker.number} before it could not happen",
                )
                for phase in phases[self.next + 1 :]
            ]
        for phase in phases[self.next :]:
            waited = phase.number == self.next + 1 and self.waiting is not None
            state = f"it was waiting: {self.waiting}" if waited else f"due at {phase.when()}"
            out.append(
                ExpectationOutcome(phase.describe(), False, f"did not run: {stopped}; {state}")
            )
        return out

    # ---- the stage the actions act on

    def apply(self, event: Event) -> None:
        """Apply one scripted event (raises NotApplicable, or _Violated)."""
        violation = self.sim.apply(event)
        self.observe()  # the state a violation leaves is still a state to judge
        if violation is not None:
            self.violation = violation
            raise _Violated

    def resolve(self, ref: Ref) -> int:
        sim = self.sim
        if isinstance(ref, int):
            if ref not in sim.nodes:
                raise NotApplicable(f"there is no node {ref}")
            return ref
        if ref in self.labels:
            return self.labels[ref]
        if ref not in ROLES:
            raise NotApplicable(f"label {ref!r} names no node (its phase named none)")
        leader = sim.voting_leader()
        if leader is None:
            raise Wait(f"no leader to name as {ref!r}")
        if ref == "leader":
            return leader.node_id
        voters = [n for n, voting in leader.members if voting and n != leader.node_id]
        live = [n for n in sorted(voters) if n in sim.nodes and sim.nodes[n].alive]
        if not live:
            raise Wait("no live follower")
        return live[0]

    def promote_when_caught_up(self, node: int) -> None:
        self.promotions[node] = None

    def follow_up(self, ongoing: Ongoing) -> None:
        self.ongoing = ongoing

    # ---- phases

    def _phases(self) -> None:
        while not self.blocked:
            if self.ongoing is not None:
                if not self.ongoing.step(self):
                    return
                self.ongoing = None
                continue
            if self.next >= len(self.scenario.phases):
                return
            phase = self.scenario.phases[self.next]
            if not self._due(phase):
                return
            sim = self.sim
            if self.due_since_ms is None:
                self.due_since_ms = sim.clock_ms
            if self.last_try_ms is not None and sim.clock_ms - self.last_try_ms < RETRY_MS:
                return
            self.last_try_ms = sim.clock_ms
            try:
                self._run(phase)
            except Wait as wait:
                self.waiting = str(wait)
                if sim.clock_ms - self.due_since_ms >= phase.wait_ms:
                    self._fail_phase(phase, f"could not happen within {phase.wait_ms} ms: {wait}")
                return
            except NotApplicable as exc:
                self._fail_phase(phase, f"could not happen: {exc}")
                return
            self.next += 1
            self.due_since_ms = None
            self.last_try_ms = None
            self.waiting = None

    def _due(self, phase: Phase) -> bool:
        if phase.at_ms is not None:
            return self.sim.clock_ms >= phase.at_ms
        assert phase.at_step is not None
        return self.sim.step >= phase.at_step

    def _fail_phase(self, phase: Phase, why: str) -> None:
        self.blocked = True
        later = len(self.scenario.phases) - phase.number
        rest = f"; the {later} phases after it did not run" if later else ""
        self.phase_failures.append(
            ExpectationOutcome(phase.describe(), False, f"{why} ({roles(self.sim)}){rest}")
        )

    def _run(self, phase: Phase) -> None:
        """Carry out one phase: plan its action, resolve its expectation's
        nodes, apply the events, then open its check. Raises Wait (to be
        retried) when it cannot happen yet."""
        sim = self.sim
        leader = sim.voting_leader()
        before = (leader.node_id, leader.term) if leader is not None else None
        action, expect = phase.action, phase.expect
        plan = action.plan(self) if action is not None else Plan()
        # The phase's own label may be used by its expectation.
        if phase.label is not None and plan.named is not None:
            self.labels[phase.label] = plan.named
        try:
            nodes = tuple(self.resolve(r) for r in expect.refs()) if expect is not None else ()
        except Wait:
            if phase.label is not None:
                self.labels.pop(phase.label, None)
            raise
        # Nothing waits from here on, except a refused membership change.
        for check in self.checks:
            check.window_closed(f"phase {phase.number}")
        if action is not None:
            action.carry_out(self, plan)
        if expect is not None:
            check = expect.open(phase.describe(), sim, nodes, before)
            self.checks.append(check)
            check.observe()

    def _promote(self) -> None:
        """Promote a joined member to voter once the leader says it caught up."""
        if not self.promotions:
            return
        sim = self.sim
        leader = sim.voting_leader()
        if leader is None:
            return
        members = dict(leader.members)
        for node, last in list(self.promotions.items()):
            if members.get(node) is True:
                del self.promotions[node]
                continue
            told = leader.caught_up
            if node not in members or (told is not None and node not in told):
                continue
            if last is not None and sim.clock_ms - last < RETRY_MS:
                continue
            self.promotions[node] = sim.clock_ms
            self.apply(ChangeMembership(leader.node_id, MembershipChange.PROMOTE, node))


@dataclass(frozen=True, slots=True)
class ScenarioOutcome:
    """How a scenario run ended. A skipped one (`skipped` says why) neither
    passed nor failed: nothing ran, and `run` holds the cluster as built."""

    scenario: Scenario
    run: RunResult
    expectations: list[ExpectationOutcome] = field(default_factory=list)
    skipped: str | None = None

    @property
    def status(self) -> str:
        """ "skipped", "as stated" (a pass, or the stated failure) or "not as stated"."""
        if self.skipped is not None:
            return "skipped"
        return "as stated" if self.as_stated else "not as stated"

    @property
    def expected_failure(self) -> str | None:
        return self.scenario.expect_failure

    @property
    def failed(self) -> bool:
        """Safety, liveness or a stated expectation failed (exit code 1)."""
        if self.skipped is not None:
            return False
        return self.run.failed or not all(e.passed for e in self.expectations)

    @property
    def as_stated(self) -> bool:
        """The outcome is what the file says: a pass, or the stated failure only."""
        if self.skipped is not None:
            return False
        stated = self.expected_failure
        run = self.run
        expectations_held = all(e.passed for e in self.expectations)
        if stated is None:
            return not self.failed
        if stated == "liveness":
            return run.violation is None and run.liveness.verdict == "failed" and expectations_held
        if stated == "expectation":
            return (
                run.violation is None and not expectations_held and run.liveness.verdict != "failed"
            )
        return run.violation is not None and run.violation.invariant == stated

    def verdict(self) -> dict[str, Any]:
        scenario: dict[str, Any] = {
            "name": self.scenario.name,
            "expected_failure": self.expected_failure,
            "as_stated": self.as_stated,
            "expectations": [
                {"description": e.description, "passed": e.passed, "detail": e.detail}
                for e in self.expectations
            ],
        }
        if self.skipped is not None:
            scenario["skipped"] = self.skipped
        return {**self.run.verdict(), "scenario": scenario}

    def trace_lines(self) -> list[str]:
        run = self.run
        return trace_lines(
            run.seed,
            run.options,
            run.factory,
            run.sim.events,
            self.verdict(),
            extra={"scenario": self.scenario.name},
        )


def run_scenario(
    scenario: Scenario, seed: int, *, factory: str = DEFAULT_FACTORY
) -> ScenarioOutcome:
    """Run the script with the background events of `seed`, then the liveness
    phase; skip it, saying why, when the implementation lacks what it needs."""
    options = scenario.options
    sim = Simulation(options, seed, load_factory(factory), checker=Checker())
    lacking = _lacking(scenario, sim.capabilities, factory)
    if lacking is not None:
        run = RunResult(seed, options, factory, None, Liveness("skipped", lacking), sim)
        return ScenarioOutcome(scenario, run, skipped=lacking)
    scheduler = Scheduler(random.Random(f"virtraft:{seed}:scheduler"), options)
    script = _Script(scenario, sim)
    stop = _run_script(script, scheduler)
    violation = stop.violation
    if violation is not None:
        liveness = Liveness("skipped", "safety was violated")
    elif not scenario.liveness:
        liveness = Liveness("skipped", "the scenario switches the liveness phase off")
    elif scenario.liveness_heal:
        liveness, violation = liveness_phase(sim, scheduler)
    else:
        liveness, violation = liveness_in_place(sim, scheduler)
    expectations = script.outcomes(stop.why, stop.ended)
    run = RunResult(seed, options, factory, violation, liveness, sim)
    return ScenarioOutcome(scenario, run, expectations)


@dataclass(frozen=True, slots=True)
class _Stop:
    """Why the script stopped; `ended` only when it ran to its end."""

    why: str
    ended: bool = False
    violation: Violation | None = None


def _run_script(script: _Script, scheduler: Scheduler) -> _Stop:
    """Scripted events, each step's background event, and the checks after
    every one, until the script ends, a violation, or max_steps."""
    sim, max_steps = script.sim, script.scenario.max_steps
    while sim.step < max_steps:
        violation = script.before_step()
        if violation is None and script.finished():
            return _Stop("the script ended", ended=True)
        if violation is None:
            violation = sim.apply(scheduler.next_event(sim))
            script.observe()
        if violation is not None:
            return _Stop(f"safety was violated at step {violation.step}", violation=violation)
    return _Stop(f"the run reached max_steps ({max_steps})")


def _lacking(scenario: Scenario, capabilities: Capabilities, factory: str) -> str | None:
    """Why the implementation cannot run the scenario as it is written, or
    None: a scenario that needs what it lacks would test nothing it says."""
    unmet: dict[str, list[str]] = {}
    for need in scenario.needs():
        if not need.met_by(capabilities):
            unmet.setdefault(need.what, []).append(need.where)
    if not unmet:
        return None
    what = "; ".join(f"{name} ({', '.join(where)})" for name, where in unmet.items())
    return f"{factory} lacks what this scenario needs: {what}"
