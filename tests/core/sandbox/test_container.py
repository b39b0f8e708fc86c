"""`runtime = "container"`: an image directory as the root, the worktree at /workspace, corral's
files under /run/corral, the `corral` shim on PATH; nothing of the host but what is bound in.

The test image is the smallest honest one: an empty root with the usual top-level links and the
host's /usr bound in read-only (`read = ["/usr"]`); docs/containers.md says how to build a
real one with mmdebstrap.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from corral.core.sandbox.bwrap import sandbox_command, write_shim
from corral.core.sandbox.policy import SandboxPolicy
from tests.core.sandbox.conftest import Attempt

SCRIPT = """
set -e
pwd
test ! -e "$HOME/.ssh"
test ! -e "$SIBLING"
echo "$CORRAL_WORKSPACE $CORRAL_OUTPUT $CORRAL_SOCKET"
command -v corral
corral heartbeat --help | head -1
echo made > made.txt
echo found > "$CORRAL_OUTPUT/findings.json"
git add made.txt && git commit -qm "in the container" && git log --format=%s -1
ls /etc | wc -l
"""


def test_an_image_runs_with_the_worktree_at_workspace(attempt: Attempt, tmp_path: Path) -> None:
    image = tmp_path / "image"
    for name in ("usr", "etc", "var", "home"):
        (image / name).mkdir(parents=True)
    for name in ("bin", "lib", "lib64", "sbin"):
        (image / name).symlink_to(f"usr/{name}")
    paths = replace(attempt.paths, image=image)
    policy = SandboxPolicy(read=("/usr",)).resolve(paths.home)
    env = {**attempt.env, "PATH": "/usr/local/bin:/usr/bin:/bin", "SIBLING": str(attempt.sibling)}
    command = sandbox_command(
        policy, paths, ["sh", "-c", SCRIPT], env, shim_dir=write_shim(tmp_path / "bin").parent
    )
    done = subprocess.run(
        command.argv,
        env=command.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "/workspace"
    assert lines[1] == "/workspace /run/corral/out /run/corral/control.sock"
    assert lines[2] == "/run/corral/bin/corral"
    assert lines[3].startswith("usage: corral heartbeat")
    assert lines[4] == "in the container"
    assert lines[5] == "0"  # the image's own (empty) /etc, not the host's
    assert (attempt.paths.worktree / "made.txt").read_text() == "made\n"
    assert (attempt.paths.output_dir / "findings.json").is_file()
