"""One error root: every error core/ raises on purpose is a CorralError, and the command line
turns one into `corral: <message>` and the error's exit status (core/errors.py)."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import corral.core
from corral.core.cli import main as cli
from corral.core.engine import runner
from corral.core.errors import (
    EXIT_ENGINE_FAULT,
    EXIT_FAILED,
    EXIT_INVALID,
    CorralError,
    EngineFault,
    InputError,
)
from tests.corpus.regenerate import CORPUS
from tests.test_architecture import _modules

CORE = Path(corral.core.__file__).parent


def test_every_exception_class_of_core_is_a_corral_error() -> None:
    """Fails when someone adds an error root beside the tree instead of under it."""
    outside = []
    for name in _modules(corral.core):
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            # a private class is control flow inside its module (sandbox/proxy.py _Refused)
            ours = cls.__module__ == name and issubclass(cls, BaseException)
            ours = ours and not cls.__name__.startswith("_")
            if ours and not issubclass(cls, CorralError):
                outside.append(f"{name}.{cls.__qualname__}")
    assert outside == []


def test_errors_keep_the_bases_their_callers_catch() -> None:
    from corral.core.locks.shared_files import FencedPathError
    from corral.core.runtime.kill import TerminateError
    from corral.core.runtime.proctree import SpawnError

    assert issubclass(FencedPathError, ValueError)
    assert issubclass(SpawnError, RuntimeError)
    assert issubclass(TerminateError, RuntimeError)


def test_exit_codes_by_kind_match_the_run_outcomes() -> None:
    from corral.core.log import LogCorrupted, LogFailed
    from corral.core.plan.model import PlanError
    from corral.core.runs.rundir import NotInRepository, RunNotFound

    assert (runner.EXIT_FAILED, runner.EXIT_INVALID, runner.EXIT_ENGINE_ERROR) == (
        EXIT_FAILED,
        EXIT_INVALID,
        EXIT_ENGINE_FAULT,
    )
    for cls in (PlanError, RunNotFound, NotInRepository):
        assert cls.exit_code == EXIT_INVALID, cls
    assert LogFailed.exit_code == EXIT_ENGINE_FAULT
    from corral.core.operator.errors import StartFailed

    assert StartFailed("bad plan", invalid_plan=True).exit_code == EXIT_INVALID
    assert StartFailed("engine never answered").exit_code == EXIT_FAILED
    assert LogCorrupted.exit_code == runner.EngineBusy.exit_code == EXIT_FAILED


def _corral_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("corral")}


def test_errors_module_imports_nothing_so_the_agent_side_may() -> None:
    assert _corral_imports(CORE / "errors.py") == set()
    for path in (CORE / "agent").glob("*.py"):
        others = {n for n in _corral_imports(path) if not n.startswith("corral.core.agent")}
        assert others <= {"corral.core.errors"}, path


@pytest.mark.parametrize(
    ("error", "code"),
    [(CorralError("refused"), 1), (InputError("no such thing"), 2), (EngineFault("disk"), 3)],
)
def test_the_command_line_catches_corral_errors_once(
    error: CorralError,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def handler(_args: object) -> int:
        raise error

    monkeypatch.setitem(cli._COMMANDS, "runs", handler)
    assert cli.main(["runs"]) == code
    assert capsys.readouterr().err == f"corral: {error}\n"


def test_a_message_is_made_inert(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def handler(_args: object) -> int:
        raise CorralError("agent said \x1b]0;owned\x07 this")

    monkeypatch.setitem(cli._COMMANDS, "runs", handler)
    assert cli.main(["runs"]) == 1
    assert "\x1b" not in capsys.readouterr().err


def test_status_of_a_log_from_a_newer_corral_says_to_upgrade(repo: Path) -> None:
    run = repo / ".git" / "corral" / "runs" / "r1"
    run.mkdir(parents=True)
    source = (CORPUS / "passed-and-approved" / "events.jsonl").read_bytes()
    first, rest = source.split(b"\n", 1)
    (run / "events.jsonl").write_bytes(
        first.replace(b'"log_format":1', b'"log_format":99') + b"\n" + rest
    )
    for command in (["status", "r1"], ["verify", "r1"]):
        result = subprocess.run(
            [sys.executable, "-m", "corral.core.cli", *command],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, result.stderr
        assert "log format 99" in result.stderr
        assert "Upgrade corral" in result.stderr


def test_not_in_a_repository_and_no_such_run_exit_2(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for cwd in (repo, outside):
        result = subprocess.run(
            [sys.executable, "-m", "corral.core.cli", "status", "nope"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("corral: ")
