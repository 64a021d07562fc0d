"""Named scenarios: scripted faults in TOML, with what must follow stated
next to each step (etcd's testdata files and CCF's raft_scenarios do the same).

A scenario file names a cluster, raft options, background fault rates and a
list of phases. Each phase happens at a virtual time (or step), does one
thing (partition, heal, crash, restart, add or remove a member, snapshot,
send client commands) and may state what must follow: a leader within N ms,
a commit within N ms, no leader change. Scripted actions become ordinary
simulator events, so a run, scripted and background, is one event list that
`virtraft replay` replays. After the script a liveness phase asks for a
leader and a commit within a bound, reported apart from safety.

The file format is documented in scenarios/README.md; every field is checked
when the file is read, and a bad one is reported as one line naming the
file, the field and what was expected.
"""

from __future__ import annotations

import random
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from virtraft.adapter import MembershipChange, NodeAdapter, NodeOptions, Role, Submitted
from virtraft.checker import INVARIANTS, Checker, Violation
from virtraft.events import (
    ChangeMembership,
    ClientRequest,
    Crash,
    Deliver,
    Event,
    Heal,
    Partition,
    Restart,
    TakeSnapshot,
)
from virtraft.options import OptionsError, SimOptions
from virtraft.runner import (
    DEFAULT_FACTORY,
    CalmRun,
    Liveness,
    RunResult,
    calm_options,
    liveness_phase,
    load_factory,
)
from virtraft.scheduler import Scheduler
from virtraft.simulator import NotApplicable, Simulation
from virtraft.trace import trace_lines

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"

ACTIONS = ("partition", "flap", "heal", "crash", "restart", "add_member", "remove_member",
           "snapshot", "client")
EXPECTS = ("leader_within", "new_leader_within", "commit_within", "no_leader_change",
           "no_leader", "node_caught_up")
SHAPES = ("groups", "isolate", "bridge", "one_way", "cut", "clog")
ROLES = ("leader", "follower")
# What `expect_failure` may name: the liveness verdict, an expectation, or a
# safety invariant (NodeException: the server under test raised).
FAILURES = ("liveness", "expectation", *INVARIANTS, "NodeException")

# A scripted request that the cluster refuses (no leader yet, one membership
# change at a time) is retried at most this often, in virtual ms.
RETRY_MS = 100
DEFAULT_WAIT_MS = 10_000
DEFAULT_MAX_STEPS = 1_000_000
# What a scenario may ask for at most, so that a typo cannot run it out of
# memory or time: any time (ten minutes of virtual time), any number of
# steps (the default hard stop), and commands or flaps in one phase.
MAX_SCENARIO_MS = 600_000
MAX_SCENARIO_STEPS = DEFAULT_MAX_STEPS
MAX_PHASE_REPEATS = 1_000
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

Ref = int | str
"""A node named in a phase: an id, "leader", "follower", or a label."""


class ScenarioError(ValueError):
    """A scenario cannot be read: one line naming the file, field and expectation."""


@dataclass(frozen=True, slots=True)
class ScenarioInfo:
    name: str
    summary: str
    expects: str  # "pass", "liveness fails", "ElectionSafety violated", ...
    path: str


@dataclass(frozen=True, slots=True)
class Shape:
    """A partition as the file states it; node references resolve when it happens."""

    kind: str  # one of SHAPES
    nodes: tuple[Ref, ...] = ()  # isolate/bridge: one; one_way/cut/clog: two
    groups: tuple[tuple[Ref, ...], ...] = ()

    def describe(self) -> str:
        if self.kind == "groups":
            return "groups " + " | ".join(",".join(map(str, g)) for g in self.groups)
        if self.kind in ("isolate", "bridge"):
            return f"{self.kind} {self.nodes[0]}"
        arrow = "->" if self.kind == "one_way" else "<->"
        return f"{self.kind} {self.nodes[0]}{arrow}{self.nodes[1]}"


@dataclass(frozen=True, slots=True)
class Expect:
    """What must follow a phase, checked after every step from the phase on."""

    kind: str  # one of EXPECTS
    within_ms: int | None = None
    for_ms: int | None = None  # None: until the next phase starts (or the script ends)
    among: tuple[Ref, ...] = ()
    node: Ref | None = None
    via_snapshot: bool = False

    def describe(self) -> str:
        window = f"for {self.for_ms} ms" if self.for_ms is not None else "until the next phase"
        if self.kind in ("leader_within", "new_leader_within"):
            among = f" among {', '.join(map(str, self.among))}" if self.among else ""
            new = " new" if self.kind == "new_leader_within" else ""
            return f"a{new} leader{among} within {self.within_ms} ms"
        if self.kind == "commit_within":
            return f"a new command commits within {self.within_ms} ms"
        if self.kind == "no_leader_change":
            return f"the leader stays the same {window}"
        if self.kind == "no_leader":
            return f"no node is leader {window}"
        how = " by InstallSnapshot" if self.via_snapshot else ""
        return f"node {self.node} catches up{how} within {self.within_ms} ms"


