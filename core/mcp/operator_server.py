"""`corral mcp serve`: a person's front end over MCP (stdio), for a chat assistant or CI.

Every tool calls the operator API (core/operator/), like the command line and the console, so
the rules are the same: an assistant started inside an agent is refused (T1) as `corral kill`
would be. Approve and reject are offered only when the server was started naming a reviewer
principal (`--reviewer NAME`, or CORRAL_MCP_REVIEWER): the decision is recorded as that
principal's, through this server and this OS user, bound to the report's sha256 the caller was
shown, and the plan's `require_distinct_reviewer` applies as for `corral review`.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from corral.core.errors import CorralError
from corral.core.operator import actions, decisions, reading
from corral.core.operator.identity import Operator
from corral.core.runs.rundir import RunDir, find_run
from corral.core.trust.inert import inert

REVIEWER_ENV = "CORRAL_MCP_REVIEWER"
TAIL_LIMIT = 64 * 1024
REPORT_LIMIT = 32 * 1024


def reviewer_operator(principal: str) -> Operator:
    """The identity a decision through this server is recorded with."""
    user = getpass.getuser()
    return Operator(user=user, reviewer=f"{principal} (via corral mcp serve as {user})")


class OperatorTools:
    """What the tools do, on one repository's runs (plain methods, tested without the SDK)."""

    def __init__(self, common_dir: Path, reviewer: str | None) -> None:
        self.common_dir = common_dir
        self.operator = Operator.current()
        self.reviewer = reviewer_operator(reviewer) if reviewer else None

    def _run(self, run: str | None) -> RunDir:
        return find_run(self.common_dir, run or None)

    def runs(self) -> list[dict[str, Any]]:
        return [summary.model_dump(mode="json") for summary in reading.list_runs(self.common_dir)]

    def status(self, run: str | None) -> dict[str, Any]:
        state = reading.status(self._run(run))
        agents = {
            agent.id: {
                "state": agent.state,
                "attempt": agent.attempt,
                "reason": inert(agent.reason),
                "message": inert(agent.last_heartbeat.message if agent.last_heartbeat else None),
                "question": None
                if agent.question is None
                else {
                    "question_id": agent.question.question_id,
                    "question": inert(agent.question.question, lines=True),
                    "choices": [inert(choice) for choice in agent.question.choices],
                },
            }
            for agent in state.agents.values()
        }
        return {
            "run_id": state.run_id,
            "status": state.status,
            "verdict": state.verdict,
            "counts": state.counts(),
            "agents": agents,
            "conflicts": [
                {"agents": c.agents, "files": [f.path for f in c.files]}
                for c in state.conflicts.values()
            ],
        }

    def output_tail(self, run: str | None, agent: str, lines: int) -> dict[str, Any]:
        rundir = self._run(run)
        found = reading.output_log(reading.status(rundir), rundir, agent)
        try:
            with found.path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - TAIL_LIMIT))
                data = handle.read()
        except FileNotFoundError:
            data = b""
        text = inert(data.decode("utf-8", "replace"), lines=True)
        return {
            "agent": agent,
            "attempt": found.attempt,
            "tail": "\n".join(text.splitlines()[-lines:]),
        }

    def report_summary(self, run: str | None) -> dict[str, Any]:
        rundir = self._run(run)
        state = reading.status(rundir)
        if state.report is None:
            raise CorralError(f"run {rundir.run_id} has no report yet ({state.status})")
        markdown = rundir.path / "report.md"
        text = markdown.read_text(errors="replace")[:REPORT_LIMIT] if markdown.exists() else ""
        return {
            "run_id": rundir.run_id,
            "verdict": state.verdict,
            "verdict_reason": state.verdict_reason,
            "findings": state.report.findings,
            "conflicts": state.report.conflicts,
            "report_sha256": state.report.sha256,
            "review": None if state.review is None else state.review.model_dump(mode="json"),
            "report_md": inert(text, lines=True),
        }

    def kill(self, run: str | None, agent: str, reason: str) -> dict[str, Any]:
        killed = actions.kill(self._run(run), agent, self.operator, reason)
        return {"agent": killed.agent, "was": killed.was}

    def retry(self, run: str | None, agent: str) -> dict[str, Any]:
        retried = actions.retry(self._run(run), agent, self.operator)
        return {
            "agent": retried.agent,
            "attempt": retried.attempt,
            "resumed": retried.resumed_pid is not None,
        }

    def rerun(self, run: str | None, agents: list[str]) -> dict[str, Any]:
        started = actions.rerun(self._run(run), agents, by=self.operator)
        return {"run": started.run_id, "agents": agents, "engine_pid": started.pid}

    def answer(
        self, run: str | None, agent: str, text: str, question_id: str | None
    ) -> dict[str, Any]:
        done = actions.answer(self._run(run), agent, text, self.operator, question_id)
        return {"agent": done.agent, "attempt": done.attempt, "question_id": done.question_id}

    def _decider(self) -> Operator:
        if self.reviewer is None:
            raise CorralError(
                "approve and reject need a reviewer: start `corral mcp serve --reviewer NAME` "
                f"(or set {REVIEWER_ENV}) naming who decides"
            )
        return self.reviewer

    def approve(self, run: str | None, report_sha256: str) -> dict[str, Any]:
        done = decisions.approve(self._run(run), self._decider(), report_sha256)
        return {
            "decision": done.decision,
            "by": done.by,
            "landed": done.landed,
            "message": done.message,
        }

    def reject(self, run: str | None, reason: str, report_sha256: str) -> dict[str, Any]:
        done = decisions.reject(self._run(run), self._decider(), reason, report_sha256)
        return {"decision": done.decision, "by": done.by, "message": done.message}


