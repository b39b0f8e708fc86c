"""Operator actions come from people, not from agents (docs/reliability.md T1).

The operator's controls are approve, reject, kill, retry, lock break and gc. Every front end asks
here first: the front ends through the operator API (core/operator/guard.py), the decisions
(core/review/gate.py) and the engine's control socket (control.py -> Engine.refuse_agents).
A caller is an agent's when

- it carries the marks the engine gives each attempt (`MARKS`, set by
  supervisor.agent_environment) in its own environment, or a process it runs under does: an
  agent that clears its environment before calling corral still runs below its first process,
  whose start-up environment (/proc/<pid>/environ) keeps them;
- it belongs to a live attempt's process tree (procfs.in_tree: the attempt's session or
  process group, or a descendant of one), which holds even when the agent's first process
  replaced itself with a cleared environment;
- on the socket, where the client is not trusted, the engine asks both of the sending process
  (SO_PEERCRED), and a request that carries an attempt's token is that attempt's.

Attribution prefers what cannot be forged: a token the engine issued, then the process tree,
then variables (which another agent could copy). A refusal is recorded in the target run's log
as `operator_action_refused`, naming the attempt and never its token.

One exception: an attempt is the operator of the runs it starts itself (a coding agent that runs
corral's own tests starts and stops runs of scratch repositories). An engine records the attempt
it runs inside (`EngineInfo.inside`), and that attempt alone may operate the run.

Not a sandbox: a process that leaves its attempt's tree (a double fork) and clears its
environment is not recognised; keeping agents away from the operator's files and socket is the
sandbox's part.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.core.errors import CorralError
from corral.core.runtime.procfs import ProcStat, environ_of, in_tree, read_stat, scan

if TYPE_CHECKING:
    from corral.core.control.protocol import OperatorRequest
    from corral.core.log import events as ev
    from corral.core.log.state import RunState
    from corral.core.runs.rundir import RunDir

MARKS = (
    "CORRAL_RUN_ID",
    "CORRAL_AGENT_ID",
    "CORRAL_ATTEMPT",
    "CORRAL_AGENT_TOKEN",
    "CORRAL_SOCKET",
)
"""Variables the engine sets in every attempt's environment (supervisor.agent_environment)."""
MAX_ANCESTORS = 512
RECORD_WAIT = 2.0
"""Seconds a refusal waits for a finished run's engine lock to be recorded (decisions are short;
a live engine holds it for good and hears of the refusal on its socket instead)."""


class OperatorRefused(CorralError):
    """An operator action asked from inside an agent; the message says who and why (recorded)."""


@dataclass(frozen=True)
class Caller:
    """The attempt an operator action comes from."""

    run_id: str
    agent: str
    attempt: int | None
    evidence: str
    """How it is known, in words: the attempt's token, its process tree, its variables."""
    token: str = field(default="", repr=False)
    """The attempt's secret when its variables were found: forwarded, never shown or logged."""
    socket: str = field(default="", repr=False)
    """The attempt's own control socket (CORRAL_SOCKET) when its variables were found."""

    @property
    def key(self) -> str:
        """`run/agent#n`, as EngineInfo.inside records it."""
        return f"{self.run_id}/{self.agent}#{self.attempt}"

    def __str__(self) -> str:
        run = f" of run {self.run_id}" if self.run_id else ""
        return f"agent {self.agent or '?'}#{self.attempt or '?'}{run}"


@dataclass(frozen=True)
class LiveAttempt:
    run_id: str
    agent: str
    attempt: int
    pid: int
    start_time: float


def _name(text: str) -> str:
    """A run or agent id from an environment, which anyone can set: kept to id characters, so
    that it is inert wherever the refusal is shown (run and agent ids use no others)."""
    return re.sub(r"[^A-Za-z0-9._-]", "?", text[:100])


def marks_in(environ: Mapping[str, str], evidence: str) -> Caller | None:
    """The attempt an environment belongs to, when it carries any of the marks."""
    if not any(environ.get(name) for name in MARKS):
        return None
    number = environ.get("CORRAL_ATTEMPT", "")
    return Caller(
        run_id=_name(environ.get("CORRAL_RUN_ID", "")),
        agent=_name(environ.get("CORRAL_AGENT_ID", "")),
        attempt=int(number) if number.isdigit() and len(number) < 10 else None,
        evidence=evidence,
        token=environ.get("CORRAL_AGENT_TOKEN", ""),
        socket=environ.get("CORRAL_SOCKET", ""),
    )


