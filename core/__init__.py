"""The engine: plan, scheduler, supervisor, event log, state and the control API.

Nothing here imports Textual: the engine runs headless and the console is one of its clients.
"""
