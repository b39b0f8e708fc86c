"""The engine runs without the console: importing all of core and worktrees loads no Textual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import corral.core
import corral.worktrees


def _modules(package: object) -> list[str]:
    root = Path(package.__file__).parent  # type: ignore[attr-defined]
    name = package.__name__  # type: ignore[attr-defined]
    return [f"{name}.{path.stem}" for path in sorted(root.glob("*.py")) if path.stem != "__init__"]


def test_core_and_worktrees_never_import_textual() -> None:
    modules = _modules(corral.core) + _modules(corral.worktrees)
    assert "corral.core.engine" in modules
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'corral.tui')))\n"
    code += "print(bad)\n"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"


def test_agent_side_client_stays_light() -> None:
    """`corral heartbeat` must not pay for pydantic, GitPython, rich or Textual at start-up."""
    code = (
        "import sys\n"
        "from corral.core import cli, client, entry\n"
        "heavy = sorted(m for m in ('pydantic', 'git', 'rich', 'textual', 'psutil', 'typing', 'dataclasses')\n"
        "               if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"


def test_the_engine_starts_without_the_end_of_run_modules() -> None:
    """Merge, report and summary code load on the preload thread, not before the first agent."""
    code = (
        "import sys\n"
        "from corral.core import engine, runner, warmup\n"
        "print(sorted(m for m in warmup.LATER_MODULES if m in sys.modules))\n"
        "warmup.preload().join(timeout=60)\n"
        "print(sorted(m for m in warmup.LATER_MODULES if m not in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.split("\n")[:2] == ["[]", "[]"]
