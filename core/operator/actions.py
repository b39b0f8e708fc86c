"""What a person does to a running (or ended) run: kill, retry, send input, break a lock, stop
the run, start or resume a run in the background, re-run agents a run left out. Each checks who
asks (guard.py), sends a typed request from core/control/protocol.py, and returns a typed result
or raises an OperatorError."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from corral.core.control.protocol import (
    AnswerRequest,
    InputRequest,
    KillRequest,
    LockBreakRequest,
    OperatorRequest,
    PauseRequest,
    ResizeRequest,
    StopRequest,
    UnpauseRequest,
)
from corral.core.operator.errors import AgentRefused, EngineRefused, OperatorError, StartFailed
from corral.core.operator.guard import people_only
from corral.core.operator.identity import Operator
from corral.core.operator.results import (
    Answered,
    InputSent,
    Killed,
    LockBroken,
    Paused,
    Resized,
    Retried,
    Started,
    Stopped,
)
from corral.core.runs.rundir import RunDir

if TYPE_CHECKING:
    from corral.core.plan.preflight import Preflight

REQUEST_TIMEOUT = 10.0


def send(
    socket_path: str, request: OperatorRequest, timeout: float = REQUEST_TIMEOUT
) -> dict[str, Any]:
    """One typed request to a run's engine; EngineRefused with the engine's own words."""
    from corral.core.agent.client import ControlError
    from corral.core.agent.client import request as exchange

    try:
        return exchange(socket_path, request.model_dump(exclude_none=True), timeout=timeout)
    except ControlError as exc:
        raise EngineRefused(str(exc), exc.code) from None


def _built(model: type[OperatorRequest], **fields: Any) -> Any:
    """The request, or an OperatorError that says which field is wrong (as the engine would)."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "request"
        raise OperatorError(f"bad request: {where}: {first['msg']}") from None


def kill(rundir: RunDir, agent: str, by: Operator, reason: str = "") -> Killed:
    """Stop `agent`: its process tree gets SIGTERM, then SIGKILL; it ends cancelled, no retry."""
    by.require("operator", "killing an agent")
    request: KillRequest = _built(KillRequest, agent=agent, by=by.user, reason=reason)
    people_only("kill", f"agent {agent}", rundir, request)
    data = send(str(rundir.socket), request)
    return Killed(agent, str(data.get("was")))


def stop(rundir: RunDir, by: Operator, reason: str = "") -> Stopped:
    """Stop the whole run: every agent's tree gets SIGTERM, then SIGKILL, as when the engine is
    sent SIGTERM; the engine records who stopped it and exits. `corral run --resume` carries on,
    requeueing the attempts it stopped."""
    by.require("operator", "stopping a run")
    from corral.core.runs.engine_lock import engine_is_live

    request: StopRequest = _built(StopRequest, by=by.user, reason=reason)
    people_only("stop", f"run {rundir.run_id}", rundir, request)
    if not engine_is_live(rundir.check()):
        raise EngineRefused(
            f"run {rundir.run_id} has no engine running: there is nothing to stop "
            f"(`corral run --resume {rundir.run_id}` carries it on)"
        )
    data = send(str(rundir.socket), request)
    running = data.get("running")
    names = tuple(str(a) for a in running) if isinstance(running, list) else ()
    return Stopped(str(data.get("run_id") or rundir.run_id), names)


def pause(rundir: RunDir, agent: str, by: Operator) -> Paused:
    """Freeze a running agent's whole process tree (SIGSTOP): it uses no CPU and its timeouts
    stand still until `unpause`; a kill still ends it."""
    by.require("operator", "pausing an agent")
    request: PauseRequest = _built(PauseRequest, agent=agent, by=by.user)
    people_only("pause", f"agent {agent}", rundir, request)
    data = send(str(rundir.socket), request)
    return Paused(agent, int(data.get("attempt") or 0), processes=int(data.get("processes") or 0))


def unpause(rundir: RunDir, agent: str, by: Operator) -> Paused:
    """Let a paused agent go on (SIGCONT); its timeouts run again from where they stood."""
    by.require("operator", "letting a paused agent go on")
    request: UnpauseRequest = _built(UnpauseRequest, agent=agent, by=by.user)
    people_only("unpause", f"agent {agent}", rundir, request)
    data = send(str(rundir.socket), request)
    lasted = data.get("paused_for")
    return Paused(
        agent,
        int(data.get("attempt") or 0),
        paused_for=float(lasted) if isinstance(lasted, (int, float)) else 0.0,
    )


