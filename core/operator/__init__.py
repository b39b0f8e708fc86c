"""The operator API: what a person does to a run, typed, for every front end.

The command line, the console and any later front end (MCP, SSH) call these modules instead of
keeping their own copies of the rules: `actions` (kill, retry, break a lock, start a run),
`decisions` (approve, reject, acknowledge tampering, through core/review/gate.py), `policy`
(which action is allowed in which state), `reading` (status, runs, logs, follow), `identity`
(who acts and the roles they hold, read once by the front end) and `errors`. Kept empty: agent-side commands import
nothing from here at start-up.
"""
