"""The Python lock client at the import path the README promises; it lives in `corral.core.agent`."""

from corral.core.agent.lock_client import HeldLease, Lease, LeaseLost, LockBusy, LockClient

__all__ = ["HeldLease", "Lease", "LeaseLost", "LockBusy", "LockClient"]
