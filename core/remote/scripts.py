"""The shell scripts corral runs on a host: where things are, start, watch, stop, sweep.

They need a POSIX shell, GNU coreutils (`tail --pid`, fractional `sleep`), procps `ps` and
Linux's /proc: what a Debian or Ubuntu host has. Values are quoted with `shlex.quote`; a
`workdir` that starts with `~/` is the login's `$HOME`.

An attempt's files on the host, under `<workdir>/attempts/<run>/<agent>-<attempt>/`:
`wt/` its worktree, `out/` its CORRAL_OUTPUT, and per started command `x<N>.log` (its output),
`x<N>.pid` (its session's leader) and `x<N>.status` (its exit status, once it ended). Its control
socket is `/tmp/corral-<uid>/<key>.sock`, in a directory only the login may enter (a socket's
path is limited to 108 bytes, so it cannot live under a deep workdir).
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

BOOT_ID = "/proc/sys/kernel/random/boot_id"


def dir_expr(path: str) -> str:
    """A shell word for `path`, `~/` as the login's home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


@dataclass(frozen=True)
class AttemptDirs:
    """Where one attempt's files are on a host (shell words, see the module's docstring)."""

    workdir: str
    run_id: str
    agent: str
    attempt: int
    host: str

    @property
    def base(self) -> str:
        leaf = shlex.quote(f"{self.agent}-{self.attempt}")
        return f"{dir_expr(self.workdir)}/attempts/{shlex.quote(self.run_id)}/{leaf}"

    @property
    def plain(self) -> str:
        """The same path as text, for people (the agent's workspace shown in the console)."""
        return f"{self.workdir}/attempts/{self.run_id}/{self.agent}-{self.attempt}"

    @property
    def key(self) -> str:
        text = f"{self.host}\0{self.run_id}\0{self.agent}\0{self.attempt}"
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def mark(self) -> str:
        """The value of CORRAL_REMOTE_MARK in every process of the attempt (the sweep's handle)."""
        return self.key

    @property
    def socket(self) -> str:
        return f'"$SOCKDIR"/{self.key}.sock'


def repo_dir(workdir: str, repo_id: str) -> str:
    return f"{dir_expr(workdir)}/repos/{shlex.quote(repo_id)}.git"


SOCKDIR = (
    'SOCKDIR="${TMPDIR:-/tmp}/corral-$(id -u)"; mkdir -p -m 700 "$SOCKDIR"; '
    '[ -O "$SOCKDIR" ] && [ ! -L "$SOCKDIR" ] || { echo "$SOCKDIR is not ours" >&2; exit 3; }; '
    'chmod 700 "$SOCKDIR"\n'
)


def socket_path_script(dirs: AttemptDirs) -> str:
    """Print the attempt's socket path (made ready: its directory private, no stale socket)."""
    return f"set -e\n{SOCKDIR}rm -f {dirs.socket}\nprintf '%s\\n' {dirs.socket}\n"


def _exports(env: Mapping[str, str]) -> str:
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in sorted(env.items()))


def start_script(
    dirs: AttemptDirs,
    index: int,
    argv: Sequence[str],
    env: Mapping[str, str],
    lib: str | None,
) -> str:
    """Start `argv` in the attempt's worktree, in its own session, stdin /dev/null, output
    appended to `x<index>.log`; print `pid boot_id start_ticks`. Sent as the input of `sh -s`
    (the environment, secrets included, never touches the host's disk)."""
    x = f'"$A"/x{index}'
    path_setup = (
        f'export PATH={dir_expr(lib)}/bin:"$PATH"\n'
        f"export PYTHONPATH={dir_expr(lib)}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        if lib
        else ""
    )
    return (
        "set -e\numask 077\n"
        f"A={dirs.base}\n{SOCKDIR}"
        f'cd "$A/wt"\n'
        f"{_exports(env)}"
        f'export CORRAL_WORKSPACE="$A/wt" CORRAL_OUTPUT="$A/out" CORRAL_SOCKET={dirs.socket}\n'
        f"export CORRAL_REMOTE_MARK={dirs.mark}\n"
        "unset CORRAL_SHARED\n"
        f"{path_setup}"
        f"rm -f {x}.pid {x}.status\n: >> {x}.log\n"
        'setsid sh -c \'echo $$ > "$0.pid.new"; mv "$0.pid.new" "$0.pid"; '
        '"$@" </dev/null >>"$0.log" 2>&1; echo $? > "$0.status.new"; '
        'mv "$0.status.new" "$0.status"\' '
        f"{x} {' '.join(shlex.quote(a) for a in argv)} </dev/null >/dev/null 2>&1 &\n"
        f"i=0; while [ ! -s {x}.pid ]; do i=$((i+1)); "
        '[ $i -gt 1000 ] && { echo "the command did not start" >&2; exit 4; }; sleep 0.01; done\n'
        f"pid=$(cat {x}.pid)\n"
        f"boot=$(cat {BOOT_ID} 2>/dev/null || echo none)\n"
        'start=$(cut -d" " -f22 /proc/$pid/stat 2>/dev/null || echo 0)\n'
        'echo "$pid $boot $start"\n'
    )


