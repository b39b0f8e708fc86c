"""Headless Chromium over the DevTools protocol, for the web console's test: open a page, wait
until its terminal shows given text, read what it shows and take a screenshot.

textual-serve draws into a canvas (xterm.js), so there is no DOM text to wait on. A script run
before the page's own catches each xterm.js `Terminal` as it is built (the public class sets
`_addonManager` by assignment), so the test reads the very buffer the canvas is drawn from.
Chromium runs as root on a closed network: no sandbox, no GPU, no background traffic.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]

CATCH_TERMINALS = """
window.__terminals = [];
Object.defineProperty(Object.prototype, "_addonManager", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "_addonManager", {value, writable: true, configurable: true});
    window.__terminals.push(this);
  },
});
"""

SCREEN_TEXT = """
(() => {
  const term = window.__terminals && window.__terminals[0];
  if (!term) return "";
  const buffer = term.buffer.active, rows = [];
  for (let y = 0; y < term.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows.join("\\n");
})()
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab, driven by DevTools commands over its websocket."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.next_id = 0

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        await self.socket.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = json.loads(await self.socket.receive_str())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return answer.get("result", {}).get("value")

    async def screen_text(self) -> str:
        return str(await self.evaluate(SCREEN_TEXT) or "")

    async def wait_for(self, holds: Callable[[str], bool], *, within: float) -> str:
        """Poll the terminal's text until `holds` it; fail at the deadline with what it showed."""
        deadline = time.monotonic() + within
        text = ""
        while time.monotonic() < deadline:
            text = await self.screen_text()
            if holds(text):
                return text
            await asyncio.sleep(0.2)
        raise AssertionError(f"the page never showed what was awaited; it showed:\n{text}")

    async def screenshot(self) -> bytes:
        answer = await self.send("Page.captureScreenshot", format="png")
        return base64.b64decode(answer["data"])


class Browser:
    """A headless Chromium with a fresh profile, ended (and waited for) on close."""

    def __init__(self, program: str, profile: Path, *, width: int = 1280, height: int = 800):
        profile.mkdir(parents=True, exist_ok=True)
        self.profile = profile
        window = [f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        with (profile.parent / "chromium.log").open("wb") as log:
            self.process = subprocess.Popen(
                [program, *FLAGS, *window, "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    async def devtools_port(self, within: float = 30.0) -> int:
        """Chromium writes the port it chose into the profile once it listens."""
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"chromium exited with {self.process.returncode}")
            lines = marker.read_text().splitlines() if marker.exists() else []
            if lines and lines[0].isdigit():
                return int(lines[0])
            await asyncio.sleep(0.1)
        raise AssertionError("chromium never opened its DevTools port")

    async def open(self, session: aiohttp.ClientSession, url: str) -> Page:
        port = await self.devtools_port()
        async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
            targets = await answer.json()
        page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        page = Page(await session.ws_connect(page_url, max_msg_size=0))
        await page.send("Page.enable")
        await page.send("Page.addScriptToEvaluateOnNewDocument", source=CATCH_TERMINALS)
        await page.send("Page.navigate", url=url)
        return page

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