def _marked_ancestor(pid: int, table: Mapping[int, ProcStat] | None) -> Caller | None:
    """The marks of `pid` or of the nearest process it runs under (a nested run's agent is the
    nested run's, not the outer agent's)."""
    seen: set[int] = set()
    while pid > 1 and pid not in seen and len(seen) < MAX_ANCESTORS:
        seen.add(pid)
        evidence = f"the environment of process {pid}, which is it or runs it"
        found = marks_in(environ_of(pid, MARKS) or {}, evidence)
        if found is not None:
            return found
        stat = table.get(pid) if table is not None else read_stat(pid)
        if stat is None:
            return None
        pid = stat.ppid
    return None


def process_caller(
    pid: int, live: Sequence[LiveAttempt] = (), table: Mapping[int, ProcStat] | None = None
) -> Caller | None:
    """The attempt process `pid` runs inside, or None for a person's process.

    Tree membership first, then the variables of the nearest marked process; the token, which
    only variables carry, is kept when both name the same attempt."""
    if live and table is None:
        table = scan()
    by_tree = None
    if table is not None:
        for attempt in live:
            if in_tree(table, attempt.pid, attempt.start_time, pid):
                evidence = "it runs in that attempt's process tree"
                by_tree = Caller(attempt.run_id, attempt.agent, attempt.attempt, evidence)
                break
    by_marks = _marked_ancestor(pid, table)
    if by_tree is None:
        return by_marks
    if by_marks is not None and by_marks.key == by_tree.key:
        return replace(by_tree, token=by_marks.token, socket=by_marks.socket)
    return by_tree


def calling_attempt(live: Sequence[LiveAttempt] = ()) -> Caller | None:
    """The attempt this process runs inside, or None when a person runs it."""
    return marks_in(os.environ, "CORRAL_* variables in its environment") or process_caller(
        os.getpid(), live
    )


def enclosing_attempt() -> str | None:
    """`run/agent#n` of the attempt this process (an engine) runs inside; None for a person's."""
    caller = calling_attempt()
    return None if caller is None else caller.key


def live_attempts(state: RunState) -> list[LiveAttempt]:
    """The run's attempts whose process the log shows running."""
    from corral.core.log.state import ACTIVE_STATES

    found: list[LiveAttempt] = []
    for agent in state.agents.values():
        current = agent.current
        if (
            agent.state in ACTIVE_STATES
            and current is not None
            and current.pid
            and current.proc_start_time is not None
        ):
            found.append(
                LiveAttempt(
                    state.run_id, agent.id, current.number, current.pid, current.proc_start_time
                )
            )
    return found


def live_attempts_of_repo(common_dir: Path) -> list[LiveAttempt]:
    """The live attempts of every run of the repository whose engine is running."""
    from corral.core.log import LogCorrupted, LogPathError, read_log
    from corral.core.log.state import fold
    from corral.core.runs.engine_lock import engine_is_live
    from corral.core.runs.rundir import list_runs

    found: list[LiveAttempt] = []
    for run in list_runs(common_dir):
        try:
            if engine_is_live(run):
                found += live_attempts(fold(read_log(run.events).events))
        except (OSError, LogCorrupted, LogPathError):
            continue  # a run whose log cannot be read has no attempt to find
    return found


def run_owner(rundir: RunDir) -> str | None:
    """The attempt the run's first engine ran inside (EngineInfo.inside); None for a person's."""
    from corral.core.log.events import EventAdapter, RunStarted

    try:
        with rundir.events.open("rb") as handle:
            event = EventAdapter.validate_json(handle.readline())
    except (OSError, ValueError):
        return None
    return event.engine.inside if isinstance(event, RunStarted) else None


def refusal(action: str, caller: Caller) -> str:
    """A person's words for a refused operator action."""
    return (
        f"`{action}` is an operator action, and this runs inside {caller} ({caller.evidence}); "
        "operator actions come from people, so nothing was done. Run it from your own "
        "terminal, outside any agent"
    )


def refusal_event(action: str, target: str, caller: Caller) -> ev.OperatorActionRefused:
    from corral.core.log import events as ev

    return ev.OperatorActionRefused(
        action=action,
        target=re.sub(r"[^\x20-\x7e]", "?", target[:200]),  # the caller's words: made inert
        caller_run=caller.run_id,
        caller_agent=caller.agent,
        caller_attempt=caller.attempt,
        evidence=caller.evidence,
    )


# -- the engine's side: requests on the control socket -------------------------------------


def describe_request(request: OperatorRequest) -> tuple[str, str]:
    """(action, target) of an operator request, in the words of `refusal`."""
    from corral.core.control.protocol import LockBreakRequest, StopRequest

    if isinstance(request, LockBreakRequest):
        return "lock break", f"lock {request.lock}"
    if isinstance(request, StopRequest):
        return "stop", "the run"
    return request.op, f"agent {request.agent}"


