"""Sandboxed agents on bubblewrap (issue 12; docs/reliability.md T6): the groundwork.

`policy` (the plan's `[agent.sandbox]` table: checked, explained), `paths` (where an attempt's
files are outside and inside), `bwrap` (the bubblewrap command line, and the preflight probe),
`gitdir` (the attempt's private git directory and bringing its branch back), `proxy` (the
allowlist proxy corral runs), `relay` (the in-sandbox loopback port that reaches the proxy).
Nothing here is wired into the engine yet: a sandbox runtime will call these.
"""
