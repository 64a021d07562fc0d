"""The docstring tour in raftcore/__init__.py is a test too."""

from __future__ import annotations

import doctest

import raftcore


def test_package_docstring_tour_runs() -> None:
    result = doctest.testmod(raftcore, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10
    assert result.failed == 0
