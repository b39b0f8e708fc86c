"""Where and how an attempt's processes run: today local processes in their own session.

`proctree` (spawn, wait, terminate: the public face), `procfs` (reading /proc: identity, marks,
trees, CPU), `kill` (killing a whole tree, or every process of an attempt, confirmed).
"""