@dataclass(frozen=True, slots=True)
class Phase:
    number: int  # 1-based position in the file's [[phases]]
    at_ms: int | None
    at_step: int | None
    action: str | None
    shape: Shape | None = None
    nodes: tuple[Ref, ...] | str = ()  # a tuple of references, or "all"
    count: int = 0
    flush: bool = False
    promote: bool = True
    times: int = 0
    down_ms: int = 0
    up_ms: int = 0
    label: str | None = None
    wait_ms: int = DEFAULT_WAIT_MS
    expect: Expect | None = None

    def when(self) -> str:
        return f"{self.at_ms} ms" if self.at_ms is not None else f"step {self.at_step}"

    def describe(self) -> str:
        head = f"phase {self.number} at {self.when()}"
        action = self.action
        if action is None:
            return head
        if action == "partition":
            assert self.shape is not None
            what = f"partition {self.shape.describe()}"
        elif action == "flap":
            assert self.shape is not None
            what = (f"flap {self.shape.describe()} {self.times}x "
                    f"({self.down_ms} ms down, {self.up_ms} ms up)")
        elif action == "heal":
            what = "heal" + (" and flush" if self.flush else "")
        elif action == "client":
            what = f"{self.count} client command{'s' if self.count != 1 else ''}"
        elif action == "add_member":
            what = "add a member" + ("" if self.promote else " (non-voting)")
        else:
            nodes = self.nodes if isinstance(self.nodes, str) else ",".join(map(str, self.nodes))
            what = f"{action.replace('_', ' ')} {nodes}"
        return f"{head}: {what}"


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

    @property
    def expects(self) -> str:
        return _expects_text(self.expect_failure)


def _expects_text(failure: str | None) -> str:
    if failure is None:
        return "pass"
    if failure == "liveness":
        return "liveness fails"
    if failure == "expectation":
        return "an expectation fails"
    return f"{failure} violated"


# ------------------------------------------------------------------ reading


_MISSING: Any = object()


