"""`corral mcp agent`: corral's coordination as MCP tools for the agent CLI an attempt runs.

The CLI starts this server inside the attempt over stdio, so it inherits the attempt's
environment and reaches the engine on the control socket exactly as `corral heartbeat` does
(docs/architecture.md, "MCP"): inside the bubblewrap sandbox (the socket is mounted at
/run/corral/control.sock), later on remote hosts (the socket is forwarded), with no port to
open. Each tool is one request (relay.py); the descriptions tell a model when to use each.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from corral.core.findings.schema import Severity
from corral.core.mcp.relay import ASK_TIMEOUT, Relay, ToolRefused

SERVER_NAME = "corral"
INSTRUCTIONS = (
    "corral runs you as one of several agents working on the same repository at once. Take a "
    "lock (lock_acquire) before touching anything shared with the others, write shared files "
    "with put and the lock's token, report audit findings with report_finding, check "
    "my_conflicts before and after large edits, send heartbeat while you work, and ask_human "
    "only when you cannot go on without a person's decision."
)


def _refusal(exc: ToolRefused) -> ToolError:
    return ToolError(str(exc))


def build_server(relay: Relay) -> MCPServer[Any]:
    """The agent tools over `relay` (one attempt's identity)."""
    server: MCPServer[Any] = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool()
    def heartbeat(
        progress: Annotated[
            float | None, Field(description="How far along you are, 0.0 to 1.0.", ge=0, le=1)
        ] = None,
        message: Annotated[
            str | None, Field(description="What you are doing now, one short line.")
        ] = None,
    ) -> dict[str, Any]:
        """Tell corral you are alive and how far along you are. Call it every few minutes
        during long work (a long build, tests, a big refactor), or corral may decide you are
        hung and stop you. The message is shown to the people watching the run."""
        try:
            return relay.heartbeat(progress, message)
        except ToolRefused as exc:
            raise _refusal(exc) from None

    @server.tool()
    def lock_acquire(
        name: Annotated[
            str,
            Field(description="The shared resource, e.g. `db`, `port-8080`, `shared/results`."),
        ],
        ttl: Annotated[
            float, Field(description="Lease length in seconds; renew before it ends.", gt=0)
        ] = 120.0,
        wait: Annotated[
            float, Field(description="Seconds to wait in line if another agent holds it.", ge=0)
        ] = 60.0,
        reason: Annotated[str, Field(description="Why you need it, shown to others.")] = "",
    ) -> dict[str, Any]:
        """Take an exclusive lease on a resource other agents also use (a database, a port, a
        shared file, a service) before you touch it. Returns a fencing `token`: pass it to
        `put`, `lock_renew` and `lock_release`. Waits in line up to `wait` seconds; fails if the
        resource stays held. The lease ends after `ttl` seconds unless renewed with
        `lock_renew` (every ttl/3); release it with `lock_release` as soon as you are done."""
        try:
            return relay.lock_acquire(name, ttl, wait, reason)
        except ToolRefused as exc:
            raise _refusal(exc) from None

    @server.tool()
    def lock_renew(
        name: Annotated[str, Field(description="The lock's name.")],
        token: Annotated[int, Field(description="The token lock_acquire gave you.", ge=1)],
        ttl: Annotated[
            float | None, Field(description="A new lease length in seconds.", gt=0)
        ] = None,
    ) -> dict[str, Any]:
        """Extend a lease you hold by its TTL from now. Call it before the lease ends when your
        work under the lock takes longer than its ttl. If it fails the lease is lost: stop
        using the resource and take the lock again."""
        try:
            return relay.lock_renew(name, token, ttl)
        except ToolRefused as exc:
            raise _refusal(exc) from None

    @server.tool()
    def lock_release(
        name: Annotated[str, Field(description="The lock's name.")],
        token: Annotated[int, Field(description="The token lock_acquire gave you.", ge=1)],
    ) -> dict[str, Any]:
        """Release a lease as soon as you no longer need the resource, so the next agent in
        line gets it."""
        try:
            return relay.lock_release(name, token)
        except ToolRefused as exc:
            raise _refusal(exc) from None

    @server.tool()
    def put(
        path: Annotated[str, Field(description="Relative path under the run's shared directory.")],
        token: Annotated[int, Field(description="The token of the lease you hold.", ge=1)],
        content: Annotated[str, Field(description="The file's whole new content (text).")],
        lock: Annotated[
            str | None, Field(description="The lock's name (default: the token's lock).")
        ] = None,
    ) -> dict[str, Any]:
        """Replace a file in the run's shared directory ($CORRAL_SHARED), fenced by your lease:
        corral refuses the write if your token is no longer the newest for its lock (your lease
        expired and someone else took it), so a stale writer cannot overwrite newer work."""
        try:
            return relay.put(path, token, content, lock)
        except ToolRefused as exc:
            raise _refusal(exc) from None

    @server.tool()
    def report_finding(
        severity: Annotated[Severity, Field(description="critical, high, medium, low or info.")],
        title: Annotated[str, Field(description="One line saying what is wrong.")],
        file: Annotated[
            str | None, Field(description="Path relative to the repository root.")
        ] = None,
        line: Annotated[int | None, Field(description="1-based line in `file`.", ge=1)] = None,
        asset: Annotated[
            str | None, Field(description="What it is about when it is not a file.")
        ] = None,
        detail: Annotated[str, Field(description="Evidence and explanation.")] = "",
        recommendation: Annotated[str, Field(description="How to fix it.")] = "",
        id: Annotated[
            str | None, Field(description="Your own unique id for it (default: generated).")
        ] = None,
        rule: Annotated[str | None, Field(description="The check or rule id, if any.")] = None,
        tool: Annotated[str, Field(description="The tool or method that found it.")] = "",
    ) -> dict[str, Any]:
        """Report one audit finding (a bug, vulnerability, risk) in corral's findings schema; it
        goes into the run's report. Call it once per finding, as you find them. A finding that
        does not fit the schema (no file or asset, an absolute or `../` path, several lines in
        the title) is refused with the reason: correct it and call again."""
        fields = {
            "id": id,
            "severity": severity,
            "title": title,
            "file": file,
            "line": line,
            "asset": asset,
            "detail": detail,
            "recommendation": recommendation,
            "rule": rule,
            "tool": tool,
        }
        try:
            return relay.report_finding(fields)
        except ToolRefused as exc:
            raise _refusal(exc) from None

    @server.tool()
    def my_conflicts() -> dict[str, Any]:
        """The other agents whose current edits collide with yours (trial merges corral runs
        while you work), with the files. Check it before and after large edits; when a pair
        shows up, keep out of those files or coordinate through a lock."""
        try:
            return relay.my_conflicts()
        except ToolRefused as exc:
            raise _refusal(exc) from None

    @server.tool()
    def ask_human(
        question: Annotated[str, Field(description="The question, with what you need decided.")],
        choices: Annotated[
            list[str] | None, Field(description="The answers to choose from, if it is a choice.")
        ] = None,
        timeout: Annotated[
            float, Field(description="Seconds to wait for the answer.", gt=0)
        ] = ASK_TIMEOUT,
    ) -> dict[str, Any]:
        """Ask the person watching the run a question and wait for the answer. Use it only when
        you cannot go on without a decision you must not make alone (a destructive step, an
        ambiguous requirement, a credential you lack). Returns `answered` and `answer`; if no
        one answers within `timeout` seconds, `answered` is false: then decide safely alone."""
        try:
            return relay.ask_human(question, choices, timeout)
        except ToolRefused as exc:
            raise _refusal(exc) from None

    return server


def serve_agent() -> int:
    """Run the agent tools over stdio until the CLI closes them (NotInAgent outside corral)."""
    relay = Relay.from_env()
    try:
        build_server(relay).run("stdio")
    finally:
        relay.close()
    return 0