def send_input(rundir: RunDir, agent: str, text: str, by: Operator) -> InputSent:
    """A message to a running agent that takes input (`input_format`): written to its stdin
    and logged with who sent it (`agent_input_sent`)."""
    by.require("operator", "sending an agent a message")
    request: InputRequest = _built(InputRequest, agent=agent, by=by.user, text=text)
    people_only("input", f"agent {agent}", rundir, request)
    data = send(str(rundir.socket), request)
    return InputSent(agent, int(data.get("attempt") or 0))


def send_keys(
    rundir: RunDir, agent: str, keys: str, by: Operator, client: str | None = None
) -> InputSent:
    """Keystrokes to a running terminal agent (`tty`), written as is (`"hello\\r"`, escapes
    such as `"\\x1b[A"` for the up arrow) and logged with who sent them (`agent_input_sent`,
    `raw`). `client` names the viewer that types: one typist at a time (EngineRefused, `busy`,
    while another one types)."""
    by.require("operator", "typing into an agent's terminal")
    request: InputRequest = _built(
        InputRequest, agent=agent, by=by.user, text=keys, raw=True, client=client
    )
    people_only("input", f"agent {agent}", rundir, request)
    data = send(str(rundir.socket), request)
    return InputSent(agent, int(data.get("attempt") or 0))


def resize(rundir: RunDir, agent: str, cols: int, rows: int, by: Operator) -> Resized:
    """A terminal agent's new size, as the person's view of it now is (it gets SIGWINCH)."""
    by.require("operator", "resizing an agent's terminal")
    request: ResizeRequest = _built(ResizeRequest, agent=agent, by=by.user, cols=cols, rows=rows)
    people_only("resize", f"agent {agent}", rundir, request)
    data = send(str(rundir.socket), request)
    return Resized(agent, int(data.get("attempt") or 0), cols, rows)


def answer(
    rundir: RunDir, agent: str, text: str, by: Operator, question_id: str | None = None
) -> Answered:
    """Answer the question `agent` waits on (the MCP tool `ask_human`). With `question_id`, only
    that question: if the agent asked another since, the engine refuses rather than answer it."""
    by.require("operator", "answering an agent")
    request: AnswerRequest = _built(
        AnswerRequest, agent=agent, by=by.user, text=text, question_id=question_id
    )
    people_only("answer", f"agent {agent}", rundir, request)
    data = send(str(rundir.socket), request)
    attempt = data.get("attempt")
    return Answered(
        str(data.get("agent")),
        attempt if isinstance(attempt, int) else 0,
        str(data.get("question_id")),
    )


def retry(rundir: RunDir, agent: str, by: Operator) -> Retried:
    """Give an ended `agent` another attempt: asked of the live engine, or by resuming the run's
    engine in the background when it has none (core/engine/runner.py retry_agent, which checks
    who asks with the same rule as guard.py)."""
    by.require("operator", "retrying an agent")
    from corral.core.agent.client import ControlError
    from corral.core.engine.runner import BackgroundStartFailed, retry_agent
    from corral.core.trust.authority import OperatorRefused

    try:
        done = retry_agent(rundir, agent, by.user)
    except OperatorRefused as exc:
        raise AgentRefused(str(exc)) from None
    except BackgroundStartFailed as exc:
        raise StartFailed(str(exc)) from None
    except ControlError as exc:
        raise EngineRefused(str(exc), exc.code) from None
    return Retried(done.agent, done.attempt, done.resumed_pid)


