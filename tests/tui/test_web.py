"""`corral serve --web`: the console in a real browser (headless Chromium), and the bind rules."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from corral.core.cli.serve import check_bind, console_command, is_loopback
from corral.core.errors import InputError
from tests.tui.browser import Browser, chromium
from tests.tui.synthetic import make_live_run

AGENTS = ("api-auth", "api-billing", "sec-scan", "migrate")
STATES = ("running", "stalled", "dead_lettered", "READ-ONLY")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(repo: Path, *args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "corral.core.cli", "--repo", str(repo), "serve", "--web", *args],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


async def until_answers(
    session: aiohttp.ClientSession, url: str, server: subprocess.Popen[bytes]
) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited with {server.returncode}"
        try:
            async with session.get(url) as answer:
                if answer.status == 200:
                    return await answer.text()
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's session: it and the consoles it started for each page."""
    if server.poll() is None:
        os.killpg(server.pid, 15)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, 9)
        server.wait()


@pytest.mark.slow
@pytest.mark.skipif(
    chromium() is None and os.environ.get("CORRAL_REQUIRE_CHROMIUM") != "1",
    reason="needs chromium (.ci/run installs it, and there a missing one fails the test)",
)
def test_the_dashboard_renders_in_headless_chromium(repo: Path, tmp_path: Path) -> None:
    run = make_live_run(repo)
    port = free_port()
    server = serve(repo, run.run_id, "--port", str(port), log=tmp_path / "serve.log")
    program = chromium()
    assert program is not None
    browser = Browser(program, tmp_path / "profile")

    async def drive() -> tuple[str, bytes, str]:
        async with aiohttp.ClientSession() as session:
            index = await until_answers(session, f"http://127.0.0.1:{port}/", server)
            page = await browser.open(session, f"http://127.0.0.1:{port}/")
            try:
                shown = await page.wait_for(
                    lambda text: all(word in text for word in (run.run_id, *AGENTS, *STATES)),
                    within=60,
                )
                return shown, await page.screenshot(), index
            finally:
                await page.socket.close()

    try:
        shown, png, index = asyncio.run(drive())
    finally:
        browser.close()
        stop(server)
    (tmp_path / "dashboard.png").write_bytes(png)
    assert "corral" in index
    # the dashboard itself, watch-only, with its keys in the footer
    assert "READ-ONLY" in shown.splitlines()[0]
    assert "? Help" in shown.splitlines()[-1]
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width == 1280
    assert height > 600
    assert len(png) > 20_000, "a screenshot this small is a blank page"


def test_a_non_loopback_bind_is_refused_unless_asked() -> None:
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.8.9.10"):
        assert is_loopback(host), host
        check_bind(host, 8000, allow_remote=False)
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.org"):
        assert not is_loopback(host), host
        with pytest.raises(InputError, match="no login") as refused:
            check_bind(host, 8000, allow_remote=False)
        assert "--allow-remote" in str(refused.value)
        check_bind(host, 8000, allow_remote=True)
    with pytest.raises(InputError, match="1 to 65535"):
        check_bind("127.0.0.1", 70000, allow_remote=False)


def test_the_page_runs_a_read_only_console_unless_operator(repo: Path) -> None:
    watch = console_command(repo, "r1", operator=False)
    assert watch.endswith("tui r1 --read-only")
    assert "--read-only" not in console_command(repo, None, operator=True)


def test_the_command_refuses_a_public_bind_and_names_why(repo: Path, tmp_path: Path) -> None:
    server = serve(repo, "--host", "0.0.0.0", log=tmp_path / "serve.log")
    assert server.wait(timeout=60) == 2
    said = (tmp_path / "serve.log").read_text()
    assert "not a loopback address" in said
    assert "--allow-remote" in said
