"""Exclusive leases on named resources, with fencing tokens (docs/reliability.md L1-L7).

`manager` (the lock manager and its fencing check), `table` (who holds, who waits, in memory),
`service` (lock requests from the control socket), `shared_files` (fenced writes of files under
the run's shared directory).
"""
