"""The agent side: what agents run often (heartbeat, locks, `corral lock run`), so it starts fast.

Standard library only, and nothing else of corral but core/errors.py (standard library only
and importing nothing, so its errors are CorralErrors like the rest at no cost): `client` (the
control socket client), `lock_client` (locks for Python agents), `lock_command` (`corral lock
run` and `lock list`).
"""
