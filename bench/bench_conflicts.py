"""How long the full conflict matrix takes, against the floor of one `git merge-tree` per pair.

    python bench/bench_conflicts.py --files 3000 --agents 10 50

Builds a repository of a few thousand source files (one `git fast-import`), then one branch per
agent from the base, each changing a handful of files, some of them shared so that a share of
the pairs conflict. For each agent count it times, in one run (the machines are noisy: compare
ratios, not figures across runs):
  1 call    one bare `git merge-tree --write-tree` process (median of 15 pairs)
  wrapped   the same through `mergetree.merge_pair` (corral's safe options and parsing)
  floor     `1 call` x the number of pairs
  matrix    `ConflictMatrix.update` over every pair: one `merge-tree --stdin` process
  no graph  the same without a commit-graph
  recheck   the update after one agent's snapshot changed (only its pairs are merged again)
and, once, `snapshot_commit` of a worktree of this repository with three files edited.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratch import IDENTITY

from corral.worktrees.conflicts import ConflictMatrix
from corral.worktrees.mergetree import merge_pair
from corral.worktrees.safety import safe_git_env, static_options
from corral.worktrees.snapshot import snapshot_commit
from corral.worktrees.workspace import create_workspace, default_root


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    env = {**safe_git_env(), **IDENTITY}
    return subprocess.run(
        ["git", "-C", str(repo), *static_options(), *args],
        input=input,
        check=True,
        capture_output=True,
        env=env,
    ).stdout.decode()


def source_file(rng: random.Random, n: int) -> bytes:
    lines = [f"# module {n}"] + [f"value_{i} = {rng.randint(0, 10**6)}" for i in range(60)]
    return ("\n".join(lines) + "\n").encode()


HISTORY = 400
"""Commits on main before the snapshot, so finding merge bases costs something."""


def build_repo(root: Path, files: int, agents: int, hot: int, seed: int) -> tuple[Path, list[str]]:
    """`files` files on main after HISTORY commits (a few with dates out of order, as real
    histories have), and a branch `agent-N` per agent, each a commit of its own on the tip."""
    rng = random.Random(seed)
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    paths = [f"pkg{n % 40:02d}/sub{n % 7}/mod{n:05d}.py" for n in range(files)]
    contents = {path: source_file(rng, n) for n, path in enumerate(paths)}
    stream: list[bytes] = []
    mark = 0

    def blob(data: bytes) -> int:
        nonlocal mark
        mark += 1
        stream.append(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)) + data + b"\n")
        return mark

    marks = {path: blob(data) for path, data in contents.items()}
    when = 1_700_000_000
    mark += 1
    base_mark = mark
    stream.append(b"commit refs/heads/main\nmark :%d\n" % base_mark)
    stream.append(b"committer bench <bench@corral.invalid> %d +0000\ndata 5\nbase\n" % when)
    stream += [b"M 100644 :%d %s\n" % (m, p.encode()) for p, m in marks.items()]
    stream.append(b"\n")
    for n in range(HISTORY):
        touched = {path: blob(source_file(rng, files + n)) for path in rng.sample(paths[hot:], 3)}
        when += 3600
        date = when - 30 * 86400 if n % 50 == 25 else when  # a clock that was a month off
        mark += 1
        stream.append(b"commit refs/heads/main\nmark :%d\n" % mark)
        stream.append(b"committer bench <bench@corral.invalid> %d +0000\ndata 4\nwork\n" % date)
        stream.append(b"from :%d\n" % base_mark)
        stream += [b"M 100644 :%d %s\n" % (m, p.encode()) for p, m in touched.items()]
        stream.append(b"\n")
        base_mark = mark
    hot_paths = paths[:hot]
    branches = []
    for agent in range(agents):
        changed: dict[str, bytes] = {}
        if rng.random() < 0.4:  # some agents also touch one of a few shared files
            path = rng.choice(hot_paths)
            lines = contents[path].decode().splitlines(keepends=True)
            lines[10] = f"value_hot = {agent}\n"  # everyone edits the same line: they collide
            changed[path] = "".join(lines).encode()
        for path in rng.sample(paths[hot:], 4):
            lines = contents[path].decode().splitlines(keepends=True)
            lines[rng.randint(1, 59)] = f"value_agent = {agent}\n"
            changed[path] = "".join(lines).encode()
        new = {path: blob(data) for path, data in changed.items()}
        name = f"agent-{agent:02d}"
        branches.append(name)
        stream.append(b"commit refs/heads/%s\n" % name.encode())
        stream.append(
            b"committer bench <bench@corral.invalid> %d +0000\ndata 6\nagent\nfrom :%d\n"
            % (when + 60 + agent, base_mark)
        )
        stream += [b"M 100644 :%d %s\n" % (m, p.encode()) for p, m in new.items()]
        stream.append(b"\n")
    git(repo, "fast-import", "--quiet", input=b"".join(stream))
    git(repo, "read-tree", "-u", "--reset", "main")
    return repo, branches


def tips(repo: Path, branches: list[str]) -> dict[str, str]:
    return {b: git(repo, "rev-parse", f"refs/heads/{b}").strip() for b in branches}


def time_it(fn: object, repeat: int = 1) -> float:
    assert callable(fn)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def drop_graph(repo: Path) -> None:
    info = repo / ".git" / "objects" / "info"
    for name in ("commit-graph", "commit-graphs"):
        target = info / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def raw_merge_tree(repo: Path, ours: str, theirs: str) -> None:
    """One bare `git merge-tree` process, as the floor: no corral wrapper around it."""
    subprocess.run(
        ["git", "-C", str(repo), "merge-tree", "--write-tree", "-z", "--name-only", ours, theirs],
        capture_output=True,
        env=safe_git_env(),
        check=False,
    )


def full_matrix(repo: Path, base: str, commits: dict[str, str], repeat: int) -> tuple[float, int]:
    found = 0

    def once() -> None:
        nonlocal found
        matrix = ConflictMatrix(repo, base, commit_graph=False)
        matrix.update(commits)
        found = len(matrix.conflicts)

    return time_it(once, repeat), found


def bench(root: Path, files: int, agents: int, seed: int, repeat: int) -> dict[str, float]:
    repo, branches = build_repo(root / f"n{agents}", files, agents, hot=3, seed=seed)
    commits = tips(repo, branches)
    pairs = agents * (agents - 1) // 2
    base = git(repo, "rev-parse", "main").strip()
    ConflictMatrix(repo, base)  # writes the commit-graph, as the engine does once
    full_matrix(repo, base, commits, 1)  # warm the page cache
    names = sorted(commits)
    sample = [(commits[names[i % agents]], commits[names[(i + 1) % agents]]) for i in range(15)]
    single = statistics.median(
        time_it(lambda a=a, b=b: raw_merge_tree(repo, a, b)) for a, b in sample
    )
    wrapped = statistics.median(time_it(lambda a=a, b=b: merge_pair(repo, a, b)) for a, b in sample)
    full, conflicts = full_matrix(repo, base, commits, repeat)
    matrix = ConflictMatrix(repo, base, commit_graph=False)
    matrix.update(commits)
    changed = dict(commits)
    changed[names[0]] = commits[names[1]]  # agent 0's snapshot changed
    recheck = time_it(lambda: matrix.update(changed))
    drop_graph(repo)
    no_graph, _ = full_matrix(repo, base, commits, repeat)
    return {
        "agents": agents,
        "pairs": pairs,
        "conflicts": conflicts,
        "single": single,
        "wrapped": wrapped,
        "floor": single * pairs,
        "matrix": full,
        "no_graph": no_graph,
        "recheck": recheck,
        "recheck_pairs": agents - 1,
    }


def bench_snapshot(root: Path, files: int, seed: int) -> tuple[float, float]:
    repo, _ = build_repo(root / "snap", files, 1, hot=3, seed=seed)
    ws = create_workspace(repo, default_root(repo), "bench", "a", 1, "main")
    for path in sorted(ws.path.rglob("*.py"))[:3]:
        path.write_text(path.read_text() + "edited = True\n")
    (ws.path / "untracked.txt").write_text("new\n")
    dirty = statistics.median(time_it(lambda: snapshot_commit(ws.path)) for _ in range(7))
    for path in sorted(ws.path.rglob("*.py"))[3:6]:
        path.write_text(path.read_text() + "more = 1\n")
    return dirty, time_it(lambda: snapshot_commit(ws.path))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=3000)
    parser.add_argument("--agents", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="median of this many full matrices")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="corral-bench-conflicts-"))
    try:
        print(f"git {git(root, 'version').split()[-1]}, {os.cpu_count()} cores, {args.files} files")
        rows = [bench(root, args.files, n, args.seed, args.repeat) for n in args.agents]
        header = (
            f"{'agents':>6} {'pairs':>6} {'confl':>5} {'1 call':>8} {'wrapped':>8} {'floor':>8} "
            f"{'matrix':>8} {'per pair':>9} {'vs floor':>8} {'no graph':>9} {'recheck':>14}"
        )
        print(header)
        for r in rows:
            print(
                f"{r['agents']:>6.0f} {r['pairs']:>6.0f} {r['conflicts']:>5.0f} "
                f"{r['single'] * 1000:>6.1f}ms {r['wrapped'] * 1000:>6.1f}ms "
                f"{r['floor']:>7.2f}s {r['matrix']:>7.2f}s "
                f"{r['matrix'] / r['pairs'] * 1000:>7.2f}ms {r['matrix'] / r['floor']:>7.2f}x "
                f"{r['no_graph']:>8.2f}s {r['recheck']:>6.2f}s/{r['recheck_pairs']:.0f}pr"
            )
        dirty, changed = bench_snapshot(root, args.files, args.seed)
        print(
            f"snapshot_commit of a {args.files}-file worktree: {dirty * 1000:.0f} ms "
            f"(3 files edited + 1 untracked), {changed * 1000:.0f} ms after 3 more edits"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
