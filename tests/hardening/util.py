"""Shared by the hardening tests: a small valid trace, and the CLI run in-process."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from virtraft.adapter import NodeOptions
from virtraft.cli.commands import main
from virtraft.run.seed import run_seed
from virtraft.sim.options import SimOptions

REPO = Path(__file__).resolve().parents[2]

# Three servers, fast timers and every fault: 60 events of all eleven kinds.
SMALL = SimOptions(
    servers=3,
    steps=60,
    drop_probability=0.1,
    duplicate_probability=0.1,
    partition_rate=0.03,
    crash_rate=0.01,
    member_rate=0.05,
    snapshot_rate=0.05,
    client_rate=0.2,
    liveness=False,
    node=NodeOptions(election_timeout_ms=100, request_timeout_ms=20),
)
SMALL_SEED = 56


def small_trace_lines() -> list[str]:
    return run_seed(SMALL_SEED, SMALL).trace_lines()


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def one_line_error(self, *needles: str) -> str:
        """Assert exit 2 with exactly one line on stderr, naming every needle."""
        assert self.code == 2, (self.code, self.err)
        assert "Traceback" not in self.err, self.err
        lines = self.err_lines
        assert len(lines) == 1, self.err
        for needle in needles:
            assert needle in lines[0], (needle, lines[0])
        return lines[0]


def cli(*argv: str) -> Ran:
    """`virtraft ARGV` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # only argparse's own exits should get here
            code = exc.code if isinstance(exc.code, int) else 2
    return Ran(code, out.getvalue(), err.getvalue())


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a child that imports this checkout's packages."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else ""), **extra}


def python_m(*argv: str, cwd: Path, timeout: float = 120) -> Ran:
    """`python -m virtraft ARGV` in a child process, from `cwd`."""
    done = subprocess.run(
        [sys.executable, "-m", "virtraft", *argv],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def console_script_text() -> str:
    """What pip writes for the `virtraft` console script of pyproject.toml.
    Run as a file, it has its own directory first on sys.path, not the
    current directory."""
    import tomllib

    entry = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["virtraft"]
    module, _, function = entry.partition(":")
    return (
        f"import re\nimport sys\nfrom {module} import {function}\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        f"    sys.exit({function}())\n"
    )


def console_script(*argv: str, cwd: Path, bin_dir: Path, timeout: float = 120) -> Ran:
    """The `virtraft` console script's code path, run from `cwd`."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "virtraft"
    script.write_text(console_script_text())
    done = subprocess.run(
        [sys.executable, str(script), *argv],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Ran(done.returncode, done.stdout, done.stderr)