def tail_script(dirs: AttemptDirs, index: int, offset: int, pid: int, follow: bool) -> str:
    """Its output from byte `offset` on; with `follow`, until its session leader `pid` ends.

    Not `tail --pid`: the leader, orphaned once the launcher is gone, is a zombie until the
    host's init reaps it (seconds on some hosts), and `--pid` counts a zombie as alive. Its
    exit status file, or its zombie state, says it ended."""
    x = f"{dirs.base}/x{index}"
    if not follow:
        return f"exec tail -c +{offset + 1} {x}.log"
    # the state is the field after "(comm) " in /proc/PID/stat, read with builtins only: the
    # loop forks nothing but its sleep, as many attempts poll at once
    return (
        f"tail -c +{offset + 1} -f {x}.log & t=$!\n"
        f"while [ ! -s {x}.status ] && read -r stat < /proc/{pid}/stat 2>/dev/null; do\n"
        '  state=${stat##*) }; state=${state%% *}; [ "$state" = Z ] && break; sleep 0.1\n'
        "done\n"
        'kill "$t" 2>/dev/null; wait "$t" 2>/dev/null; exit 0\n'
    )


def status_script(dirs: AttemptDirs, index: int, pid: int, start: str) -> str:
    """Print `running`, `exited CODE` or `gone` (ended without a status: killed)."""
    x = f"{dirs.base}/x{index}"
    return (
        f'if [ -d /proc/{pid} ] && [ "$(cut -d" " -f22 /proc/{pid}/stat 2>/dev/null)" = '
        f"{shlex.quote(start)} ] && ! grep -q '^State:.*Z' /proc/{pid}/status 2>/dev/null; "
        "then echo running; "
        f"elif [ -s {x}.status ]; then echo exited $(cat {x}.status); else echo gone; fi\n"
    )


def _members(dirs: AttemptDirs) -> str:
    """A shell function printing the pids of the attempt: its sessions (from the pid files)
    and every process that carries its mark, zombies left out."""
    return (
        "members() {\n"
        f'  sids=$(cat "$A"/x*.pid 2>/dev/null | tr "\\n" " ")\n'
        '  { ps -e -o pid=,sid=,stat= | awk -v s=" $sids" '
        '\'$3 !~ /^Z/ && index(s, " " $2 " ") {print $1}\'\n'
        f"    grep -l -z -x CORRAL_REMOTE_MARK={dirs.mark} /proc/[0-9]*/environ 2>/dev/null "
        '| cut -d/ -f3; } | sort -u | grep -v -x -e "$$" || true\n'
        "}\n"
    )


def stop_script(dirs: AttemptDirs, grace: float) -> str:
    """Stop every process of the attempt: SIGTERM, `grace`, SIGKILL, then confirm none is
    left; print `signalled forced remaining`."""
    steps = max(1, int(grace * 20))
    return (
        f"A={dirs.base}\n{_members(dirs)}"
        "first=$(members); n=$(echo $first | wc -w); forced=0\n"
        'if [ -n "$first" ]; then kill -TERM $first 2>/dev/null || true\n'
        f'  i=0; while [ $i -lt {steps} ] && [ -n "$(members)" ]; do sleep 0.05; i=$((i+1)); done\n'
        '  left=$(members); if [ -n "$left" ]; then forced=$(echo $left | wc -w); '
        "kill -KILL $left 2>/dev/null || true\n"
        '    i=0; while [ $i -lt 100 ] && [ -n "$(members)" ]; do sleep 0.05; i=$((i+1)); done; fi\n'
        "fi\n"
        'echo "$n $forced $(members | wc -w)"\n'
    )


def count_script(dirs: AttemptDirs) -> str:
    """Print how many processes of the attempt run."""
    return f"A={dirs.base}\n{_members(dirs)}members | wc -w\n"


def prepare_dirs_script(dirs: AttemptDirs) -> str:
    """Make the attempt's directory afresh (a prepare may be retried), private."""
    return (
        f"set -e\numask 077\nA={dirs.base}\n"
        'if [ -d "$A" ]; then rm -rf "$A"; fi\nmkdir -p "$A/out"\n'
    )


REPO_LOCK = 'if command -v flock >/dev/null 2>&1; then exec 9>>"$R.lock"; flock 9; fi\n'
"""Worktree changes in a host's cached repository one at a time, also between engines (`R` set
before it; util-linux's flock where the host has it, else the engine's own lock alone)."""


def release_script(dirs: AttemptDirs, repo: str, branch: str) -> str:
    """Remove the attempt's worktree, directory, branch and socket on the host."""
    return (
        f"A={dirs.base}\nR={repo}\n{SOCKDIR}{REPO_LOCK}"
        f"rm -f {dirs.socket}\n"
        'git -C "$R" worktree remove --force "$A/wt" 2>/dev/null || true\n'
        'rm -rf "$A"\ngit -C "$R" worktree prune 2>/dev/null || true\n'
        f'git -C "$R" branch -q -D {shlex.quote(branch)} 2>/dev/null || true\n'
    )
