"""Attempts on a Ray cluster (issue 17): the only modules besides core/runtime/ray_runtime.py
that import `ray`, and only inside functions, so corral runs without it.

`cluster` (connect, the summary line), `actor` (an attempt on its node), `execution` (the
engine's side of it), `keeper` (the agent's session leader on the node, dies with the actor),
`relay` (the control socket carried over actor calls), `bundles` (git history in and out as
bundles; generic).
"""
