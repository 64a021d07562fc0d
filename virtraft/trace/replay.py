"""Replay: apply a trace's recorded events (not the RNG) to a fresh simulation."""

from __future__ import annotations

from collections.abc import Iterable

from virtraft.check.checker import Violation
from virtraft.sim.events import Event, strip_refs
from virtraft.sim.simulation import NotApplicable, Simulation


def replay_events(
    sim: Simulation, events: Iterable[Event], *, strict: bool = True
) -> tuple[Violation | None, int | None, str | None]:
    """Apply recorded events. Returns (violation, diverged_at_step, why); with
    strict=False an event that no longer applies is skipped (for shrinking)."""
    for step, event in enumerate(strip_refs(list(events)), start=1):
        try:
            violation = sim.apply(event)
        except NotApplicable as exc:
            if strict:
                return None, step, str(exc)
            continue
        if violation is not None:
            return violation, None, None
    return None, None, None
