"""A scenario file, read and checked into frozen dataclasses, and the
shipped scenarios by name.

A scenario file names a cluster, raft options, background fault rates and a
list of phases; each phase's action and expectation read their own fields
(`actions.ACTIONS`, `expect.EXPECTS`). The file format is documented in
scenarios/README.md; every field is checked when the file is read, and a bad
one is reported as one line naming the file, the field and what was
expected.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virtraft.adapter import Capabilities, NodeOptions
from virtraft.check.checker import INVARIANTS
from virtraft.scenario.actions import ACTIONS, Action
from virtraft.scenario.expect import EXPECTS, Expectation
from virtraft.scenario.fields import (
    MAX_SCENARIO_STEPS,
    ROLES,
    PhaseTable,
    ScenarioError,
    Table,
)
from virtraft.sim.options import RATE_FIELDS, OptionsError, SimOptions

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios"

# What `expect_failure` may name: the liveness verdict, an expectation, or a
# safety invariant (NodeException: the server under test raised).
FAILURES = ("liveness", "expectation", *INVARIANTS, "NodeException")

DEFAULT_WAIT_MS = 10_000
DEFAULT_MAX_STEPS = MAX_SCENARIO_STEPS
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class ScenarioInfo:
    name: str
    summary: str
    expects: str  # "pass", "liveness fails", "ElectionSafety violated", ...
    path: str


@dataclass(frozen=True, slots=True)
class Phase:
    number: int  # 1-based position in the file's [[phases]]
    at_ms: int | None
    at_step: int | None
    action: Action | None
    label: str | None = None
    wait_ms: int = DEFAULT_WAIT_MS
    expect: Expectation | None = None

    def when(self) -> str:
        return f"{self.at_ms} ms" if self.at_ms is not None else f"step {self.at_step}"

    def describe(self) -> str:
        head = f"phase {self.number} at {self.when()}"
        if self.action is None:
            return head
        return f"{head}: {self.action.describe()}"


@dataclass(frozen=True, slots=True)
class Need:
    """Something a scenario needs of the implementation, and where the file
    asks for it: a capability (membership, snapshots, a disk that loses
    unsynced writes), or a Raft option its [raft] table sets, which the
    implementation must honour."""

    capability: str  # a field of virtraft.adapter.Capabilities
    where: str  # "phase 3 add_member"; for an option, its name
    option: str | None = None  # for "options": the NodeOptions field

    def met_by(self, capabilities: Capabilities) -> bool:
        if self.capability == "membership":
            return capabilities.membership
        if self.capability == "snapshots":
            return capabilities.snapshots
        if self.capability == "lossy_disk":
            return capabilities.lossy_disk
        assert self.capability == "options" and self.option is not None
        return self.option in capabilities.options

    @property
    def what(self) -> str:
        return self.capability if self.option is None else "the raft options it sets"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    path: str
    options: SimOptions
    phases: tuple[Phase, ...]
    duration_ms: int
    steps: int | None
    max_steps: int
    liveness: bool
    liveness_heal: bool
    expect_failure: str | None
    raft_options: frozenset[str] = frozenset()  # the NodeOptions fields [raft] sets

    @property
    def expects(self) -> str:
        return _expects_text(self.expect_failure)

    def needs(self) -> tuple[Need, ...]:
        """What the phases' actions and expectations need, and the options set."""
        needs = []
        for phase in self.phases:
            for step in (phase.action, phase.expect):
                if step is not None and step.needs is not None:
                    needs.append(Need(step.needs, f"phase {phase.number} {step.name}"))
        needs.extend(Need("options", option, option) for option in sorted(self.raft_options))
        return tuple(needs)


def _expects_text(failure: str | None) -> str:
    if failure is None:
        return "pass"
    if failure == "liveness":
        return "liveness fails"
    if failure == "expectation":
        return "an expectation fails"
    return f"{failure} violated"


# ------------------------------------------------------------------ reading


# Scenarios are calm unless they say otherwise: a light client load, no
# faults. A removed server stays to the end: a script may still name it, and
# `removed_node_campaigns` watches it campaign for good.
_CALM = SimOptions(client_rate=0.05, removed_linger_ms=None)
_FAULT_RATES = (*RATE_FIELDS, "deliver_share", "lossy_crash_probability")
_FAULT_TIMES = ("delay_ms_min", "delay_ms_max", "tick_ms_min", "tick_ms_max")


def read_scenario(path: str | Path, shown: str | None = None) -> Scenario:
    """Read and check one scenario file; `shown` is how errors name it."""
    shown = shown or str(path)
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ScenarioError(f"{shown}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{shown}: not a text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{shown}: not valid TOML: {exc}") from None
    return _parse(Table(shown, "", raw))


