"""The current directory never comes before installed packages (hardening
issue, item 1): a raftcore.py lying there does not run when `virtraft run`
is typed, by the console script or by `python -m virtraft`; a node factory
the user names may still live there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hardening.util import console_script, python_m

RAFTCORE_DECOY = """\
import pathlib
pathlib.Path({marker!r}).write_text("the current directory's raftcore ran")
"""


@pytest.fixture
def decoy_dir(tmp_path) -> tuple[Path, Path]:
    """A working directory holding a raftcore.py that leaves a marker."""
    work = tmp_path / "work"
    work.mkdir()
    marker = tmp_path / "decoy-ran"
    (work / "raftcore.py").write_text(RAFTCORE_DECOY.format(marker=str(marker)))
    return work, marker


RUN = ["run", "--seed", "1", "--steps", "30", "--no-liveness"]


def test_the_console_script_never_runs_a_raftcore_py_of_the_current_directory(decoy_dir, tmp_path):
    work, marker = decoy_dir
    ran = console_script(*RUN, cwd=work, bin_dir=tmp_path / "bin")
    assert ran.code == 0, ran.err
    assert not marker.exists()


def test_nor_does_python_dash_m(decoy_dir):
    work, marker = decoy_dir
    ran = python_m(*RUN, cwd=work)
    assert ran.code == 0, ran.err
    assert not marker.exists()


def test_a_factory_in_the_current_directory_is_found_after_installed_packages(decoy_dir, tmp_path):
    work, marker = decoy_dir
    (work / "my_nodes.py").write_text(
        "from virtraft.nodes.raftcore import default_factory as make\n"
    )
    ran = console_script(
        *RUN, "--node-factory", "my_nodes:make", cwd=work, bin_dir=tmp_path / "bin"
    )
    assert ran.code == 0, ran.err
    assert "factory=my_nodes:make" in ran.out
    assert not marker.exists()
