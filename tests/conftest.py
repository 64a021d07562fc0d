"""Shared pytest setup: Hypothesis runs deterministically unless asked otherwise.

The "ci" profile is loaded by default. Set VIRTRAFT_HYPOTHESIS_PROFILE to
"explore" for longer random exploration (new examples each run), or to any
other registered profile.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("VIRTRAFT_HYPOTHESIS_PROFILE", "ci"))
