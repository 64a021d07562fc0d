"""Node factories by name: `module:callable`, as `--node-factory` names them."""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from typing import Any

from virtraft.adapter import FactoryError, NodeFactory

DEFAULT_FACTORY = "virtraft.nodes.raftcore:default_factory"
# The default factory's names in traces of earlier releases: the same raftcore.
EARLIER_DEFAULT_FACTORIES = ("virtraft.raftcore_node:default_factory",)


def load_factory(spec: str) -> NodeFactory:
    """Import `module:callable`; the callable makes nodes."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise FactoryError(f"node factory {spec!r} must look like module:callable")
    if spec != DEFAULT_FACTORY:
        _search_cwd_last()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FactoryError(f"cannot import {module_name!r} for the node factory: {exc}") from None
    except SyntaxError as exc:
        raise FactoryError(
            f"cannot import {module_name!r} for the node factory: {exc.msg} "
            f"({exc.filename}, line {exc.lineno})"
        ) from None
    except Exception as exc:  # the user's module failed as it loaded
        raise FactoryError(
            f"importing {module_name!r} for the node factory raised {type(exc).__name__}: {exc}"
        ) from None
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise FactoryError(f"{module_name} has no attribute {attr!r}")
    if not callable(target):
        raise FactoryError(f"{spec} is not callable")
    return target


def _search_cwd_last() -> None:
    """A factory the user names may live in the current directory, which is
    searched, but after everything else: a file there named like an
    installed package (raftcore.py) never stands in for it."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)


def factory_for_trace(recorded: str, named: str | None) -> str:
    """The node factory to run a trace's events with. A trace is data: the
    factory it records is never imported on the trace's word. The user names
    one (`--node-factory`), or the trace must have been recorded with the
    default one (under its name of today or of an earlier release)."""
    if named is not None:
        return named
    if recorded in (DEFAULT_FACTORY, *EARLIER_DEFAULT_FACTORIES):
        return DEFAULT_FACTORY
    raise FactoryError(
        f"the trace was recorded with node factory {recorded!r}, which a trace alone never "
        f"runs; to run it, pass --node-factory {shlex.quote(recorded)}"
    )
