"""`runtime = "container"` through the real engine and real bubblewrap: an image directory is
the agent's root, its worktree is /workspace, `corral heartbeat`, `lock` and `put` work from
inside, its edit is committed and merged, and the plan's `verify` runs in the same image.

The image: `CORRAL_TEST_IMAGE` when set (CI builds a Debian one with mmdebstrap, as
docs/containers.md tells users to), else the smallest honest one, built here: an empty root
with the usual top-level links and the host's /usr bound in read-only (`read = ["/usr"]`).
With `CORRAL_REQUIRE_TEST_IMAGE=1` (CI) a missing or broken image fails instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from corral.core.locks.shared_files import shared_dir
from corral.core.log import events as ev
from corral.core.operator.actions import resize, send_keys
from corral.core.operator.identity import Operator
from corral.core.sandbox.image import image_problem
from tests.conftest import git, wait_until
from tests.core.engine_helpers import (
    agent_block,
    corral,
    events_of,
    only_run,
    start_corral,
    state_of,
    wait_for_run,
    write_plan,
)
from tests.core.test_pty import TERMINAL_AGENT


@pytest.fixture(autouse=True)
def _bwrap(bwrap_works: None) -> None:
    """Every test here runs real bubblewrap (the probe fails the test if it cannot)."""


@dataclass(frozen=True)
class Image:
    path: Path
    policy: str
    """The `[defaults.sandbox]` table the image needs (the built one binds the host's /usr)."""


@pytest.fixture
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    given = os.environ.get("CORRAL_TEST_IMAGE")
    if given:
        problem = image_problem(Path(given))
        assert problem is None, problem
        return Image(Path(given), "")
    assert os.environ.get("CORRAL_REQUIRE_TEST_IMAGE") != "1", (
        "CORRAL_TEST_IMAGE is not set: .ci/run builds the Debian image the tests run in"
    )
    root = tmp_path_factory.mktemp("image")
    for name in ("usr", "etc", "var", "home", "root"):
        (root / name).mkdir()
    for name in ("bin", "lib", "lib64", "sbin"):
        (root / name).symlink_to(f"usr/{name}")
    return Image(root, '[defaults.sandbox]\nread = ["/usr"]\n')


def container_plan(tmp_path: Path, image: Image, body: str, header: str = "") -> Path:
    defaults = f"[defaults]\nimage = {json.dumps(str(image.path))}\n{image.policy}\n"
    return write_plan(tmp_path, defaults + body, header=f'runtime = "container"\n{header}')


AGENT = """
set -e
test "$PWD" = /workspace && test "$CORRAL_WORKSPACE" = /workspace
test "$CORRAL_OUTPUT" = /run/corral/out
test ! -e {host_file}
command -v corral
corral heartbeat --progress 50% 'inside the image'
corral lock run notes -- sh -c 'echo from the image > NOTES.md &&
  echo shared | corral put notes state.txt --token "$CORRAL_LOCK_TOKEN"'
cat "$CORRAL_SHARED/state.txt"
echo changed > README.md
echo '[]' > "$CORRAL_OUTPUT/findings.json"
"""

VERIFY = (
    'test "$PWD" = /workspace && test ! -e {host_file} && grep -q changed README.md '
    "&& grep -q 'from the image' NOTES.md && echo verified-in-the-image"
)


def test_an_image_agent_heartbeats_locks_and_its_edit_is_merged_and_verified_inside(
    repo: Path, tmp_path: Path, image: Image
) -> None:
    host_file = tmp_path / "plan.toml"  # the host's files are not in the image
    script = AGENT.format(host_file=host_file)
    verify = f"verify = {json.dumps(['sh', '-c', VERIFY.format(host_file=host_file)])}\n"
    plan = container_plan(
        tmp_path, image, agent_block("boxed", ["sh", "-c", script]), header=verify
    )
    result = corral(repo, "run", str(plan), "--quiet")
    rundir = only_run(repo)
    output = rundir.output_log("boxed", 1).read_text()
    assert result.returncode == 0, result.stdout + result.stderr + output
    assert output.splitlines() == ["/run/corral/bin/corral", "shared"]
    assert (shared_dir(rundir.path) / "state.txt").read_text() == "shared\n"
    state = state_of(rundir)
    assert [m.agent for m in state.merge.merged] == ["boxed"]
    assert state.merge.verification is not None
    assert state.merge.verification.passed
    assert "verified-in-the-image" in (rundir.path / "verify.log").read_text()
    events = events_of(rundir)
    started = next(e for e in events if isinstance(e, ev.AgentStarted))
    assert started.runtime == "container"
    beats = [e for e in events if isinstance(e, ev.AgentHeartbeat) and e.source == "beat"]
    assert [(b.progress, b.message) for b in beats] == [(0.5, "inside the image")]
    assert [e.lock for e in events if isinstance(e, ev.LockAcquired)] == ["notes"]
    integration = state.merge.integration_commit
    assert integration is not None
    assert git(repo, "show", f"{integration}:README.md") == "changed"
    assert git(repo, "show", f"{integration}:NOTES.md") == "from the image"
    status = corral(repo, "status", rundir.run_id)
    assert f"runtime of boxed: container · image: {image.path} · network: none" in status.stdout


def test_a_missing_image_or_program_is_exit_2_and_nothing_starts(
    repo: Path, tmp_path: Path, image: Image
) -> None:
    nowhere = Image(tmp_path / "no-such-image", image.policy)
    plan = container_plan(tmp_path, nowhere, agent_block("boxed", ["true"]))
    refused = corral(repo, "run", str(plan), "--quiet")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "is not a directory" in refused.stderr
    assert "mmdebstrap" in refused.stderr
    (tmp_path / "p2").mkdir()
    plan = container_plan(tmp_path / "p2", image, agent_block("boxed", ["no-such-tool-here"]))
    refused = corral(repo, "run", str(plan), "--quiet")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "'no-such-tool-here' is not in the image" in refused.stderr
    assert not (repo / ".git" / "corral" / "runs").exists() or not list(
        (repo / ".git" / "corral" / "runs").iterdir()
    )


def test_validate_explains_an_image_agent(repo: Path, tmp_path: Path, image: Image) -> None:
    plan = container_plan(tmp_path, image, agent_block("boxed", ["sh", "-c", "true"]))
    shown = corral(repo, "validate", str(plan))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"read-only: the image {image.path} as /" in shown.stdout
    assert "(as /workspace)" in shown.stdout


def test_an_image_agent_pauses_and_goes_on(repo: Path, tmp_path: Path, image: Image) -> None:
    """The container runtime pauses as the sandbox does (its execution is bubblewrap's): every
    process of it stops, its output goes on once unpaused, and a kill of the paused agent ends
    it with nothing left."""
    import psutil

    from corral.core.operator import actions
    from corral.core.operator.identity import Operator
    from tests.conftest import wait_until
    from tests.core.engine_helpers import processes_with_env, start_corral, wait_for_run

    alice = Operator(user="alice", reviewer="alice")
    ticker = "n=0; while :; do n=$((n+1)); echo $n; sleep 0.05; done"
    plan = container_plan(tmp_path, image, agent_block("boxed", ["sh", "-c", ticker]))
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)

    def output() -> str:
        log = rundir.output_log("boxed", 1)
        return log.read_text() if log.exists() else ""

    wait_until(lambda: len(output().split()) > 3, what="output")
    run_id = state_of(rundir).run_id
    assert actions.pause(rundir, "boxed", alice).processes >= 2
    inside = processes_with_env("CORRAL_RUN_ID", run_id)
    wait_until(
        lambda: all(psutil.Process(p).status() == psutil.STATUS_STOPPED for p in inside),
        what="every process of the container stopped",
    )
    frozen = output()
    actions.unpause(rundir, "boxed", alice)
    wait_until(lambda: len(output()) > len(frozen) + 6, what="output going on")
    actions.pause(rundir, "boxed", alice)
    actions.kill(rundir, "boxed", alice)
    assert engine.wait(timeout=60) == 1
    assert not processes_with_env("CORRAL_RUN_ID", run_id)


def test_an_image_agent_on_a_terminal_takes_keys_and_a_size(
    repo: Path, tmp_path: Path, image: Image
) -> None:
    body = agent_block("term", ["python3", "-c", TERMINAL_AGENT], tty=True, tty_size=[90, 30])
    plan = container_plan(tmp_path, image, body)
    engine = start_corral(repo, "run", str(plan), "--quiet")
    me = Operator.current()
    try:
        run = wait_for_run(repo)
        log = run.output_log("term", 1)
        wait_until(lambda: log.is_file() and b"name? " in log.read_bytes(), what="the prompt")
        resize(run, "term", 100, 33, me)
        send_keys(run, "term", "imaged\r", me)
        assert engine.wait(timeout=60) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    output = log.read_bytes()
    assert b"\x1b[31mred\x1b[0m isatty=TrueTrue" in output
    assert b"hi imaged at 100x33" in output
    integration = state_of(run).merge.integration_commit
    assert integration is not None
    assert git(repo, "show", f"{integration}:answer.txt") == "imaged True 100x33"
