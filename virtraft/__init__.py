"""virtraft: a deterministic simulator that finds bugs in Raft implementations.

Reading map. Data flows one way: scheduler -> network -> door -> the
implementation -> its sends -> network; after every event the checker reads
each node through the door and the trace records the event.

- the door ................ `adapter`: NodeAdapter (required calls, capabilities
                            with defaults), Messages, NodeOptions, blame
- implementations ......... `nodes.raftcore` (the default), `nodes.disk`
- canonical/raft (C) ...... `nodes.canonical` (raft_io, raft_fsm), its build
                            `nodes.canonical_build`, shared with willemt `nodes.native`
- PySyncObj ............... `nodes.pysyncobj` (PyPI `pysyncobj`, extra [pysyncobj])
- one event ............... `sim.events`; applied by `sim.simulation.Simulation.apply`
- the network ............. `sim.network` (pool, delays, cuts, held links)
- who decides ............. `sim.scheduler` (one seeded stream), `sim.options`
                            (SimOptions and `options_swarm`), `sim.seeds`
- partition shapes ........ `sim.partitions`
- clients ................. `sim.clients` (reads, writes, CAS under sessions; the history)
- invariants .............. `check.invariants` over `check.model`, run by
                            `check.checker.Checker` after every event
- what clients saw ........ `check.history` (the history format), `check.linearizability`
                            (Wing & Gong / Lowe search, key by key)
- traces .................. `trace.format` (JSON Lines), `trace.replay`
- one seed ................ `run.seed.run_seed`, then `run.liveness`
- many seeds .............. `run.campaign` (local processes or Dask)
- shrinking ............... `run.shrink`
- Hypothesis .............. `run.stateful.machine_for(factory)`
- speed ................... `run.bench`
- node factories by name .. `run.factory.load_factory`
- scenarios (TOML) ........ `scenario`
- what a run shows ........ `report` (replay under observation, the page,
                            the story, the terminal summary, the campaign index)
- the command line ........ `cli`
- the bug zoo ............. `zoo.mutants` (raftcore with one bug each), `zoo.hunt`

Layers (pyproject's import-linter contract): each imports only those below
it; raftcore imports nothing of virtraft.
"""

__version__ = "0.1.0"
