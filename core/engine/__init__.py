"""The engine: one process owns a run, schedules its agents and answers the control socket.

`scheduler` (the Engine: lifecycle and scheduling), `requests` (its answers on the socket),
`policy` (what follows an ended attempt), `supervisor` (one attempt through its runtime),
`liveness` (watching a running agent), `environment` (an attempt's environment and secrets),
`context` (what the parts share), `recovery` (leftovers after a crash), `finish` (the end of a
run), `runner` (start or resume a run), `conflict_watch` (the live conflict matrix), `warmup`
(imports for later, while agents work). Where and how agents run is core/runtime/.
"""
