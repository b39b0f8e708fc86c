"""The plan's `verify` command, run through the local runtime: its result, its timeout, and
nothing of it left running (moved here from tests/worktrees/test_integrate.py with the code)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

from corral.core.runtime.base import RuntimeSetup
from corral.core.runtime.local import LocalRuntime
from corral.core.runtime.verification import run_verification
from corral.worktrees.verify import Verification
from tests.core.engine_helpers import assert_all_dead


def verify(tmp_path: Path, code: str, timeout: float) -> Verification:
    setup = RuntimeSetup(
        run_id=f"verify-{os.getpid()}-{time.monotonic_ns()}",
        repo_top=tmp_path,
        snapshot="0" * 40,
        worktree_root=tmp_path / "wt",
        rundir=tmp_path / "run",
    )
    runtime = LocalRuntime(setup)
    try:
        return asyncio.run(
            run_verification(
                runtime,
                setup.run_id,
                tmp_path,
                [sys.executable, "-c", code],
                tmp_path / "verify.log",
                timeout,
                grace=0.5,
            )
        )
    finally:
        runtime.close()


def test_verification_passes_fails_and_times_out(tmp_path: Path) -> None:
    log = tmp_path / "verify.log"
    assert verify(tmp_path, "print('tests ok')", 30) == (True, 0)
    assert "tests ok" in log.read_text()
    assert verify(tmp_path, "raise SystemExit(3)", 30) == (False, 3)
    started = time.monotonic()
    assert verify(tmp_path, "import time; time.sleep(60)", 0.5) == (False, None)
    assert time.monotonic() - started < 10
    assert "timed out" in log.read_text()


def test_verification_leaves_nothing_running_even_what_left_its_session(tmp_path: Path) -> None:
    """A test suite that starts a server in its own session and exits: the server is stopped
    when the verification ends, as an agent's escaped processes are (T2)."""
    escape = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
        " start_new_session=True)\n"
        "print('server', p.pid, flush=True)\n"
    )
    assert verify(tmp_path, escape, 30) == (True, 0)
    pids = [int(pid) for pid in re.findall(r"server (\d+)", (tmp_path / "verify.log").read_text())]
    assert len(pids) == 1
    assert_all_dead(pids)
