"""virtraft: a deterministic simulator that finds bugs in Raft implementations."""

__version__ = "0.1.0"