class _Table:
    """One TOML table being read. Every read names its field in errors, and
    `done()` refuses keys nobody read: a typo must not pass silently."""

    def __init__(self, path: str, where: str, data: dict[str, Any]) -> None:
        self.path = path
        self.where = where
        self.data = data
        self.read: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, expected: str, value: Any = _MISSING) -> NoReturn:
        got = "it is missing" if value is _MISSING else f"got {value!r}"
        raise ScenarioError(f"{self.path}: {self.field(key)}: expected {expected}, {got}")

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, expected: str, check: Callable[[Any], bool],
            default: Any = _MISSING) -> Any:
        self.read.add(key)
        if key not in self.data:
            if default is _MISSING:
                self.fail(key, expected)
            return default
        value = self.data[key]
        if not check(value):
            self.fail(key, expected, value)
        return value

    def whole(self, key: str, *, minimum: int = 0, unit: str = "", default: Any = _MISSING,
              maximum: int | None = None) -> Any:
        what = f"a whole number{' of ' + unit if unit else ''} >= {minimum}"
        value = self.get(key, what, lambda v: type(v) is int and v >= minimum, default)
        if maximum is None and unit == "ms":
            maximum = MAX_SCENARIO_MS
        if maximum is not None and type(value) is int and value > maximum:
            self.fail(key, f"at most {maximum}{' ' + unit if unit else ''}", value)
        return value

    def flag(self, key: str, default: bool) -> bool:
        return self.get(key, "true or false", lambda v: type(v) is bool, default)

    def text(self, key: str, default: Any = _MISSING) -> Any:
        return self.get(key, "a string", lambda v: isinstance(v, str), default)

    def table(self, key: str) -> _Table:
        value = self.get(key, "a table", lambda v: isinstance(v, dict), {})
        return _Table(self.path, self.field(key), value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            allowed = ", ".join(sorted(self.read))
            raise ScenarioError(
                f"{self.path}: {self.field(unknown[0])}: unknown key; expected one of: {allowed}"
            )


_NODE_OPTIONS = ("election_timeout_ms", "request_timeout_ms", "prevote", "check_quorum",
                 "noop_on_election", "max_entries_per_msg")
_FAULT_RATES = ("drop_probability", "duplicate_probability", "partition_rate", "crash_rate",
                "client_rate", "member_rate", "snapshot_rate", "deliver_share")
_FAULT_TIMES = ("delay_ms_min", "delay_ms_max", "tick_ms_min", "tick_ms_max")
# Scenarios are calm unless they say otherwise: a light client load, no faults.
_CALM = SimOptions(client_rate=0.05)


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
    return _parse(_Table(shown, "", raw))


def _parse(top: _Table) -> Scenario:
    path = top.path
    name = top.get("name", "a lowercase name like leader_isolated",
                   lambda v: isinstance(v, str) and bool(_NAME.match(v)))
    summary = top.get("summary", "a one-line summary",
                      lambda v: isinstance(v, str) and bool(v.strip()) and "\n" not in v)
    failure = top.get("expect_failure", f"one of: {', '.join(FAILURES)}",
                      lambda v: v in FAILURES, None)

    cluster = top.table("cluster")
    servers = cluster.get("servers", "a whole number of servers in 1..64",
                          lambda v: type(v) is int and 1 <= v <= 64, 5)
    max_servers = cluster.whole("max_servers", minimum=servers, default=max(9, servers))
    min_voters = cluster.whole("min_voters", minimum=1, default=3)
    cluster.done()

    raft = top.table("raft")
    defaults = NodeOptions()
    node = NodeOptions(
        election_timeout_ms=raft.whole("election_timeout_ms", minimum=2, unit="ms",
                                       default=defaults.election_timeout_ms),
        request_timeout_ms=raft.whole("request_timeout_ms", minimum=1, unit="ms",
                                      default=defaults.request_timeout_ms),
        prevote=raft.flag("prevote", defaults.prevote),
        check_quorum=raft.flag("check_quorum", defaults.check_quorum),
        noop_on_election=raft.flag("noop_on_election", defaults.noop_on_election),
        max_entries_per_msg=raft.whole("max_entries_per_msg", minimum=1,
                                       default=defaults.max_entries_per_msg),
    )
    if node.request_timeout_ms >= node.election_timeout_ms:
        raft.fail("request_timeout_ms",
                  f"less than election_timeout_ms ({node.election_timeout_ms})",
                  node.request_timeout_ms)
    raft.done()

    faults = top.table("faults")
    fault_values: dict[str, Any] = {}
    for key in _FAULT_RATES:
        fault_values[key] = faults.get(
            key, "a probability in [0, 1]",
            lambda v: type(v) in (int, float) and 0.0 <= v <= 1.0, getattr(_CALM, key))
    for key in _FAULT_TIMES:
        fault_values[key] = faults.whole(key, unit="ms", default=getattr(_CALM, key))
    fault_values["reorder"] = faults.flag("reorder", _CALM.reorder)
    faults.done()

    run = top.table("run")
    duration_ms = run.whole("duration_ms", unit="ms", default=None)
    steps = run.whole("steps", minimum=1, default=None, maximum=MAX_SCENARIO_STEPS)
    max_steps = run.whole("max_steps", minimum=1, default=DEFAULT_MAX_STEPS,
                          maximum=MAX_SCENARIO_STEPS)
    if duration_ms is None and steps is None:
        run.fail("duration_ms", "duration_ms (virtual ms) or steps to say how long to run")
    run.done()

    live = top.table("liveness")
    check_liveness = live.flag("check", True)
    heal = live.flag("heal", True)
    stable_ms = live.whole("stable_ms", unit="ms", default=1_000)
    bound_ms = live.whole("bound_ms", minimum=1, unit="ms", default=10_000)
    live.done()
    if failure == "liveness" and not check_liveness:
        live.fail("check", "true when expect_failure is \"liveness\"", False)

    try:
        options = _CALM.replace(
            servers=servers, steps=steps or 0, max_servers=max_servers, min_voters=min_voters,
            liveness=check_liveness, liveness_stable_ms=stable_ms, liveness_bound_ms=bound_ms,
            node=node, **fault_values,
        )
    except OptionsError as exc:
        raise ScenarioError(f"{path}: faults: {exc}") from None

    phase_list = top.get("phases", "an array of [[phases]] tables",
                         lambda v: isinstance(v, list) and all(isinstance(p, dict) for p in v),
                         [])
    labels: set[str] = set()
    phases = []
    last: dict[str, int] = {}
    for number, data in enumerate(phase_list, start=1):
        phase = _parse_phase(_Table(path, f"phases[{number}]", data), number, servers, labels)
        unit, when = ("at_ms", phase.at_ms) if phase.at_ms is not None else (
            "at_step", phase.at_step)
        assert when is not None
        if when < last.get(unit, 0):
            raise ScenarioError(
                f"{path}: phases[{number}].{unit}: expected {unit} >= {last[unit]} (phases run "
                f"in file order), got {when}"
            )
        last[unit] = when
        phases.append(phase)
    top.done()
    return Scenario(name, summary.strip(), path, options, tuple(phases), duration_ms or 0, steps,
                    max_steps, check_liveness, heal, failure)


def _parse_phase(t: _Table, number: int, servers: int, labels: set[str]) -> Phase:
    ref_text = (f"a node id 1..{servers}, \"leader\", \"follower\" or a label set by an "
                f"earlier phase")

    def is_ref(v: Any) -> bool:
        if type(v) is int:
            return 1 <= v <= servers
        return isinstance(v, str) and (v in ROLES or v in labels)

    def ref(key: str) -> Ref:
        return t.get(key, ref_text, is_ref)

    def refs(key: str, *, exactly: int | None = None, default: Any = _MISSING) -> Any:
        size = f"a list of {exactly} node references" if exactly else "a list of node references"
        return t.get(key, f"{size} ({ref_text})",
                     lambda v: isinstance(v, list) and bool(v) and all(map(is_ref, v))
                     and (exactly is None or len(v) == exactly), default)

    if t.has("at_ms") and t.has("at_step"):
        raise ScenarioError(f"{t.path}: {t.field('at_step')}: expected exactly one of at_ms "
                            f"or at_step, got both")
    if not t.has("at_ms") and not t.has("at_step"):
        t.fail("at_ms", "at_ms (virtual ms) or at_step: when the phase happens")
    at_ms = t.whole("at_ms", unit="ms", default=None)
    at_step = t.whole("at_step", default=None, maximum=MAX_SCENARIO_STEPS)
    action = t.get("action", f"one of: {', '.join(ACTIONS)}", lambda v: v in ACTIONS, None)
    expect_kind = t.get("expect", f"one of: {', '.join(EXPECTS)}", lambda v: v in EXPECTS, None)
    if action is None and expect_kind is None:
        t.fail("action", f"an action ({', '.join(ACTIONS)}) or an expect")
    wait_ms = t.whole("wait_ms", minimum=1, unit="ms", default=DEFAULT_WAIT_MS)

    kw: dict[str, Any] = {}
    single: Ref | None = None  # the one node a label can name
    if action in ("partition", "flap"):
        given = [key for key in SHAPES if t.has(key)]
        shapes = f"exactly one partition shape ({', '.join(SHAPES)})"
        if not given:
            raise ScenarioError(f"{t.path}: {t.where}: expected {shapes}, got none")
        if len(given) > 1:
            raise ScenarioError(f"{t.path}: {t.field(given[1])}: expected {shapes}, got "
                                f"{' and '.join(given)}")
        kind = given[0]
        if kind == "groups":
            groups = t.get("groups", f"a list of at least two lists of nodes ({ref_text})",
                           lambda v: isinstance(v, list) and len(v) >= 2 and all(
                               isinstance(g, list) and g and all(map(is_ref, g)) for g in v))
            kw["shape"] = Shape("groups", groups=tuple(tuple(g) for g in groups))
        elif kind in ("isolate", "bridge"):
            single = ref(kind)
            kw["shape"] = Shape(kind, (single,))
        else:
            kw["shape"] = Shape(kind, tuple(refs(kind, exactly=2)))
        if action == "flap":
            if at_ms is None:
                t.fail("at_ms", "at_ms: a flap is timed in virtual ms")
            kw["times"] = t.whole("times", minimum=1, maximum=MAX_PHASE_REPEATS)
            kw["down_ms"] = t.whole("down_ms", minimum=1, unit="ms")
            kw["up_ms"] = t.whole("up_ms", minimum=1, unit="ms")
            single = None
    elif action == "heal":
        kw["flush"] = t.flag("flush", False)
    elif action in ("crash", "restart", "snapshot", "remove_member"):
        if action != "remove_member" and t.has("nodes"):
            if t.has("node"):
                t.fail("nodes", "node or nodes, not both", t.data["nodes"])
            nodes = t.data["nodes"]
            kw["nodes"] = "all" if nodes == "all" else tuple(refs("nodes"))
            t.read.add("nodes")
        else:
            single = ref("node")
            kw["nodes"] = (single,)
    elif action == "add_member":
        kw["promote"] = t.flag("promote", True)
    elif action == "client":
        kw["count"] = t.whole("count", minimum=1, default=1, maximum=MAX_PHASE_REPEATS)

    label = None
    if t.has("label"):
        if action != "add_member" and single is None:
            t.fail("label", "a label only on a phase that names one node", t.data["label"])
        label = t.get("label", "a label like S1 (letters, digits, _), not leader or follower",
                      lambda v: isinstance(v, str) and bool(_LABEL.match(v))
                      and v not in ROLES and v != "all")
        labels.add(label)  # from here on, and for this phase's own expectation

    expect = None
    if expect_kind is not None:
        ekw: dict[str, Any] = {}
        if expect_kind in ("leader_within", "new_leader_within", "commit_within",
                           "node_caught_up"):
            ekw["within_ms"] = t.whole("within_ms", minimum=1, unit="ms")
        else:
            ekw["for_ms"] = t.whole("for_ms", minimum=1, unit="ms", default=None)
        if expect_kind in ("leader_within", "new_leader_within"):
            ekw["among"] = tuple(refs("among", default=()))
        if expect_kind == "node_caught_up":
            # The action's own node (restart 4: 4 catches up), else a `node` of its own.
            acted_on = "node" in t.read and single is not None
            ekw["node"] = single if acted_on else ref("node")
            ekw["via_snapshot"] = t.flag("via_snapshot", False)
        if action == "flap" and expect_kind not in ("no_leader_change", "no_leader"):
            t.fail("expect", "no_leader_change or no_leader on a flap (they cover the "
                   "flapping); put a deadline in the phase after it", expect_kind)
        expect = Expect(expect_kind, **ekw)
    t.done()
    return Phase(number, at_ms, at_step, action, label=label, wait_ms=wait_ms, expect=expect,
                 **kw)


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


# ------------------------------------------------------------------ running


@dataclass(frozen=True, slots=True)
class ExpectationOutcome:
    description: str
    passed: bool
    detail: str


def leader_of(sim: Simulation) -> NodeAdapter | None:
    """The leader a client would find: the live leader with the highest term,
    if it is a voter of its own configuration (as the liveness phase asks)."""
    leader = sim.leader()
    if leader is None or (leader.node_id, True) not in leader.members:
        return None
    return leader


def _roles(sim: Simulation) -> str:
    """The cluster at a glance, for failure details: 1:L3 2:F3 3:down."""
    parts = []
    for node_id in sim.node_ids:
        node = sim.nodes[node_id]
        role = node.role.value[0].upper() if node.alive else "down"
        parts.append(f"{node_id}:{role}{node.term if node.alive else ''}")
    return " ".join(parts)


class _Wait(Exception):
    """A phase cannot happen yet (no leader, a change refused); it is retried."""


class _Check:
    """One stated expectation, watched after every step once its phase ran."""

    def __init__(self, phase: Phase, expect: Expect, sim: Simulation) -> None:
        self.phase = phase
        self.expect = expect
        self.sim = sim
        self.opened_ms = sim.clock_ms
        self.deadline_ms = (self.opened_ms + expect.within_ms if expect.within_ms is not None
                            else None)
        self.ends_ms = self.opened_ms + expect.for_ms if expect.for_ms is not None else None
        self.result: ExpectationOutcome | None = None

    @property
    def description(self) -> str:
        return f"{self.phase.describe()}: {self.expect.describe()}"

    @property
    def holds_run_open(self) -> bool:
        return self.result is None and (self.deadline_ms is not None or self.ends_ms is not None)

    def settle(self, passed: bool, detail: str) -> None:
        if self.result is None:
            self.result = ExpectationOutcome(self.description, passed, detail)

    def event(self) -> Event | None:
        """An event this check needs applied now (a client command), if any."""
        return None

    def observe(self) -> None:
        raise NotImplementedError

    def window_closed(self, why: str) -> None:
        """The window of a check without a deadline ended (next phase, end of script)."""
        if self.result is None and self.deadline_ms is None and self.ends_ms is None:
            self.settle(True, f"held from {self.opened_ms} ms until {why} at "
                        f"{self.sim.clock_ms} ms")

    def finish(self, why: str) -> None:
        if self.result is None:
            self.settle(False, f"undecided when {why} at {self.sim.clock_ms} ms "
                        f"({_roles(self.sim)})")

    def _timed_out(self, what: str) -> bool:
        if self.deadline_ms is not None and self.sim.clock_ms > self.deadline_ms:
            self.settle(False, f"{what} by {self.deadline_ms} ms ({_roles(self.sim)})")
            return True
        return False


class _LeaderWithin(_Check):
    """A leader (among some nodes; with `before`, not the leader from before
    the phase) must appear by the deadline."""

    def __init__(self, phase: Phase, expect: Expect, sim: Simulation,
                 among: tuple[int, ...], before: tuple[int, int] | None = None) -> None:
        super().__init__(phase, expect, sim)
        self.among = among
        self.before = before

    def observe(self) -> None:
        leader = leader_of(self.sim)
        if (leader is not None and (not self.among or leader.node_id in self.among)
                and (leader.node_id, leader.term) != self.before):
            self.settle(True, f"leader {leader.node_id} (term {leader.term}) at "
                        f"{self.sim.clock_ms} ms, {self.sim.clock_ms - self.opened_ms} ms after")
            return
        among = f" among {', '.join(map(str, self.among))}" if self.among else ""
        new = " other than the one before" if self.before else ""
        self._timed_out(f"no leader{among}{new}")


class _CommitWithin(_Check):
    """Submits a command to the leader (again, if that leader is lost) and
    passes once one of them is committed."""

    def __init__(self, phase: Phase, expect: Expect, sim: Simulation) -> None:
        super().__init__(phase, expect, sim)
        self.submitted: list[tuple[int, int, Submitted]] = []  # (command, node, where)
        self.last_try_ms: int | None = None

    def event(self) -> Event | None:
        sim = self.sim
        if self.result is not None:
            return None
        leader = leader_of(sim)
        if leader is None or any(
            node == leader.node_id and leader.is_committed(where) is not False
            for _command, node, where in self.submitted
        ):
            return None
        if self.last_try_ms is not None and sim.clock_ms - self.last_try_ms < RETRY_MS:
            return None
        self.last_try_ms = sim.clock_ms
        return ClientRequest(leader.node_id, sim.next_command_id, "scenario", sim.next_command_id)

    def applied(self, event: ClientRequest) -> None:
        last = self.sim.last_submitted
        if last is not None and last[0] == event.command:
            self.submitted.append(last)

    def observe(self) -> None:
        sim = self.sim
        for command, node_id, where in self.submitted:
            node = sim.nodes.get(node_id)
            if node is not None and node.alive and node.is_committed(where) is True:
                self.settle(True, f"command {command} committed at index {where.index} at "
                            f"{sim.clock_ms} ms, {sim.clock_ms - self.opened_ms} ms after")
                return
        self._timed_out(f"none of {len(self.submitted)} submitted commands committed")


class _NoLeaderChange(_Check):
    def __init__(self, phase: Phase, expect: Expect, sim: Simulation) -> None:
        super().__init__(phase, expect, sim)
        leader = leader_of(sim)
        self.leader = (leader.node_id, leader.term) if leader is not None else None
        if self.leader is None:
            self.settle(False, f"there was no leader at {sim.clock_ms} ms ({_roles(sim)})")

    def observe(self) -> None:
        sim = self.sim
        assert self.leader is not None  # a check without a leader settled at once
        if self.ends_ms is not None and sim.clock_ms > self.ends_ms:
            self.settle(True, f"leader {self.leader[0]} (term {self.leader[1]}) held from "
                        f"{self.opened_ms} to {self.ends_ms} ms")
            return
        leader = leader_of(sim)
        now = (leader.node_id, leader.term) if leader is not None else None
        if now != self.leader:
            became = f"leader {now[0]} (term {now[1]})" if now else "no leader"
            self.settle(False, f"leader {self.leader[0]} (term {self.leader[1]}) gave way to "
                        f"{became} at {sim.clock_ms} ms ({_roles(sim)})")


class _NoLeader(_Check):
    def observe(self) -> None:
        sim = self.sim
        if self.ends_ms is not None and sim.clock_ms > self.ends_ms:
            self.settle(True, f"no leader from {self.opened_ms} to {self.ends_ms} ms")
            return
        for node_id in sim.node_ids:
            node = sim.nodes[node_id]
            if node.alive and node.role is Role.LEADER:
                self.settle(False, f"node {node_id} became leader (term {node.term}) at "
                            f"{sim.clock_ms} ms ({_roles(sim)})")
                return


class _NodeCaughtUp(_Check):
    """The node's commit index reaches the highest one in the cluster when the
    phase ran; with via_snapshot it must also have received an InstallSnapshot."""

    def __init__(self, phase: Phase, expect: Expect, sim: Simulation, node_id: int) -> None:
        super().__init__(phase, expect, sim)
        self.node_id = node_id
        self.target = max((n.commit_index for n in sim.views() if n.alive), default=0)
        self.snapshots_received = 0

    def observe(self) -> None:
        sim = self.sim
        last = sim.events[-1] if sim.events else None
        if (isinstance(last, Deliver) and last.dst == self.node_id
                and last.msg == "InstallSnapshot"):
            self.snapshots_received += 1
        node = sim.nodes.get(self.node_id)
        ready = node is not None and node.alive and node.commit_index >= self.target
        if ready and (self.snapshots_received or not self.expect.via_snapshot):
            assert node is not None
            self.settle(True, f"node {self.node_id} reached commit index {node.commit_index} "
                        f"(>= {self.target}) at {sim.clock_ms} ms; "
                        f"{self.snapshots_received} InstallSnapshot messages received")
            return
        have = node.commit_index if node is not None and node.alive else "down"
        self._timed_out(f"node {self.node_id} at commit index {have} of {self.target}, "
                        f"{self.snapshots_received} InstallSnapshot messages received,")


class _Script:
    """Runs the phases in file order, each when its time has come and the one
    before it is done; keeps the open checks up to date."""

    def __init__(self, scenario: Scenario, sim: Simulation) -> None:
        self.scenario = scenario
        self.sim = sim
        self.labels: dict[str, int] = {}
        self.next = 0  # index of the next phase to run
        self.due_since_ms: int | None = None
        self.last_try_ms: int | None = None
        self.flap: _Flap | None = None
        self.checks: list[_Check] = []
        self.phase_failures: list[ExpectationOutcome] = []
        self.blocked = False
        self.promotions: dict[int, int | None] = {}  # joining node -> last attempt ms
        self.violation: Violation | None = None

    # ---- the loop's view

    def finished(self) -> bool:
        s, sim = self.scenario, self.sim
        return (
            (self.blocked or (self.next >= len(s.phases) and self.flap is None))
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
                    assert isinstance(check, _CommitWithin) and isinstance(event, ClientRequest)
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

    def outcomes(self, why: str) -> list[ExpectationOutcome]:
        for check in self.checks:
            check.window_closed("the script ended")
            check.finish(why)
        results = [check.result for check in self.checks if check.result is not None]
        return results + self.phase_failures

    # ---- events

    def apply(self, event: Event) -> None:
        """Apply one scripted event (raises NotApplicable, or _Violated)."""
        violation = self.sim.apply(event)
        self.observe()  # the state a violation leaves is still a state to judge
        if violation is not None:
            self.violation = violation
            raise _Violated

    # ---- phases

    def _phases(self) -> None:
        while not self.blocked:
            if self.flap is not None:
                if not self.flap.step(self):
                    return
                self.flap = None
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
            except _Wait as wait:
                if sim.clock_ms - self.due_since_ms >= phase.wait_ms:
                    self._fail_phase(phase, f"could not happen within {phase.wait_ms} ms: {wait}")
                return
            except NotApplicable as exc:
                self._fail_phase(phase, f"could not happen: {exc}")
                return
            self.next += 1
            self.due_since_ms = None
            self.last_try_ms = None

    def _due(self, phase: Phase) -> bool:
        if phase.at_ms is not None:
            return self.sim.clock_ms >= phase.at_ms
        assert phase.at_step is not None
        return self.sim.step >= phase.at_step

    def _fail_phase(self, phase: Phase, why: str) -> None:
        self.blocked = True
        later = len(self.scenario.phases) - phase.number
        rest = f"; the {later} phases after it did not run" if later else ""
        self.phase_failures.append(ExpectationOutcome(
            phase.describe(), False, f"{why} ({_roles(self.sim)}){rest}"))

    def _run(self, phase: Phase) -> None:
        """Carry out one phase: resolve its nodes, apply its events, then open
        its check. Raises _Wait (to be retried) when it cannot happen yet."""
        sim = self.sim
        leader = leader_of(sim)
        before = (leader.node_id, leader.term) if leader is not None else None
        events, bound = self._plan(phase)
        # The phase's own label may be used by its expectation.
        if phase.label is not None and bound is not None:
            self.labels[phase.label] = bound
        try:
            expect = phase.expect
            node = None
            among: tuple[int, ...] = ()
            if expect is not None:
                node = self._resolve(expect.node) if expect.node is not None else None
                among = tuple(self._resolve(r) for r in expect.among)
        except _Wait:
            if phase.label is not None:
                self.labels.pop(phase.label, None)
            raise
        # Nothing waits from here on, except a refused membership change.
        for check in self.checks:
            check.window_closed(f"phase {phase.number}")
        accepted = sim.stats.membership_changes
        for event in events:
            self.apply(event)
        change = events[-1] if events else None
        if isinstance(change, ChangeMembership):
            if sim.stats.membership_changes == accepted:
                raise _Wait(f"leader {change.via} refused {change.change.value} {change.node}")
            if change.change is MembershipChange.ADD_NONVOTING and phase.promote:
                self.promotions[change.node] = None
        if phase.action == "flap":
            assert isinstance(events[0], Partition)
            self.flap = _Flap(phase, events[0])
        if expect is not None:
            self.checks.append(self._check(phase, expect, among, node, before))
            self.checks[-1].observe()

    def _plan(self, phase: Phase) -> tuple[list[Event], int | None]:
        """The events a phase applies, and the one node it names (for a label)."""
        sim = self.sim
        action = phase.action
        if action in ("partition", "flap"):
            assert phase.shape is not None
            partition, bound = self._partition(phase.shape)
            return [partition], bound
        if action == "heal":
            return [Heal(flush=phase.flush)], None
        if action in ("crash", "restart", "snapshot"):
            nodes = self._nodes(phase.nodes, action)
            make = {"crash": Crash, "restart": Restart, "snapshot": TakeSnapshot}[action]
            return [make(n) for n in nodes], nodes[0] if len(nodes) == 1 else None
        if action == "client":
            leader = leader_of(sim)
            target = leader.node_id if leader is not None else (
                sim.client_leader_guess or sim.node_ids[0])
            first = sim.next_command_id
            return [ClientRequest(target, c, f"k{c % 8}", c)
                    for c in range(first, first + phase.count)], None
        if action in ("add_member", "remove_member"):
            event = self._membership(phase)
            return [event], event.node
        return [], None

    def _check(self, phase: Phase, expect: Expect, among: tuple[int, ...],
               node: int | None, before: tuple[int, int] | None) -> _Check:
        sim = self.sim
        if expect.kind == "leader_within":
            return _LeaderWithin(phase, expect, sim, among)
        if expect.kind == "new_leader_within":
            return _LeaderWithin(phase, expect, sim, among, before)
        if expect.kind == "commit_within":
            return _CommitWithin(phase, expect, sim)
        if expect.kind == "no_leader_change":
            return _NoLeaderChange(phase, expect, sim)
        if expect.kind == "no_leader":
            return _NoLeader(phase, expect, sim)
        assert node is not None
        return _NodeCaughtUp(phase, expect, sim, node)

    def _resolve(self, ref: Ref) -> int:
        sim = self.sim
        if isinstance(ref, int):
            if ref not in sim.nodes:
                raise NotApplicable(f"there is no node {ref}")
            return ref
        if ref in self.labels:
            return self.labels[ref]
        if ref not in ROLES:
            raise NotApplicable(f"label {ref!r} names no node (its phase named none)")
        leader = leader_of(sim)
        if leader is None:
            raise _Wait(f"no leader to name as {ref!r}")
        if ref == "leader":
            return leader.node_id
        voters = [n for n, voting in leader.members if voting and n != leader.node_id]
        live = [n for n in sorted(voters) if n in sim.nodes and sim.nodes[n].alive]
        if not live:
            raise _Wait("no live follower")
        return live[0]

    def _nodes(self, nodes: tuple[Ref, ...] | str, action: str) -> list[int]:
        sim = self.sim
        if nodes == "all":
            want_alive = action != "restart"
            return [n for n in sim.node_ids if sim.nodes[n].alive == want_alive]
        return [self._resolve(r) for r in nodes]

    def _partition(self, shape: Shape) -> tuple[Partition, int | None]:
        nodes = list(self.sim.node_ids)
        if shape.kind == "groups":
            group_of: dict[int, int] = {}
            for number, group in enumerate(shape.groups):
                for ref in group:
                    node = self._resolve(ref)
                    if node in group_of:
                        raise NotApplicable(f"node {node} is in two groups")
                    group_of[node] = number
            # A node in no group is cut off from everyone.
            for node in nodes:
                group_of.setdefault(node, -node)
            down = tuple((a, b) for a in nodes for b in nodes
                         if a != b and group_of[a] != group_of[b])
            text = " | ".join(",".join(str(self._resolve(r)) for r in g) for g in shape.groups)
            return Partition(f"groups {text}", down), None
        ends = [self._resolve(r) for r in shape.nodes]
        if shape.kind == "isolate":
            (lonely,) = ends
            down = tuple((a, b) for a in nodes for b in nodes
                         if a != b and (a == lonely) != (b == lonely))
            return Partition(f"isolate {lonely}", down), lonely
        if shape.kind == "bridge":
            (bridge,) = ends
            others = [n for n in nodes if n != bridge]
            down = tuple((a, b) for a in others for b in others if a != b)
            return Partition(f"bridge {bridge}", down), bridge
        a, b = ends
        if a == b:
            raise NotApplicable(f"{shape.kind} needs two different nodes, got {a} twice")
        if shape.kind == "one_way":
            return Partition(f"one-way {a}->{b}", ((a, b),)), None
        if shape.kind == "cut":
            return Partition(f"cut {a}<->{b}", ((a, b), (b, a))), None
        return Partition(f"clog {a}<->{b}", (), ((a, b), (b, a))), None

    def _membership(self, phase: Phase) -> ChangeMembership:
        """The change to ask the leader for (retried while it refuses)."""
        sim = self.sim
        leader = leader_of(sim)
        if leader is None:
            raise _Wait("no leader to ask for a membership change")
        if phase.action == "add_member":
            limit = self.scenario.options.max_servers
            if len(leader.members) >= limit:
                raise NotApplicable(f"the cluster already has max_servers ({limit}) members")
            return ChangeMembership(leader.node_id, MembershipChange.ADD_NONVOTING,
                                    sim.next_node_id)
        (ref,) = phase.nodes
        return ChangeMembership(leader.node_id, MembershipChange.REMOVE, self._resolve(ref))

    def _promote(self) -> None:
        """Promote a joined member to voter once the leader says it caught up."""
        if not self.promotions:
            return
        sim = self.sim
        leader = leader_of(sim)
        if leader is None:
            return
        members = dict(leader.members)
        for node, last in list(self.promotions.items()):
            if members.get(node) is True:
                del self.promotions[node]
                continue
            if node not in members or node not in getattr(leader, "caught_up", [node]):
                continue
            if last is not None and sim.clock_ms - last < RETRY_MS:
                continue
            self.promotions[node] = sim.clock_ms
            self.apply(ChangeMembership(leader.node_id, MembershipChange.PROMOTE, node))


class _Violated(Exception):
    """A scripted event broke an invariant; the run stops."""


@dataclass(slots=True)
class _Flap:
    """A partition that comes and goes: `times` rounds of down_ms cut, up_ms healed."""

    phase: Phase
    partition: Partition
    rounds_left: int = 0
    down: bool = True
    next_ms: int = 0

    def __post_init__(self) -> None:
        self.rounds_left = self.phase.times
        assert self.phase.at_ms is not None
        self.next_ms = -1  # set on the first step, once the partition is applied

    def step(self, script: _Script) -> bool:
        """Toggle when due; True once the last heal happened."""
        sim = script.sim
        if self.next_ms < 0:
            self.next_ms = sim.clock_ms + self.phase.down_ms
        if sim.clock_ms < self.next_ms:
            return False
        if self.down:
            script.apply(Heal())
            self.rounds_left -= 1
            self.down = False
            self.next_ms = sim.clock_ms + self.phase.up_ms
            return self.rounds_left == 0
        script.apply(self.partition)
        self.down = True
        self.next_ms = sim.clock_ms + self.phase.down_ms
        return False


@dataclass(frozen=True, slots=True)
class ScenarioOutcome:
    scenario: Scenario
    run: RunResult
    expectations: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def expected_failure(self) -> str | None:
        return self.scenario.expect_failure

    @property
    def failed(self) -> bool:
        """Safety, liveness or a stated expectation failed (exit code 1)."""
        return self.run.failed or not all(e.passed for e in self.expectations)

    @property
    def as_stated(self) -> bool:
        """The outcome is what the file says: a pass, or the stated failure only."""
        stated = self.expected_failure
        run = self.run
        expectations_held = all(e.passed for e in self.expectations)
        if stated is None:
            return not self.failed
        if stated == "liveness":
            return (run.violation is None and run.liveness.verdict == "failed"
                    and expectations_held)
        if stated == "expectation":
            return (run.violation is None and not expectations_held
                    and run.liveness.verdict != "failed")
        return run.violation is not None and run.violation.invariant == stated

    def verdict(self) -> dict[str, Any]:
        return {
            **self.run.verdict(),
            "scenario": {
                "name": self.scenario.name,
                "expected_failure": self.expected_failure,
                "as_stated": self.as_stated,
                "expectations": [
                    {"description": e.description, "passed": e.passed, "detail": e.detail}
                    for e in self.expectations
                ],
            },
        }

    def trace_lines(self) -> list[str]:
        run = self.run
        return trace_lines(run.seed, run.options, run.factory, run.sim.events, self.verdict(),
                           extra={"scenario": self.scenario.name})


def run_scenario(scenario: Scenario, seed: int, *, factory: str = DEFAULT_FACTORY
                 ) -> ScenarioOutcome:
    """Run the script with the background events of `seed`, then the liveness phase."""
    options = scenario.options
    sim = Simulation(options, seed, load_factory(factory), checker=Checker())
    scheduler = Scheduler(random.Random(f"virtraft:{seed}:scheduler"), options)
    script = _Script(scenario, sim)
    violation: Violation | None = None
    why = "the script ended"
    while True:
        if sim.step >= scenario.max_steps:
            why = f"the run reached max_steps ({scenario.max_steps})"
            break
        violation = script.before_step()
        if violation is not None or script.finished():
            break
        violation = sim.apply(scheduler.next_event(sim))
        script.observe()
        if violation is not None:
            break
    if violation is not None:
        why = f"safety was violated at step {violation.step}"
        liveness = Liveness("skipped", "safety was violated")
    elif not scenario.liveness:
        liveness = Liveness("skipped", "the scenario switches the liveness phase off")
    elif scenario.liveness_heal:
        liveness, violation = liveness_phase(sim, scheduler)
    else:
        liveness, violation = liveness_in_place(sim, scheduler)
    expectations = script.outcomes(why)
    run = RunResult(seed, options, factory, violation, liveness, sim)
    return ScenarioOutcome(scenario, run, expectations)


def liveness_in_place(sim: Simulation, scheduler: Scheduler) -> tuple[Liveness, Violation | None]:
    """The liveness phase for a fault that never heals (`[liveness] heal =
    false`): the network keeps its last shape as its stable state, and still
    a leader and a commit must follow within the bound. This is the claim
    pre-vote and check-quorum make about partial connectivity."""
    run = CalmRun.start(sim, Scheduler(scheduler.rng, calm_options(sim.options)))
    bound = sim.options.liveness_bound_ms
    skipped = Liveness("skipped", "safety was violated")
    outcome = run.until(lambda: sim.clock_ms >= run.stable_until)
    if isinstance(outcome, Violation):
        return skipped, outcome
    outcome = run.until(lambda: leader_of(sim) is not None)
    if isinstance(outcome, Violation):
        return skipped, outcome
    if outcome is False:
        return Liveness("failed", f"no leader within {bound} ms under the lasting partition"), None
    leader = leader_of(sim)
    assert leader is not None
    leader_at = sim.clock_ms
    command = sim.next_command_id
    if (violation := sim.apply(ClientRequest(leader.node_id, command, "liveness", 1))):
        return skipped, violation
    last = sim.last_submitted
    if last is None or last[0] != command:
        return Liveness("failed", f"leader {leader.node_id} refused a command", leader_at), None
    _command, node_id, where = last
    outcome = run.until(lambda: sim.nodes[node_id].is_committed(where) is True)
    if isinstance(outcome, Violation):
        return skipped, outcome
    if outcome is False:
        return Liveness(
            "failed", f"leader {leader.node_id} did not commit a command within {bound} ms "
            "under the lasting partition", leader_at), None
    return Liveness("ok", "leader elected and a command committed under the lasting partition",
                    leader_at, sim.clock_ms), None
