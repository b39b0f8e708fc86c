"""Running a real agent CLI headless against the scripted model: where the CLIs are installed,
a clean environment (a temporary HOME, no key or config of this machine), and one run.

The CLIs live in a cache outside the repository that `tests/agents/install_clis.sh` fills:
`$CORRAL_AGENT_CLIS`, by default `~/.cache/corral/agents` (npm packages under `npm/`, Aider in
its own venv under `aider/`). A test of a CLI that is not there is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import GIT_ENV

CACHE = Path(os.environ.get("CORRAL_AGENT_CLIS", Path.home() / ".cache" / "corral" / "agents"))
BINARIES = {
    "claude": CACHE / "npm" / "node_modules" / ".bin" / "claude",
    "codex": CACHE / "npm" / "node_modules" / ".bin" / "codex",
    "gemini": CACHE / "npm" / "node_modules" / ".bin" / "gemini",
    "opencode": CACHE / "npm" / "node_modules" / ".bin" / "opencode",
    "aider": CACHE / "aider" / "bin" / "aider",
}
SAMPLES = os.environ.get("CORRAL_AGENT_SAMPLES")
"""When set, each run's stdout is also written there (how tests/agents/samples/ was made)."""


def require(name: str) -> Path:
    """The CLI's executable, or skip the test: the cache is installed by install_clis.sh."""
    binary = BINARIES[name]
    if not binary.exists():
        if os.environ.get("CORRAL_REQUIRE_AGENT_CLIS") == "1":  # CI installs them: never skip there
            pytest.fail(f"{name} is missing from the agent CLI cache {CACHE}")
        pytest.skip(
            f"{name} is not installed in the agent CLI cache {CACHE} "
            f"(run tests/agents/install_clis.sh {CACHE}, or set CORRAL_AGENT_CLIS)"
        )
    return binary


@dataclass(frozen=True)
class Workspace:
    """A temporary repository to work in, and a HOME and TMPDIR of its own."""

    repo: Path
    home: Path
    tmp: Path

    def env(self, **extra: str) -> dict[str, str]:
        """Nothing of this machine's environment but PATH: no keys, no config, no proxies.

        TMPDIR is not an ancestor of HOME: Codex refuses to set up its sandbox helper under
        the temporary directory, and its workspace-write sandbox then cannot run.
        """
        path = os.pathsep.join([str(BINARIES["claude"].parent), os.environ.get("PATH", "")])
        return {
            "PATH": path,
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "NO_COLOR": "1",
            **GIT_ENV,
            **extra,
        }


def workspace(root: Path, repo: Path) -> Workspace:
    home, tmp = root / "home", root / "tmp"
    home.mkdir()
    tmp.mkdir()
    return Workspace(repo=repo, home=home, tmp=tmp)


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def explain(self) -> str:
        head = f"exit {self.returncode} after {self.seconds:.1f}s"
        return f"{head}\n--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"


def run(
    name: str, argv: list[str], space: Workspace, env: dict[str, str], timeout: float = 150
) -> Run:
    """Run one CLI to the end with stdin closed (Codex waits on an open stdin)."""
    started = time.monotonic()
    done = subprocess.run(
        argv,
        cwd=space.repo,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    result = Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
    if SAMPLES:
        Path(SAMPLES).mkdir(parents=True, exist_ok=True)
        suffix = "txt" if name == "aider" else "jsonl"
        (Path(SAMPLES) / f"{name}.{suffix}").write_text(done.stdout, encoding="utf-8")
    return result


def json_lines(text: str) -> list[dict[str, object]]:
    """The JSON objects of a JSON-lines stream (lines that are not JSON are left out)."""
    events = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            events.append(value)
    return events
