"""What each agent tool does: one request on the attempt's control socket, with its identity.

The MCP server an agent's CLI starts (`corral mcp agent`) runs inside the attempt, so it has the
attempt's environment (CORRAL_SOCKET, CORRAL_AGENT_TOKEN, the marks) and reaches the engine the
way `corral heartbeat` does: every call is attributed to `agent#attempt` and fenced by the
token the engine checks. Kept apart from the SDK so the rules are plain functions (and the
bench can time the socket beside the MCP round trip). A refusal is a `ToolRefused` whose text
says what to change; the server turns it into an error result the model reads.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from corral.core.agent.client import AgentContext, ControlError
from corral.core.agent.lock_client import LockClient
from corral.core.atomic import write_atomic
from corral.core.errors import CorralError
from corral.core.findings.schema import (
    FINDINGS_FILE,
    MAX_FINDINGS,
    Finding,
    FindingsError,
    parse_findings_json,
    validation_problems,
)

ASK_TIMEOUT = 600.0
"""How long `ask_human` waits for a person by default."""
WAITING_OPS = frozenset({"lock_acquire", "ask_human"})
"""Requests the engine may hold open (a wait in line, a person's answer)."""
ANSWER_MARGIN = 10.0
"""The socket waits this much longer than the question, so the engine's own timeout answers."""


class ToolRefused(CorralError):
    """The tool could not do what was asked; the message says why and what to change."""


class Relay:
    """The tools of one attempt, over one kept connection to its engine."""

    def __init__(self, ctx: AgentContext, output_dir: str | None) -> None:
        self.ctx = ctx
        self.output_dir = Path(output_dir) if output_dir else None
        self.locks = LockClient(ctx.socket, ctx.agent, ctx.attempt, ctx.token)
        self.waiting: dict[str, LockClient] = {}
        """A kept connection for each request the engine may hold open (WAITING_OPS)."""
        self.held: dict[int, str] = {}
        """Lock name of each token this server was granted (so `put` needs only the token)."""

    @classmethod
    def from_env(cls) -> Relay:
        return cls(AgentContext.from_env("mcp agent"), os.environ.get("CORRAL_OUTPUT"))

    def close(self) -> None:
        self.locks.close()
        for client in self.waiting.values():
            client.close()

    def _call(self, op: str, wait_for: float | None = None, **fields: Any) -> dict[str, Any]:
        try:
            if op == "status":
                return self.locks.ask({"op": "status"}, wait_for)
            if op in WAITING_OPS:  # a call that may wait long has a connection of its own, so
                own = self.waiting.get(op)  # the other tools are not held up behind it
                if own is None:
                    own = self.waiting[op] = self.locks.sibling()
                return own.call(op, fields, wait_for)
            return self.locks.call(op, fields, wait_for)
        except ControlError as exc:
            raise ToolRefused(str(exc)) from None

    # -- tools ----------------------------------------------------------------------------------

    def heartbeat(self, progress: float | None, message: str | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if progress is not None:
            if not 0.0 <= progress <= 1.0:
                raise ToolRefused(f"progress {progress!r}: give a fraction from 0.0 to 1.0")
            fields["progress"] = float(progress)
        if message is not None:
            fields["message"] = message[:500]
        data = self._call("heartbeat", **fields)
        return {"ok": True, "seq": data.get("seq")}

    def lock_acquire(self, name: str, ttl: float, wait: float, reason: str) -> dict[str, Any]:
        request_id = secrets.token_hex(8)
        data = self._call(
            "lock_acquire",
            wait_for=wait + 10.0,
            lock=name,
            request_id=request_id,
            ttl=ttl,
            wait=wait,
            reason=reason[:200],
            pid=os.getpid(),
        )
        token = int(data["token"])
        self.held[token] = name
        return {
            "lock": name,
            "token": token,
            "ttl": data.get("ttl"),
            "expires_at": data.get("expires_at"),
        }

    def lock_renew(self, name: str, token: int, ttl: float | None) -> dict[str, Any]:
        fields: dict[str, Any] = {"lock": name, "fencing_token": token}
        if ttl is not None:
            fields["ttl"] = ttl
        data = self._call("lock_renew", **fields)
        return {
            "lock": name,
            "token": token,
            "ttl": data.get("ttl"),
            "expires_at": data.get("expires_at"),
        }

    def lock_release(self, name: str, token: int) -> dict[str, Any]:
        data = self._call("lock_release", lock=name, fencing_token=token)
        self.held.pop(token, None)
        return {"lock": name, "token": token, "released": bool(data.get("released"))}

    def put(self, path: str, token: int, content: str, lock: str | None) -> dict[str, Any]:
        name = lock or self.held.get(token)
        if name is None:
            raise ToolRefused(
                f"token {token} was not granted to this server; pass the lock's name too"
            )
        data = content.encode("utf-8")
        self._call(
            "put",
            lock=name,
            fencing_token=token,
            path=path,
            data=base64.b64encode(data).decode("ascii"),
        )
        return {"path": path, "bytes": len(data), "lock": name, "token": token}

    def report_finding(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Validate one finding with the findings schema and add it to the attempt's
        $CORRAL_OUTPUT/findings.json (replaced whole, under a lock), which the engine merges
        into the report like any findings file the agent writes."""
        if self.output_dir is None:
            raise ToolRefused("CORRAL_OUTPUT is not set: this agent has no output directory")
        given = {key: value for key, value in fields.items() if value is not None}
        given.setdefault("id", "mcp-" + secrets.token_hex(4))
        try:
            finding = Finding.model_validate(given)
        except ValidationError as exc:
            problems = "; ".join(str(problem) for problem in validation_problems("finding", exc))
            raise ToolRefused(f"refused: {problems}; correct it and report it again") from None
        with self._findings_locked() as target:
            current = self._current_findings(target)
            if any(known.get("id") == finding.id for known in current):
                raise ToolRefused(
                    f"refused: a finding with id {finding.id!r} was already reported; "
                    "give another id"
                )
            if len(current) >= MAX_FINDINGS:
                raise ToolRefused(f"refused: the limit of {MAX_FINDINGS} findings is reached")
            current.append(finding.model_dump(mode="json", exclude_none=True))
            body = json.dumps({"version": 1, "findings": current}, indent=2) + "\n"
            write_atomic(target, body.encode())
        return {"id": finding.id, "reported": True, "findings": len(current)}

    @contextlib.contextmanager
    def _findings_locked(self) -> Iterator[Path]:
        assert self.output_dir is not None
        lock_path = self.output_dir / ".findings.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # two MCP servers of one attempt (subagents)
            yield self.output_dir / FINDINGS_FILE
        finally:
            os.close(fd)

    @staticmethod
    def _current_findings(target: Path) -> list[dict[str, Any]]:
        if not target.exists():
            return []
        try:
            parse_findings_json(target.name, target.read_bytes())
        except FindingsError as exc:
            raise ToolRefused(
                f"refused: {target.name} in CORRAL_OUTPUT is invalid ({exc}); fix or remove it"
            ) from None
        found = json.loads(target.read_text()).get("findings")
        return list(found) if isinstance(found, list) else []

    def my_conflicts(self) -> dict[str, Any]:
        """The live conflict matrix's pairs that involve this agent, from the engine's state."""
        data = self._call("status")
        me = self.ctx.agent
        pairs = []
        for conflict in (data.get("conflicts") or {}).values():
            agents = list(conflict.get("agents") or [])
            if me not in agents:
                continue
            others = [agent for agent in agents if agent != me]
            pairs.append(
                {
                    "with": others[0] if others else me,
                    "files": conflict.get("files") or [],
                    "predicted": bool(conflict.get("predicted")),
                    "actual": bool(conflict.get("actual")),
                }
            )
        return {"agent": me, "conflicts": pairs}

    def ask_human(
        self, question: str, choices: list[str] | None, timeout: float | None
    ) -> dict[str, Any]:
        wait = ASK_TIMEOUT if timeout is None else timeout
        return self._call(
            "ask_human",
            wait_for=wait + ANSWER_MARGIN,
            question_id=secrets.token_hex(8),
            question=question,
            choices=list(choices or []),
            timeout=wait,
        )
