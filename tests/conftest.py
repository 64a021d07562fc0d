"""Shared pytest setup: Hypothesis runs deterministically unless asked otherwise.

The "ci" profile is loaded by default. Set VIRTRAFT_HYPOTHESIS_PROFILE to
"explore" for longer random exploration (new examples each run), or to any
other registered profile.
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("VIRTRAFT_HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config, items):
    """Many-seed runs (`@pytest.mark.slow`) are for a person with time, not
    CI: they run with VIRTRAFT_SLOW=1, or when `-m` names them."""
    if os.environ.get("VIRTRAFT_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="a many-seed run: set VIRTRAFT_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
