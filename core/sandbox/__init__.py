"""Sandboxed agents on bubblewrap (issue 12; docs/reliability.md T6): the parts.

`policy` (the plan's `[agent.sandbox]` table: checked, explained), `paths` (where an attempt's
files are outside and inside), `bwrap` (the bubblewrap command line, and the preflight probe),
`gitdir` (the attempt's private git directory and bringing its branch back), `proxy` (the
allowlist proxy corral runs), `relay` (the in-sandbox loopback port that reaches the proxy).
The `sandbox` runtime (core/runtime/sandbox.py) applies them to attempts; the plan's checks are
core/plan/sandbox_checks.py.
"""
