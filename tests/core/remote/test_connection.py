"""One host's connection, its command runner and the snapshot's shipping, against real sshd."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from corral.core.plan.hosts import HostSpec
from corral.core.remote.connection import HostConnection
from corral.core.remote.remote import HostUnreachable
from corral.core.remote.scripts import repo_dir
from corral.core.remote.shipping import ship_snapshot
from tests.conftest import git, make_repo
from tests.core.remote.sshd import Host, free_port


def spec_of(host: Host, **changes: object) -> HostSpec:
    return HostSpec.model_validate({**host.spec(4), **changes})


@pytest.mark.parametrize("runner", [True, False], ids=["runner", "channel"])
def test_scripts_run_alike_on_the_runner_and_on_a_channel_each(
    hosts: tuple[Host, Host], tmp_path: Path, runner: bool
) -> None:
    async def scenario() -> None:
        host = HostConnection(spec_of(hosts[0]))
        if not runner:
            host.runner_unavailable = "forced by the test"
        try:
            done = await host.sh("echo out; echo err >&2; exit 3")
            assert (done.status, done.stdout, done.stderr) == (3, b"out\n", b"err\n")
            counted = await host.sh("wc -c", stdin=b"x" * 300_000)
            assert counted.text().strip() == "300000"
            sink = tmp_path / "out.bin"
            written = await host.sh("head -c 100000 /dev/zero", stdout=sink, stdin=b"")
            assert written.status == 0
            assert sink.read_bytes() == b"\0" * 100_000
            pieces: list[bytes] = []
            await host.follow("for i in 1 2 3; do echo $i; sleep 0.05; done", pieces.append)
            assert b"".join(pieces) == b"1\n2\n3\n"
            assert (host._runner is not None) == runner
        finally:
            host.close()

    asyncio.run(scenario())


def test_a_wrong_host_key_names_the_fix_and_a_dead_host_backs_off(
    hosts: tuple[Host, Host], tmp_path: Path
) -> None:
    other = tmp_path / "known_hosts"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")])
    key = (tmp_path / "k.pub").read_text().split()
    other.write_text(f"[127.0.0.1]:{hosts[0].port} {key[0]} {key[1]}\n")

    async def scenario() -> None:
        wrong = HostConnection(spec_of(hosts[0], known_hosts=str(other)))
        with pytest.raises(HostUnreachable, match=f"ssh-keyscan -p {hosts[0].port} 127.0.0.1"):
            await wrong.connection()
        dead = HostConnection(spec_of(hosts[0], address=f"root@127.0.0.1:{free_port()}"))
        with pytest.raises(HostUnreachable, match="cannot be reached"):
            await dead.connection()
        assert dead.health.failures == 1
        with pytest.raises(HostUnreachable, match="next try in"):
            await dead.connection()  # in backoff: refused at once, not tried again
        assert dead.health.failures == 1

    asyncio.run(scenario())


def test_the_snapshot_is_shipped_once_then_only_what_the_host_lacks(
    hosts: tuple[Host, Host], tmp_path: Path
) -> None:
    files = {f"src/f{i}.py": f"x = {i}\n" * 50 for i in range(200)}
    repo = make_repo(tmp_path / "repo", files)

    async def scenario() -> None:
        host = HostConnection(spec_of(hosts[1]))
        where = repo_dir(str(hosts[1].workdir), "ship-test")
        try:
            first = await ship_snapshot(host, repo, git(repo, "rev-parse", "HEAD"), where)
            (repo / "src/f1.py").write_text("changed\n")
            git(repo, "commit", "-qam", "one file")
            second = await ship_snapshot(host, repo, git(repo, "rev-parse", "HEAD"), where)
            again = await ship_snapshot(host, repo, git(repo, "rev-parse", "HEAD"), where)
            assert first.bytes > 10 * second.bytes > 0
            assert second.had == 1, "the first snapshot was left out of the second bundle"
            assert again.bytes == 0
            listed = await host.sh(f"git -C {where} for-each-ref --format='%(refname)'")
            assert listed.text().split() == sorted(
                f"refs/corral/snap/{git(repo, 'rev-parse', rev)}" for rev in ("HEAD", "HEAD~1")
            )
        finally:
            host.close()

    asyncio.run(scenario())
