"""Node factories by name: `module:callable`, as `--node-factory` names them."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from virtraft.adapter import FactoryError, NodeFactory

DEFAULT_FACTORY = "virtraft.nodes.raftcore:default_factory"


def load_factory(spec: str) -> NodeFactory:
    """Import `module:callable`; the callable makes nodes."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise FactoryError(f"node factory {spec!r} must look like module:callable")
    if "" not in sys.path and os.getcwd() not in sys.path:
        # Like `python -m`: a factory in the current directory is found.
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FactoryError(f"cannot import {module_name!r} for the node factory: {exc}") from None
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise FactoryError(f"{module_name} has no attribute {attr!r}")
    if not callable(target):
        raise FactoryError(f"{spec} is not callable")
    return target
