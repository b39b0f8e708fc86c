"""Fixtures for the agent CLI tests: a workspace to run in and a scripted model server."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

import tests.agents.mcp_stub
from tests.agents.clis import Workspace, workspace
from tests.agents.launch import Mcp
from tests.agents.model_server import ModelServer, running
from tests.agents.script import Script
from tests.conftest import make_repo


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    return workspace(tmp_path, make_repo(tmp_path / "repo", {"README.md": "# sample\n"}))


@pytest.fixture
def model_server(tmp_path: Path) -> Iterator[Callable[[Script], ModelServer]]:
    """Start a server for a script; its requests are also logged to tmp_path/requests.jsonl."""
    with ExitStack() as stack:

        def start(script: Script) -> ModelServer:
            return stack.enter_context(running(script, log=tmp_path / "requests.jsonl"))

        yield start


@pytest.fixture
def mcp(tmp_path: Path) -> tuple[Mcp, Path]:
    """The stdio MCP stub to offer an agent, and the file its `note` tool appends to."""
    notes = tmp_path / "notes.txt"
    stub = Path(tests.agents.mcp_stub.__file__)
    return Mcp(command=[sys.executable, str(stub)], env={"MCP_NOTES": str(notes)}), notes


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A directory no ancestor of which others may write (unlike anything under /tmp)."""
    root = Path.home() / ".cache" / "corral-tests"
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=root))
    yield path
    shutil.rmtree(path, ignore_errors=True)
