"""The control socket: agents, the CLI and the console talk to a live engine through it.

`protocol` (the typed messages, one JSON object a line), `server` (validate, dispatch, answer).
"""
