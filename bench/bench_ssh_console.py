"""The console over SSH (`corral serve --ssh`): how long a client waits for its console, how
long a key takes to come back drawn, and what each console costs in memory.

    .venv/bin/python bench/bench_ssh_console.py [--clients 4] [--keys 10]

A scratch repository with no runs (the console opens on its runs list), one ed25519 key made by
ssh-keygen, the server on a free loopback port with its host key pinned, the OpenSSH client in
tmux windows of 100x30. Prints:

- `start`: from starting `corral serve --ssh` to its printed address (imports, host key made);
- `login`: from starting `ssh` to the console's first full screen, per client, all open at once;
- `key`: `?` typed to the help screen drawn, and `esc` to it gone (median over --keys);
- `local`: the same keys to a console started in tmux directly (no SSH), for comparison;
- `rss`: the server's resident memory idle and with every console open, and one console's.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, *args], check=True, capture_output=True, text=True
    ).stdout


def wait_screen(socket: str, window: str, needle: str, present: bool = True) -> float:
    started = time.monotonic()
    while (needle in tmux(socket, "capture-pane", "-p", "-t", window)) != present:
        if time.monotonic() - started > 60:
            raise SystemExit(f"{needle!r} never {'shown' if present else 'gone'} in {window}")
        time.sleep(0.005)
    return time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--keys", type=int, default=10)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="corral-bench-ssh-"))
    repo = scratch / "repo"
    repo.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@b",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@b",
    }
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "commit", "-q", "--allow-empty", "-m", "i"], check=True, env=env
    )
    key = scratch / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    corral = [sys.executable, "-m", "corral.core.cli"]
    subprocess.run(
        [*corral, "serve", "--ssh", "--add-key", "bench", "viewer", f"{key}.pub"],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    out = scratch / "serve.out"
    began = time.monotonic()
    with out.open("w") as stdout:
        server = subprocess.Popen(
            [*corral, "serve", "--ssh", "--listen", "127.0.0.1:0"],
            cwd=repo,
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
    while not re.search(r"host key \S+ \((\S+)\)", out.read_text()):
        time.sleep(0.005)
    start = time.monotonic() - began
    printed = out.read_text()
    port = re.search(r"127\.0\.0\.1:(\d+)", printed).group(1)  # type: ignore[union-attr]
    public = Path(re.search(r"host key \S+ \((\S+)\)", printed).group(1))  # type: ignore[union-attr]
    known = scratch / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {' '.join(public.read_text().split()[:2])}\n")
    idle = rss_mib(server.pid)
    socket = f"corral-bench-ssh-{os.getpid()}"
    ssh = (
        f"ssh -F /dev/null -tt -p {port} -i {key} -o IdentitiesOnly=yes -o BatchMode=yes"
        f" -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes b@127.0.0.1"
    )
    try:
        logins = []
        for number in range(args.clients):
            window = f"c{number}"
            began = time.monotonic()
            if number == 0:
                tmux(
                    socket,
                    "new-session",
                    "-d",
                    "-s",
                    "bench",
                    "-n",
                    window,
                    "-x",
                    "100",
                    "-y",
                    "30",
                    ssh,
                )
            else:
                tmux(socket, "new-window", "-t", "bench", "-n", window, ssh)
            logins.append(wait_screen(socket, window, "runs of") - began)
        keys = []
        for _ in range(args.keys):
            began = time.monotonic()
            tmux(socket, "send-keys", "-t", "c0", "?")
            keys.append(wait_screen(socket, "c0", "keys of the") - began)
            began = time.monotonic()
            tmux(socket, "send-keys", "-t", "c0", "Escape")
            keys.append(wait_screen(socket, "c0", "keys of the", present=False) - began)
        # the same keys to a console run in tmux directly: what SSH adds is the difference
        local = f"cd {repo} && exec {sys.executable} -m corral.core.cli"
        tmux(socket, "new-window", "-t", "bench", "-n", "local", local)
        wait_screen(socket, "local", "runs of")
        direct = []
        for _ in range(args.keys):
            began = time.monotonic()
            tmux(socket, "send-keys", "-t", "local", "?")
            direct.append(wait_screen(socket, "local", "keys of the") - began)
            began = time.monotonic()
            tmux(socket, "send-keys", "-t", "local", "Escape")
            direct.append(wait_screen(socket, "local", "keys of the", present=False) - began)
        children = [
            int(p)
            for p in subprocess.run(
                ["pgrep", "-P", str(server.pid)], capture_output=True, text=True
            ).stdout.split()
        ]
        busy = rss_mib(server.pid)
        consoles = [rss_mib(pid) for pid in children]
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
        server.terminate()
        server.wait(10)

    def figure(name: str, values: list[float], what: str) -> None:
        median, worst = statistics.median(values) * 1000, max(values) * 1000
        print(f"{name:<7} {median:7.0f} ms median, {worst:.0f} ms max over {len(values)} {what}")

    print(f"start   {start * 1000:7.0f} ms  (corral serve --ssh to its printed address)")
    figure("login", logins, "clients (ssh to the first screen)")
    figure("key", keys, "keys (typed to drawn)")
    figure("local", direct, "keys to a console in tmux without SSH")
    console = statistics.median(consoles) if consoles else 0.0
    print(
        f"rss     server {idle:.0f} MiB idle, {busy:.0f} MiB with {len(consoles)} consoles", end=""
    )
    print(f"; a console {console:.0f} MiB")


if __name__ == "__main__":
    main()
