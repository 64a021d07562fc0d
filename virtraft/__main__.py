"""`python -m virtraft` works like the `virtraft` console script."""

import os
import sys


def _cwd_last() -> None:
    """`python -m` puts the current directory first on sys.path, where the
    console script puts nothing. Unless this package was loaded from there
    (a source checkout), move it last: a raftcore.py lying in the current
    directory must not stand in for the installed package."""
    if not sys.path or not sys.path[0]:
        return
    cwd = os.path.realpath(os.getcwd())
    root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    if os.path.realpath(sys.path[0]) == cwd and root != cwd:
        sys.path.append(sys.path.pop(0))


_cwd_last()

from virtraft.cli.commands import main  # noqa: E402

sys.exit(main())
