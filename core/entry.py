"""The `corral` console script: agent-side hot paths first, everything else through `cli`.

Agents call `corral heartbeat` often, so it gets a parser of its own (core/agent/heartbeat_command.py)
and never loads the full command line (every subcommand's parser) or anything heavier than json
and socket. Nothing imports this module back: it is the top of the layers (docs/architecture.md).
"""

from __future__ import annotations

import sys


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["heartbeat"]:
        from corral.core.agent.heartbeat_command import heartbeat_command

        return heartbeat_command(argv[1:])
    from corral.core.cli.main import main as full

    return full(argv, exit_hard=True)


if __name__ == "__main__":
    sys.exit(main())
