"""The bug zoo: raftcore with one real Raft mistake put back at a time."""
