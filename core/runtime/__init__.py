"""Where and how an attempt runs: the runtime seam and its runtimes.

`base` (the Runtime and Execution protocols and their values), `registry` (runtimes by name:
built in, or from the `corral.runtimes` entry points), `local` (process trees in git worktrees
on this host), `fake` (scripted executions for policy tests), `workspaces` (local worktrees in
batches), `verification` (the plan's `verify` through a runtime); for `local`: `proctree`
(spawn, wait, terminate), `procfs` (reading /proc: identity, marks, trees, CPU), `kill`
(killing a whole tree, or every process of an attempt, confirmed).
"""
