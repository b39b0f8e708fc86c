"""After an engine crash: what the dead engine's attempts left running, found and stopped.

Each attempt the log shows active is found again by its runtime (`reattach`, from the identity
`agent_started` logged), and then stopped like any ending attempt (`stop_attempt`, which also
finds what carries its marks when no execution was logged: the same sweep as at every end, T2).
Its outputs are redacted and it is logged lost and requeued: a dead engine is not the agent's
failure. A runtime that can keep supervising a reattached execution would let the engine watch
it on instead; today every runtime's leftovers are stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from corral.core.engine.context import Emit, RunContext
from corral.core.engine.environment import attempt_ref, environment_redactor, redact_outputs
from corral.core.log import events as ev
from corral.core.log.state import ACTIVE_STATES, RunState
from corral.core.runtime.base import Execution, Runtime


async def stop_leftovers(
    ctx: RunContext,
    state: RunState,
    runtimes: Mapping[str, Runtime],
    started: Mapping[tuple[str, int], ev.AgentStarted],
    emit: Emit,
) -> None:
    """Stop every attempt the log shows running (or starting), and log each one lost."""
    for agent in list(state.agents.values()):
        attempt = agent.current
        if agent.state not in ACTIVE_STATES or attempt is None:
            continue
        spec = ctx.plan.agent(agent.id)
        ref = attempt_ref(ctx, agent.id, attempt.number)
        event = started.get((agent.id, attempt.number))
        runtime = runtimes[
            event.runtime if event and event.runtime in runtimes else ctx.runtime_name(spec)
        ]
        execution: Execution | None = None
        if event is not None:
            execution = await runtime.reattach(ref, event.identity)
        found = await runtime.stop_attempt(ref, execution, ctx.plan.run.kill_grace)
        await asyncio.to_thread(
            redact_outputs,
            environment_redactor(spec),
            ctx.rundir.output_log(agent.id, attempt.number),
            ctx.rundir.output_dir(agent.id, attempt.number),
        )
        stopped = (
            f"; {found.stopped} of its processes were still alive and were stopped"
            if found.stopped
            else ""
        )
        await emit(
            ev.AgentFinished(
                agent=agent.id,
                attempt=attempt.number,
                outcome="lost",
                requeue=True,
                reason=f"the engine stopped while this attempt ran{stopped}",
            )
        )


def started_events(events: list[ev.Event]) -> dict[tuple[str, int], ev.AgentStarted]:
    """The `agent_started` events of a log, by (agent, attempt)."""
    return {
        (event.agent, event.attempt): event
        for event in events
        if isinstance(event, ev.AgentStarted)
    }
