"""`corral demo --agents`: the AI demo, real agent CLIs against corral's scripted model server.

The plan is `examples/agents.toml`; each agent's script is `examples/agents/<agent>.json`, whose
`{worktree}` and `{output}` are filled in with where that agent's first attempt will work, so
the scripted model can name absolute paths as a real model would. The servers
(tests/agents/model_server.py, part of the test suite, so the demo needs a checkout) run in
this process's threads: nothing of them outlives the demo. The CLIs are taken from PATH, or
from the cache `tests/agents/install_clis.sh` fills (`~/.cache/corral/agents`, as in CI).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from corral.core.cli.demo import EXAMPLES, make_sample_repo
from corral.core.errors import InputError

SCRIPTS = EXAMPLES / "agents"
SERVED = {
    # agent id: (the variable its endpoint is read from, the suffix its preset wants)
    "gemini-docs": ("DEMO_GEMINI_URL", ""),
    "codex-tests": ("DEMO_OPENAI_URL", "/v1"),
    "claude-audit": ("DEMO_ANTHROPIC_URL", ""),
}
INSTALL = "tests/agents/install_clis.sh ~/.cache/corral/agents"


def agents_plan() -> Path:
    return EXAMPLES / "agents.toml"


def cli_cache() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("CORRAL_AGENT_CLIS") or cache / "corral" / "agents")


def with_cached_clis(path: str) -> str:
    """PATH with the CLI cache's programs first, where the cache has them."""
    cache = cli_cache()
    found = [
        d for d in (cache / "npm" / "node_modules" / ".bin", cache / "aider" / "bin") if d.is_dir()
    ]
    return os.pathsep.join([*map(str, found), path])


def agents_repo() -> Path:
    """A fresh copy of the sample, under the user's cache: Gemini CLI ignores its settings
    overlay below a directory others may write, such as /tmp."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "corral" / "demo"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return make_sample_repo(Path(tempfile.mkdtemp(prefix="ai-", dir=root)) / "inventory")


def _server_module() -> Any:
    """The scripted model server of the checkout's test suite."""
    checkout = str(EXAMPLES.parent)
    if checkout not in sys.path:
        sys.path.insert(0, checkout)
    try:
        return importlib.import_module("tests.agents.model_server")
    except ImportError as exc:
        raise InputError(
            f"the AI demo needs a checkout of corral (its scripted model server is "
            f"tests/agents/model_server.py): {exc}"
        ) from None


def script_text(agent: str, worktree: Path, output: Path) -> str:
    """The agent's script with its paths filled in (JSON-escaped)."""
    text = (SCRIPTS / f"{agent}.json").read_text(encoding="utf-8")
    for name, value in (("{worktree}", worktree), ("{output}", output)):
        text = text.replace(name, json.dumps(str(value))[1:-1])
    return text


@contextmanager
def model_servers(repo: Path, run_id: str, log: Path | None = None) -> Iterator[dict[str, str]]:
    """One scripted server per agent, serving while the block runs; yields the variables that
    point the plan's agents at them."""
    from corral.core.runs.rundir import RunDir, runs_root
    from corral.worktrees.workspace import workspace_path

    servers = _server_module()
    script_model = importlib.import_module("tests.agents.script").Script
    common = repo / ".git"
    rundir = RunDir(runs_root(common) / run_id)
    env = {"DEMO_API_KEY": "demo-no-key"}
    with ExitStack() as stack:
        for agent, (variable, suffix) in SERVED.items():
            worktree = workspace_path(common / "corral" / "worktrees", run_id, agent, 1)
            text = script_text(agent, worktree, rundir.output_dir(agent, 1))
            script = script_model.model_validate_json(text)
            server = stack.enter_context(servers.running(script, log=log))
            env[variable] = server.url + suffix
        yield env


PROGRAMS = {"gemini": "Gemini CLI", "codex": "Codex", "claude": "Claude Code"}


def check() -> None:
    """What the demo needs before anything starts: its scripts, the checkout's model server and
    the three CLIs (on PATH, or in the cache: PATH is extended with it here)."""
    import shutil

    missing = [a for a in SERVED if not (SCRIPTS / f"{a}.json").is_file()]
    if missing:
        raise InputError(f"the AI demo's scripts are missing: {', '.join(missing)} in {SCRIPTS}")
    _server_module()
    os.environ["PATH"] = with_cached_clis(os.environ.get("PATH", os.defpath))
    absent = [name for program, name in PROGRAMS.items() if shutil.which(program) is None]
    if absent:
        raise InputError(
            f"the AI demo runs {', '.join(PROGRAMS.values())}; not found: {', '.join(absent)}. "
            f"Install all five agent CLIs into corral's cache with `{INSTALL}` "
            "(about 1.8 GB), or each with its preset's install command (`corral presets`)"
        )
