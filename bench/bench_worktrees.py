"""How much corral's worktree creation costs next to plain `git worktree add`.

    python bench/bench_worktrees.py --files 2000 --agents 20

Builds a repository like a real project (about 2,000 source files, 25 MiB) in a temporary
directory, then times, in seconds per worktree:
  (a) a plain sequential `git worktree add` loop,
  (b) `create_workspace` called sequentially,
  (c) `create_workspace` from 2 worker threads, the way the engine calls it,
and the ways to fill a `--no-checkout` worktree, so the fastest stays the one corral uses.
The machines are noisy: compare the ratios of one run, not figures across runs.
Everything is created in the temporary directory and removed at the end.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from scratch import git

from corral.worktrees.safety import safe_git_env, static_options
from corral.worktrees.workspace import POPULATE_COMMAND, create_workspace, default_root

POPULATE_METHODS: dict[str, tuple[str, ...]] = {
    "read-tree -u --reset HEAD": ("read-tree", "-u", "--reset", "HEAD"),
    "reset --hard -q": ("reset", "--hard", "-q"),
    "checkout -f -q HEAD": ("checkout", "-f", "-q", "HEAD"),
}


def build_repo(path: Path, files: int, total_mib: float, seed: int = 7) -> Path:
    """Source-like text files of varied size across nested packages, in one commit."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz_"
    words = ["".join(rng.choices(alphabet, k=rng.randint(2, 10))) for _ in range(4000)]
    mean = total_mib * 1024 * 1024 / files
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for index in range(files):
        folder = path / f"pkg{index % 40}" / f"mod{index % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        target = int(rng.uniform(0.2, 1.8) * mean)
        lines: list[str] = []
        size = 0
        while size < target:
            line = "    " + " ".join(rng.choices(words, k=rng.randint(3, 12))) + "\n"
            lines.append(line)
            size += len(line)
        (folder / f"file{index}.py").write_text("".join(lines))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "bench corpus")
    return path


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def plain_add(repo: Path, path: Path, branch: str) -> None:
    git(repo, "worktree", "add", "-q", "-b", branch, str(path), "HEAD")


def populate_with(repo: Path, path: Path, branch: str, method: tuple[str, ...]) -> None:
    """The same options create_workspace uses, so only the fill command differs."""
    options = static_options()
    env = safe_git_env()
    meta = ["worktree", "add", "--no-checkout", "--lock", "-b", branch, str(path), "HEAD"]
    subprocess.run(
        ["git", "-C", str(repo), *options, *meta], check=True, capture_output=True, env=env
    )
    subprocess.run(
        ["git", "-C", str(path), *options, *method], check=True, capture_output=True, env=env
    )


def run(files: int, agents: int, total_mib: float, rounds: int) -> int:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        base = Path(tmp)
        print(f"building a repository of {files} files, {total_mib:g} MiB ...", flush=True)
        repo = build_repo(base / "repo", files, total_mib)
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        root = default_root(repo)
        plain_root = base / "plain"
        plain_add(repo, plain_root / "warmup", "bench/warmup")  # objects into the page cache

        plain = [
            timed(partial(plain_add, repo, plain_root / f"p{i}", f"bench/plain/{i}"))
            for i in range(agents)
        ]
        sequential = [
            timed(partial(create_workspace, repo, root, "seq", f"agent{i}", 1, commit))
            for i in range(agents)
        ]
        with ThreadPoolExecutor(max_workers=2) as pool:
            start = time.perf_counter()
            list(
                pool.map(
                    lambda i: create_workspace(repo, root, "par", f"agent{i}", 1, commit),
                    range(agents),
                )
            )
            parallel_total = time.perf_counter() - start

        # Fill methods, interleaved round by round so drift in the machine hits all alike.
        fills: dict[str, list[float]] = {name: [] for name in POPULATE_METHODS}
        for round_no in range(rounds):
            for index, (name, method) in enumerate(POPULATE_METHODS.items()):
                path = base / "fill" / f"m{index}-{round_no}"
                branch = f"bench/fill/{index}/{round_no}"
                fills[name].append(timed(partial(populate_with, repo, path, branch, method)))

        plain_each = statistics.median(plain)
        seq_each = statistics.median(sequential)
        par_each = parallel_total / agents
        print()
        print(f"{'method':<44}{'s/worktree':>12}{'total s':>10}")
        print(f"{'(a) git worktree add, sequential':<44}{plain_each:>12.3f}{sum(plain):>10.2f}")
        print(f"{'(b) create_workspace, sequential':<44}{seq_each:>12.3f}{sum(sequential):>10.2f}")
        print(f"{'(c) create_workspace, 2 threads':<44}{par_each:>12.3f}{parallel_total:>10.2f}")
        print()
        print(f"ratio corral/plain: sequential {seq_each / plain_each:.2f}, ", end="")
        print(f"2 threads {par_each / plain_each:.2f} (target under 1.3)")
        print()
        print(f"fill a --no-checkout worktree (median of {rounds}, metadata step included):")
        for name, values in sorted(fills.items(), key=lambda item: statistics.median(item[1])):
            used = " <- corral" if POPULATE_METHODS[name] == POPULATE_COMMAND else ""
            print(f"  {name:<40}{statistics.median(values):>12.3f}{used}")
        print("(medians per worktree; wall time / count for the threaded run)")
        shutil.rmtree(root.parent, ignore_errors=True)  # worktrees live inside the temp repo anyway
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=2000, help="files in the repository")
    parser.add_argument("--agents", type=int, default=20, help="worktrees per measured method")
    parser.add_argument("--mib", type=float, default=25.0, help="total size of the files, MiB")
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of the fill-method comparison"
    )
    args = parser.parse_args(argv)
    if args.files < 1 or args.agents < 1 or args.rounds < 1:
        parser.error("--files, --agents and --rounds must be at least 1")
    return run(args.files, args.agents, args.mib, args.rounds)


if __name__ == "__main__":
    sys.exit(main())
