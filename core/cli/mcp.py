"""`corral mcp agent` (inside an agent: corral's tools for its CLI) and `corral mcp serve` (for
a person's assistant or CI), both MCP over stdio. The SDK is imported only when one runs."""

from __future__ import annotations

import argparse

from corral.core.cli.common import common_dir


def add_mcp_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mcp = sub.add_parser("mcp", help="corral's MCP servers (stdio)")
    verbs = mcp.add_subparsers(dest="mcp_command", metavar="VERB", required=True)
    verbs.add_parser(
        "agent",
        help="(inside an agent) locks, heartbeats, findings, conflicts and questions as MCP "
        "tools, for the agent's CLI to start",
    )
    serve = verbs.add_parser(
        "serve", help="runs, status, output, report, kill, retry and answer as MCP tools"
    )
    serve.add_argument(
        "--reviewer",
        metavar="NAME",
        default=None,
        help="offer approve and reject, recorded as this reviewer's "
        "(default: $CORRAL_MCP_REVIEWER; without one, no decision tools)",
    )


def cmd_mcp(args: argparse.Namespace) -> int:
    if args.mcp_command == "agent":
        from corral.core.mcp.agent_server import serve_agent

        return serve_agent()
    from corral.core.mcp.operator_server import serve_operator

    return serve_operator(common_dir(args), args.reviewer)