@dataclass(frozen=True, slots=True)
class _RunLength:
    duration_ms: int | None
    steps: int | None
    max_steps: int


@dataclass(frozen=True, slots=True)
class _LivenessPhase:
    check: bool
    heal: bool
    stable_ms: int
    bound_ms: int


def _parse(top: Table) -> Scenario:
    name = top.get(
        "name",
        "a lowercase name like leader_isolated",
        lambda v: isinstance(v, str) and bool(_NAME.match(v)),
    )
    summary = top.get(
        "summary",
        "a one-line summary",
        lambda v: isinstance(v, str) and bool(v.strip()) and "\n" not in v,
    )
    failure = top.get(
        "expect_failure", f"one of: {', '.join(FAILURES)}", lambda v: v in FAILURES, None
    )
    cluster = top.table("cluster")
    servers = cluster.get(
        "servers",
        "a whole number of servers in 1..64",
        lambda v: type(v) is int and 1 <= v <= 64,
        5,
    )
    max_servers = cluster.whole("max_servers", minimum=servers, default=max(9, servers))
    min_voters = cluster.whole("min_voters", minimum=1, default=3)
    cluster.done()
    raft = top.table("raft")
    node = _read_raft(raft)
    faults = _read_faults(top.table("faults"))
    length = _read_run(top.table("run"))
    live = _read_liveness(top.table("liveness"), failure)
    try:
        options = _CALM.replace(
            servers=servers,
            steps=length.steps or 0,
            max_servers=max_servers,
            min_voters=min_voters,
            liveness=live.check,
            liveness_stable_ms=live.stable_ms,
            liveness_bound_ms=live.bound_ms,
            node=node,
            **faults,
        )
    except OptionsError as exc:
        raise ScenarioError(f"{top.path}: faults: {exc}") from None
    phases = _read_phases(top, servers)
    top.done()
    return Scenario(
        name,
        summary.strip(),
        top.path,
        options,
        phases,
        length.duration_ms or 0,
        length.steps,
        length.max_steps,
        live.check,
        live.heal,
        failure,
        frozenset(raft.data),
    )


def _read_raft(raft: Table) -> NodeOptions:
    defaults = NodeOptions()
    node = NodeOptions(
        election_timeout_ms=raft.whole(
            "election_timeout_ms", minimum=2, unit="ms", default=defaults.election_timeout_ms
        ),
        request_timeout_ms=raft.whole(
            "request_timeout_ms", minimum=1, unit="ms", default=defaults.request_timeout_ms
        ),
        prevote=raft.flag("prevote", defaults.prevote),
        check_quorum=raft.flag("check_quorum", defaults.check_quorum),
        noop_on_election=raft.flag("noop_on_election", defaults.noop_on_election),
        max_entries_per_msg=raft.whole(
            "max_entries_per_msg", minimum=1, default=defaults.max_entries_per_msg
        ),
    )
    if not node.heartbeat_beats_election():
        raft.fail(
            "request_timeout_ms",
            f"less than election_timeout_ms ({node.election_timeout_ms})",
            node.request_timeout_ms,
        )
    raft.done()
    return node


def _read_faults(faults: Table) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in _FAULT_RATES:
        values[key] = faults.get(
            key,
            "a probability in [0, 1]",
            lambda v: type(v) in (int, float) and 0.0 <= v <= 1.0,
            getattr(_CALM, key),
        )
    for key in _FAULT_TIMES:
        values[key] = faults.whole(key, unit="ms", default=getattr(_CALM, key))
    values["reorder"] = faults.flag("reorder", _CALM.reorder)
    faults.done()
    return values


def _read_run(run: Table) -> _RunLength:
    duration_ms = run.whole("duration_ms", unit="ms", default=None)
    steps = run.whole("steps", minimum=1, default=None, maximum=MAX_SCENARIO_STEPS)
    max_steps = run.whole(
        "max_steps", minimum=1, default=DEFAULT_MAX_STEPS, maximum=MAX_SCENARIO_STEPS
    )
    if duration_ms is None and steps is None:
        run.fail("duration_ms", "duration_ms (virtual ms) or steps to say how long to run")
    run.done()
    return _RunLength(duration_ms, steps, max_steps)


def _read_liveness(live: Table, failure: str | None) -> _LivenessPhase:
    phase = _LivenessPhase(
        check=live.flag("check", True),
        heal=live.flag("heal", True),
        stable_ms=live.whole("stable_ms", unit="ms", default=1_000),
        bound_ms=live.whole("bound_ms", minimum=1, unit="ms", default=10_000),
    )
    live.done()
    if failure == "liveness" and not phase.check:
        live.fail("check", 'true when expect_failure is "liveness"', False)
    return phase


