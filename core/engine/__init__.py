"""The engine: one process owns a run, schedules its agents and answers the control socket.

`scheduler` (the Engine), `supervisor` (one attempt: workspace, setup, process, liveness, end),
`runner` (start or resume a run), `workspaces` (attempts' worktrees in batches),
`conflict_watch` (the live conflict matrix), `warmup` (imports for later, while agents work).
"""
