"""Orchestration overhead: N agents that each sleep S seconds, all allowed at once.

Prints wall time / S (1.0 would be free orchestration; the target is under 1.5) for 50 and
200 agents. Usage: python bench/bench_engine.py [--agents 50 200] [--sleep 2]
"""

from __future__ import annotations

import argparse
import compileall
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@corral.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@corral.invalid",
}


def make_repo(path: Path, files: int) -> None:
    path.mkdir(parents=True)
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    for i in range(files):
        sub = path / f"pkg{i % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"mod{i}.py").write_text(f"VALUE_{i} = {i}\n" * 20)
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", "bench"], check=True, env=env)


def run_once(agents: int, sleep: float, files: int) -> tuple[float, str]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        repo = Path(tmp) / "repo"
        make_repo(repo, files)
        plan = Path(tmp) / "plan.toml"
        body = f'[run]\nname = "bench"\nmax_parallel = {agents}\n\n'
        for i in range(agents):
            body += f'[[agent]]\nid = "s{i}"\ncommand = ["sleep", "{sleep}"]\n\n'
        plan.write_text(body)
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "corral.core.cli", "run", str(plan), "--quiet"],
            cwd=repo,
            capture_output=True,
            text=True,
            env={**os.environ, **GIT_ENV},
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"run failed:\n{result.stdout}\n{result.stderr}")
        return wall, result.stdout.splitlines()[0] if result.stdout else ""


def compile_sources() -> None:
    """What `make compile` does: an installed corral has bytecode, so the figure should too."""
    root = Path(__file__).resolve().parent.parent
    for package in ("core", "worktrees", "tui"):
        compileall.compile_dir(root / package, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--files", type=int, default=100, help="files in the bench repository")
    args = parser.parse_args()
    compile_sources()
    print(f"{'agents':>7} {'sleep':>6} {'wall':>8} {'wall/sleep':>11}")
    for agents in args.agents:
        wall, _ = run_once(agents, args.sleep, args.files)
        print(f"{agents:>7} {args.sleep:>5.1f}s {wall:>7.2f}s {wall / args.sleep:>11.2f}")


if __name__ == "__main__":
    main()
