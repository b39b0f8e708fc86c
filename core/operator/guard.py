"""The operator refusal rule (docs/reliability.md T1), applied once for every front end: an
action asked from inside an agent is refused and recorded as that attempt's
(core/trust/authority.py decides who asks)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from corral.core.control.protocol import OperatorRequest
from corral.core.operator.errors import AgentRefused
from corral.core.runs.rundir import RunDir


def people_only(
    action: str,
    target: str,
    rundir: RunDir | None,
    request: OperatorRequest | None = None,
    *,
    socket: str | None = None,
) -> None:
    """Return when a person asks for `action`; raise AgentRefused (recorded) when an agent does.

    `request` is what would be sent: a live engine is handed it with the attempt's token, so it
    refuses and logs it itself."""
    from corral.core.trust.authority import refuse_operator

    payload = None if request is None else request.model_dump(exclude_none=True)
    refused = refuse_operator(action, target, rundir, request=payload, socket=socket)
    if refused is not None:
        raise AgentRefused(refused)


def people_only_unseen(action: str, target: str) -> None:
    """`people_only` for an action on a run that cannot be found: an agent (a sandboxed one
    sees no run) is refused all the same, and its own engine logs the refusal; a person's
    command goes on to say the run is not found."""
    from corral.core.trust.authority import refuse_unseen

    refused = refuse_unseen(action, target)
    if refused is not None:
        raise AgentRefused(refused)


def people_only_everywhere(action: str, runs: Sequence[RunDir], common_dir: Path) -> None:
    """`people_only` for an action on every run of a repository (gc)."""
    from corral.core.trust.authority import refuse_everywhere

    refused = refuse_everywhere(action, runs, common_dir)
    if refused is not None:
        raise AgentRefused(refused)
