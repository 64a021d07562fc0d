"""Reading one TOML table of a scenario file, field by field.

Every read names its field in errors, and `done()` refuses keys nobody
read, so a typo does not pass silently. The schema, the actions and the
expectations all read through these tables: a bad field is reported where it
is read, as one line naming the file, the field and what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, NoReturn

Ref = int | str
"""A node named in a phase: an id, "leader", "follower", or a label."""

# Node references that name a role when the phase runs.
ROLES = ("leader", "follower")

# A key that is absent (None is a value a default may take).
MISSING: Any = object()


# What a scenario may ask for at most, so that a typo cannot run it out of
# memory or time: any time (ten minutes of virtual time), any number of
# steps (the default hard stop), and commands or flaps in one phase.
MAX_SCENARIO_MS = 600_000
MAX_SCENARIO_STEPS = 1_000_000
MAX_PHASE_REPEATS = 1_000


class ScenarioError(ValueError):
    """A scenario cannot be read: one line naming the file, field and expectation."""


class Table:
    """One TOML table being read."""

    def __init__(self, path: str, where: str, data: dict[str, Any]) -> None:
        self.path = path
        self.where = where
        self.data = data
        self.read: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, expected: str, value: Any = MISSING) -> NoReturn:
        got = "it is missing" if value is MISSING else f"got {value!r}"
        raise ScenarioError(f"{self.path}: {self.field(key)}: expected {expected}, {got}")

    def has(self, key: str) -> bool:
        return key in self.data

    def get(
        self, key: str, expected: str, check: Callable[[Any], bool], default: Any = MISSING
    ) -> Any:
        self.read.add(key)
        if key not in self.data:
            if default is MISSING:
                self.fail(key, expected)
            return default
        value = self.data[key]
        if not check(value):
            self.fail(key, expected, value)
        return value

    def whole(
        self,
        key: str,
        *,
        minimum: int = 0,
        unit: str = "",
        default: Any = MISSING,
        maximum: int | None = None,
    ) -> Any:
        """A whole number; a time in ms is at most MAX_SCENARIO_MS unless told."""
        what = f"a whole number{' of ' + unit if unit else ''} >= {minimum}"
        value = self.get(key, what, lambda v: type(v) is int and v >= minimum, default)
        if maximum is None and unit == "ms":
            maximum = MAX_SCENARIO_MS
        if maximum is not None and type(value) is int and value > maximum:
            self.fail(key, f"at most {maximum}{' ' + unit if unit else ''}", value)
        return value

    def flag(self, key: str, default: bool) -> bool:
        return self.get(key, "true or false", lambda v: type(v) is bool, default)

    def text(self, key: str, default: Any = MISSING) -> Any:
        return self.get(key, "a string", lambda v: isinstance(v, str), default)

    def choice(self, key: str, names: Collection[str], default: Any = MISSING) -> Any:
        """One of `names` (a tuple, or a registry's keys), in their order."""
        return self.get(
            key, f"one of: {', '.join(names)}", lambda v: isinstance(v, str) and v in names, default
        )

    def table(self, key: str) -> Table:
        value = self.get(key, "a table", lambda v: isinstance(v, dict), {})
        return Table(self.path, self.field(key), value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            allowed = ", ".join(sorted(self.read))
            raise ScenarioError(
                f"{self.path}: {self.field(unknown[0])}: unknown key; expected one of: {allowed}"
            )


class PhaseTable(Table):
    """A `[[phases]]` table: it also reads node references, which must name a
    server of the cluster, a role, or a label an earlier phase set."""

    def __init__(
        self, path: str, number: int, data: dict[str, Any], servers: int, labels: set[str]
    ) -> None:
        super().__init__(path, f"phases[{number}]", data)
        self.servers = servers
        self.labels = labels
        self.ref_text = (
            f'a node id 1..{servers}, "leader", "follower" or a label set by an earlier phase'
        )

    def is_ref(self, value: Any) -> bool:
        if type(value) is int:
            return 1 <= value <= self.servers
        return isinstance(value, str) and (value in ROLES or value in self.labels)

    def ref(self, key: str) -> Ref:
        return self.get(key, self.ref_text, self.is_ref)

    def refs(self, key: str, *, exactly: int | None = None, default: Any = MISSING) -> Any:
        size = f"a list of {exactly} node references" if exactly else "a list of node references"
        return self.get(
            key,
            f"{size} ({self.ref_text})",
            lambda v: (
                isinstance(v, list)
                and bool(v)
                and all(map(self.is_ref, v))
                and (exactly is None or len(v) == exactly)
            ),
            default,
        )