RunArg = Annotated[str | None, Field(description="Run id or unique prefix (default: the latest).")]
AgentArg = Annotated[str, Field(description="The agent's id in the plan.")]


def _tool_call(call: Any) -> Any:
    try:
        return call()
    except CorralError as exc:  # OperatorError, a missing run: the reason, for the caller
        raise ToolError(str(exc)) from None


def build_server(tools: OperatorTools) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(
        "corral-operator",
        instructions="Watch and steer corral runs of this repository: list runs, read status, "
        "agent output and the report; kill, retry, answer an agent's question, re-run a left-out "
        "agent.",
        log_level="WARNING",
    )

    @server.tool()
    def runs() -> list[dict[str, Any]]:
        """Every run of the repository, newest first, with its status and agent counts."""
        return _tool_call(tools.runs)  # type: ignore[no-any-return]

    @server.tool()
    def status(run: RunArg = None) -> dict[str, Any]:
        """A run's state: each agent's state, attempt, last message and any question it waits
        on (state waiting_for_human: answer it with `answer`), and predicted conflicts."""
        return _tool_call(lambda: tools.status(run))  # type: ignore[no-any-return]

    @server.tool()
    def output_tail(
        agent: AgentArg,
        run: RunArg = None,
        lines: Annotated[int, Field(description="How many last lines.", ge=1, le=2000)] = 100,
    ) -> dict[str, Any]:
        """The last lines of an agent's output (its latest attempt), made safe to show."""
        return _tool_call(lambda: tools.output_tail(run, agent, lines))  # type: ignore[no-any-return]

    @server.tool()
    def report_summary(run: RunArg = None) -> dict[str, Any]:
        """A finished run's report: verdict, counts, the report's sha256 (pass it to approve or
        reject: the decision is bound to the report you read) and its Markdown."""
        return _tool_call(lambda: tools.report_summary(run))  # type: ignore[no-any-return]

    @server.tool()
    def kill(
        agent: AgentArg,
        run: RunArg = None,
        reason: Annotated[str, Field(description="Why, recorded with the kill.")] = "",
    ) -> dict[str, Any]:
        """Stop an agent: it ends cancelled and is not retried."""
        return _tool_call(lambda: tools.kill(run, agent, reason))  # type: ignore[no-any-return]

    @server.tool()
    def retry(agent: AgentArg, run: RunArg = None) -> dict[str, Any]:
        """Give an agent that ended another attempt (resumes the run's engine if none runs)."""
        return _tool_call(lambda: tools.retry(run, agent))  # type: ignore[no-any-return]

    @server.tool()
    def rerun(
        agents: Annotated[
            list[str],
            Field(
                description="Agents the run's merge left out (its report names them).", min_length=1
            ),
        ],
        run: RunArg = None,
    ) -> dict[str, Any]:
        """Redo agents a finished run left out (their branches conflicted) in a new run, in the
        background, that starts from the run's integration commit: it sees what merged. Approve
        the first run, then the new one lands on top."""
        return _tool_call(lambda: tools.rerun(run, agents))  # type: ignore[no-any-return]

    @server.tool()
    def answer(
        agent: AgentArg,
        text: Annotated[str, Field(description="The answer (one of its choices, if it gave any).")],
        run: RunArg = None,
        question_id: Annotated[
            str | None, Field(description="The question's id from status, to answer only it.")
        ] = None,
    ) -> dict[str, Any]:
        """Answer the question an agent waits on (state waiting_for_human)."""
        return _tool_call(lambda: tools.answer(run, agent, text, question_id))  # type: ignore[no-any-return]

    if tools.reviewer is not None:

        @server.tool()
        def approve(
            report_sha256: Annotated[str, Field(description="From report_summary.")],
            run: RunArg = None,
        ) -> dict[str, Any]:
            """Approve the report you read (its sha256); a coding run's result lands on the base
            branch. Recorded as the reviewer this server was started for."""
            return _tool_call(lambda: tools.approve(run, report_sha256))  # type: ignore[no-any-return]

        @server.tool()
        def reject(
            reason: Annotated[str, Field(description="What is wrong with the report.")],
            report_sha256: Annotated[str, Field(description="From report_summary.")],
            run: RunArg = None,
        ) -> dict[str, Any]:
            """Reject the report you read, with a reason; nothing lands."""
            return _tool_call(lambda: tools.reject(run, reason, report_sha256))  # type: ignore[no-any-return]

    return server


def serve_operator(common_dir: Path, reviewer: str | None) -> int:
    build_server(OperatorTools(common_dir, reviewer or os.environ.get(REVIEWER_ENV))).run("stdio")
    return 0