def _read_phases(top: Table, servers: int) -> tuple[Phase, ...]:
    """Every [[phases]] table, in file order; their times must not go down."""
    phase_list = top.get(
        "phases",
        "an array of [[phases]] tables",
        lambda v: isinstance(v, list) and all(isinstance(p, dict) for p in v),
        [],
    )
    labels: set[str] = set()
    phases = []
    last: dict[str, int] = {}
    for number, data in enumerate(phase_list, start=1):
        phase = _read_phase(PhaseTable(top.path, number, data, servers, labels), number)
        unit, when = (
            ("at_ms", phase.at_ms) if phase.at_ms is not None else ("at_step", phase.at_step)
        )
        assert when is not None
        if when < last.get(unit, 0):
            raise ScenarioError(
                f"{top.path}: phases[{number}].{unit}: expected {unit} >= {last[unit]} (phases "
                f"run in file order), got {when}"
            )
        last[unit] = when
        phases.append(phase)
    return tuple(phases)


def _read_phase(t: PhaseTable, number: int) -> Phase:
    """One phase: when, its action's fields, a label, its expectation's fields."""
    if t.has("at_ms") and t.has("at_step"):
        raise ScenarioError(
            f"{t.path}: {t.field('at_step')}: expected exactly one of at_ms or at_step, got both"
        )
    if not t.has("at_ms") and not t.has("at_step"):
        t.fail("at_ms", "at_ms (virtual ms) or at_step: when the phase happens")
    at_ms = t.whole("at_ms", unit="ms", default=None)
    at_step = t.whole("at_step", default=None, maximum=MAX_SCENARIO_STEPS)
    action_name = t.choice("action", ACTIONS, None)
    expect_name = t.choice("expect", EXPECTS, None)
    if action_name is None and expect_name is None:
        t.fail("action", f"an action ({', '.join(ACTIONS)}) or an expect")
    wait_ms = t.whole("wait_ms", minimum=1, unit="ms", default=DEFAULT_WAIT_MS)
    action = ACTIONS[action_name].read(t) if action_name is not None else None
    label = _read_label(t, action)
    expect = None
    if expect_name is not None:
        expect = EXPECTS[expect_name].read(t, action.named if action is not None else None)
        if action is not None:
            action.check_expect(t, expect_name)
    t.done()
    return Phase(number, at_ms, at_step, action, label, wait_ms, expect)


def _read_label(t: PhaseTable, action: Action | None) -> str | None:
    """A name for the one node the phase picks, for later phases (and its own
    expectation) to use."""
    if not t.has("label"):
        return None
    if action is None or not action.may_label():
        t.fail("label", "a label only on a phase that names one node", t.data["label"])
    label = t.get(
        "label",
        "a label like S1 (letters, digits, _), not leader or follower",
        lambda v: isinstance(v, str) and bool(_LABEL.match(v)) and v not in ROLES and v != "all",
    )
    t.labels.add(label)  # from here on, and for this phase's own expectation
    return label


# ------------------------------------------------------------ the shipped set


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(SCENARIO_DIR.parent))
    except ValueError:
        return str(path)


def _shipped() -> dict[str, Path]:
    if not SCENARIO_DIR.is_dir():
        raise ScenarioError(f"no scenarios directory at {SCENARIO_DIR}")
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.toml"))}


def _load_shipped(path: Path) -> Scenario:
    scenario = read_scenario(path, _display(path))
    if scenario.name != path.stem:
        raise ScenarioError(
            f"{_display(path)}: name: expected {path.stem!r} (the file's name), "
            f"got {scenario.name!r}"
        )
    return scenario


def list_scenarios() -> list[ScenarioInfo]:
    """Every shipped scenario, sorted by name (a malformed file is an error)."""
    infos = []
    for path in _shipped().values():
        s = _load_shipped(path)
        infos.append(ScenarioInfo(s.name, s.summary, s.expects, s.path))
    return sorted(infos, key=lambda info: info.name)


def load_scenario(name_or_path: str) -> Scenario:
    """A shipped scenario by name, or any .toml file by path."""
    if name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path:
        return read_scenario(name_or_path)
    shipped = _shipped()
    path = shipped.get(name_or_path)
    if path is None:
        raise ScenarioError(
            f"unknown scenario {name_or_path!r}; known: {', '.join(sorted(shipped)) or 'none'}"
        )
    return _load_shipped(path)
