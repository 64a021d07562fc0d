"""Digests of the event lines of traces (not the header, not the verdict's
wording) for a fixed set of runs: 200 swarm seeds and every shipped scenario
at 5 seeds, with each run's exit code.

A change that must not alter behaviour (a refactor, a move) keeps these
digests; `test_trace_digests.py` compares them with the ones recorded in
`trace_digests.json`. A change that alters behaviour on purpose records them
again and says so in its commit message:

    python tests/golden/trace_digests.py --record
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from virtraft.cli.commands import main as cli_main

RECORDED = Path(__file__).with_name("trace_digests.json")
SWARM_SEEDS = range(200)
SWARM_ARGS = ["--swarm", "--steps", "3000"]
SCENARIO_SEEDS = range(5)
SCENARIOS_DIR = Path(__file__).resolve().parents[2] / "scenarios"


def body_digest(path: Path) -> str:
    """sha256 of the event lines: every line between the header and the verdict."""
    lines = path.read_text().splitlines()[1:-1]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _run(args: list[str], trace: Path) -> str:
    code = cli_main(["run", *args, "--quiet", "--trace", str(trace)])
    return f"{code}:{body_digest(trace)}"


def runs() -> dict[str, list[str]]:
    """The named runs, each as CLI arguments of `virtraft run`."""
    table = {f"swarm:{seed}": ["--seed", str(seed), *SWARM_ARGS] for seed in SWARM_SEEDS}
    for path in sorted(SCENARIOS_DIR.glob("*.toml")):
        for seed in SCENARIO_SEEDS:
            table[f"scenario:{path.stem}:{seed}"] = ["--scenario", path.stem, "--seed", str(seed)]
    return table


def compute(names: list[str] | None = None) -> dict[str, str]:
    table = runs()
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "t.jsonl"
        for name in names or list(table):
            out[name] = _run(table[name], trace)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="write trace_digests.json")
    args = parser.parse_args(argv)
    digests = compute()
    if args.record:
        RECORDED.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
        print(f"recorded {len(digests)} digests in {RECORDED.name}")
        return 0
    recorded = json.loads(RECORDED.read_text())
    changed = sorted(k for k in recorded if digests.get(k) != recorded[k])
    for name in changed:
        print(f"{name}: recorded {recorded[name]}, now {digests.get(name)}")
    print(f"{len(recorded) - len(changed)} of {len(recorded)} digests unchanged")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
