"""Shared pytest setup: Hypothesis runs deterministically unless asked otherwise.

The "ci" profile is loaded by default; set VIRTRAFT_HYPOTHESIS_PROFILE to the
name of another registered profile (e.g. "default") to explore new examples.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, database=None)
settings.load_profile(os.environ.get("VIRTRAFT_HYPOTHESIS_PROFILE", "ci"))