def request_caller(
    request: OperatorRequest,
    peer: int | None,
    live: Sequence[LiveAttempt],
    tokens: Mapping[str, tuple[str, str, int]],
    owner: str | None,
) -> Caller | None:
    """Who sent an operator request to this run's engine; None for a person.

    `peer` is the sender's pid (SO_PEERCRED; 0 or None when it is in a pid namespace above the
    engine's, where none of its agents can be), `live` the run's running attempts (from
    `live_attempts`), `tokens` the secrets of its attempts (run, agent, attempt), `owner` the attempt
    the engine runs inside, if any. Blocking: it reads /proc."""
    token = request.token
    if token is not None and token in tokens:
        run_id, agent, attempt = tokens[token]
        return Caller(run_id, agent, attempt, "it carries that attempt's token")
    unknown_token = None if token is None else Caller("", "", None, "it carries an attempt token")
    if not peer:
        return unknown_token
    table = scan()
    if peer not in table:
        return Caller("", "", None, "its sender exited before corral could tell who it was")
    caller = process_caller(peer, live, table)
    if caller is None or (caller.key == owner and token is None):
        return unknown_token
    return caller


# -- front ends: the command line and the decisions --------------------------------------------


def refuse_operator(
    action: str,
    target: str,
    rundir: RunDir | None,
    *,
    request: dict[str, Any] | None = None,
    socket: str | None = None,
) -> str | None:
    """None when a person asks for `action` on the run; else the refusal, in words, recorded.

    The record goes to the run's engine when it is live (the refused `request` itself, carrying
    the attempt's token: the engine refuses it and logs it as that attempt's), otherwise
    straight into the run's log. `socket` replaces the run's own socket (an agent's own run)."""
    live = live_attempts_of_repo(rundir.path.parents[2]) if rundir is not None else []
    caller = calling_attempt(live)
    if caller is None or (rundir is not None and caller.key == run_owner(rundir)):
        return None
    path = socket or (str(rundir.socket) if rundir is not None else None)
    told = bool(request is not None and caller.token and path) and _tell_engine(
        str(path), {**(request or {}), "token": caller.token}
    )
    if not told and rundir is not None:
        record_refusal(rundir, refusal_event(action, target, caller))
    return refusal(action, caller)


def refuse_unseen(action: str, target: str) -> str | None:
    """None when a person asks for `action` on a run this process cannot find; else the
    refusal, in words, reported to the engine of the agent's own run.

    A sandboxed agent sees no run directory (docs/reliability.md T6), so a refusal cannot be
    recorded in the target run: the agent's own engine, on its own socket (CORRAL_SOCKET),
    logs it as the attempt's instead (`RefusalReport`, checked by its token)."""
    caller = calling_attempt()
    if caller is None:
        return None
    path = caller.socket  # its own: found with its token, in its environment or an ancestor's
    if path and caller.token and caller.attempt is not None:
        report = {
            "op": "operator_refused",
            "agent": caller.agent,
            "attempt": caller.attempt,
            "token": caller.token,
            "action": action,
            "target": target[:200],
        }
        _tell_engine(path, report)
    return refusal(action, caller)


def refuse_everywhere(action: str, runs: Sequence[RunDir], common_dir: Path) -> str | None:
    """`refuse_operator` for an action on every run of a repository (gc): None when a person
    asks, or an agent whose own runs they all are. Not recorded: it targets no one run."""
    caller = calling_attempt(live_attempts_of_repo(common_dir))
    if caller is None or all(run_owner(run) == caller.key for run in runs):
        return None
    return refusal(action, caller)


def _tell_engine(socket_path: str, payload: dict[str, Any]) -> bool:
    """Send a refused request with the attempt's token, for the engine to refuse and log; True
    when an engine answered. (An engine refuses every request that carries a token, and one
    that predates tokens refuses the unknown field: either way nothing is done.)"""
    from corral.core.agent.client import ControlError, Unreachable, request

    try:
        request(socket_path, payload, timeout=5)
    except Unreachable:
        return False
    except ControlError:
        return True
    return True


def record_refusal(rundir: RunDir, event: ev.EventBase) -> bool:
    """Append `event` to the log of a run whose engine is not running, under its engine lock
    (the log keeps one writer); False when the lock stays taken or the log cannot be written."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import filelock

    from corral.core.log import EventWriter, LogCorrupted, LogFailed, LogPathError

    lock = filelock.FileLock(rundir.engine_lock, timeout=RECORD_WAIT)
    try:
        lock.acquire()
    except (filelock.Timeout, OSError):
        return False

    async def append() -> None:
        writer, _ = await EventWriter.open(rundir.events)
        try:
            await writer.append(event)
        finally:
            await writer.close()

    try:
        # a thread of its own: the console calls the decisions from inside its event loop
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, append()).result()
    except (OSError, LogCorrupted, LogFailed, LogPathError):
        return False
    finally:
        lock.release()
    return True