def break_lock(
    rundir: RunDir | None,
    lock: str,
    by: Operator,
    reason: str,
    token: int | None = None,
    *,
    socket: str | None = None,
) -> LockBroken:
    """Take a lease away from its holder. With `token`, only the lease the person was shown: if
    it changed hands since, the engine refuses rather than break someone else's. `socket`
    replaces the run's own (an agent's own run, from CORRAL_SOCKET)."""
    by.require("operator", "breaking a lock")
    path = socket or (str(rundir.socket) if rundir is not None else "")
    if not path:
        raise OperatorError("name the run whose lock to break")
    request: LockBreakRequest = _built(
        LockBreakRequest, lock=lock, by=by.user, reason=reason, expect_token=token
    )
    people_only("lock break", f"lock {lock}", rundir, request, socket=path)
    data = send(path, request)
    attempt, held = data.get("attempt"), data.get("token")
    return LockBroken(
        lock,
        str(data.get("agent")),
        attempt if isinstance(attempt, int) else None,
        held if isinstance(held, int) else None,
    )


def start_run(
    repo: Path,
    plan: Path,
    *,
    run_id: str | None = None,
    checked: Preflight | None = None,
    by: Operator | None = None,
) -> Started:
    """Check `plan` (unless `checked` already is its preflight) and start a new run of it in the
    background; the run id comes back typed. `by`: who asks, when a front end knows (the
    command line is the person at their own terminal)."""
    if by is not None:
        by.require("operator", "starting a run")
    from corral.core.runs.rundir import new_run_id, runs_root

    checked = checked or check_plan(repo, plan)
    run_id = run_id or new_run_id()
    rundir = RunDir(runs_root(checked.common_dir) / run_id)
    command = ["run", str(plan), "--run-id", run_id, "--quiet"]
    pid = _in_background(rundir, command, repo)
    return Started(run_id, pid, tuple(checked.warnings))


def check_plan(repo: Path, plan: Path) -> Preflight:
    """The plan loaded and checked against the repository (core/plan/preflight.py)."""
    from corral.core.plan.model import PlanError, load_plan
    from corral.core.plan.preflight import preflight

    try:
        return preflight(load_plan(plan), plan.resolve(), repo.resolve())
    except PlanError as exc:
        raise StartFailed(str(exc), invalid_plan=True) from None


def resume_in_background(rundir: RunDir, retry: list[str] | None = None) -> Started:
    """Carry on a run whose engine died or was stopped, retrying `retry`, in the background;
    refused while its engine lives."""
    from corral.core.engine.runner import EngineBusy
    from corral.core.runs.engine_lock import engine_is_live

    retry = retry or []
    if retry:
        people_only("retry", f"agent {', '.join(retry)}", rundir)
    if engine_is_live(rundir.check()):
        raise EngineRefused(str(EngineBusy(rundir.run_id)))
    command = ["run", "--resume", rundir.run_id, "--quiet", *[f"--retry={a}" for a in retry]]
    # the run's own common dir: the caller's working directory may be anywhere
    return Started(rundir.run_id, _in_background(rundir, command, rundir.path.parents[2]))


def rerun(
    rundir: RunDir,
    agents: list[str],
    *,
    run_id: str | None = None,
    by: Operator | None = None,
) -> Started:
    """Start, in the background, a new run of `agents` that `rundir`'s merge left out, on its
    integration commit (core/runs/rerun.py says what is kept and the landing order). Checked
    here first, so a refusal (not finished, not left out, rejected, unknown agent) comes back
    at once as an OperatorError; the new engine checks it again as it starts. `by`: who asks,
    when a front end knows (as `start_run`)."""
    from corral.core.runs.rerun import RerunRefused, prepare_rerun
    from corral.core.runs.rundir import new_run_id

    if by is not None:
        by.require("operator", "re-running an agent")
    people_only("rerun", f"agent {', '.join(agents)}", rundir)
    try:
        prepare_rerun(rundir, agents)
    except RerunRefused as exc:
        raise OperatorError(str(exc)) from None
    run_id = run_id or new_run_id()
    new = RunDir(rundir.path.parent / run_id)
    command = ["run", "--rerun-of", rundir.run_id, "--run-id", run_id, "--quiet"]
    command += [f"--rerun-agent={agent}" for agent in dict.fromkeys(agents)]
    return Started(run_id, _in_background(new, command, rundir.path.parents[2]))


def _in_background(rundir: RunDir, command: list[str], repo: Path | None) -> int:
    from corral.core.engine.runner import BackgroundStartFailed, start_in_background

    try:
        return start_in_background(rundir, command, repo=repo)
    except BackgroundStartFailed as exc:
        raise StartFailed(str(exc)) from None
