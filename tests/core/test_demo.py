"""`corral demo`: five real auditors and three real coding agents, headless, on the sample
repository and on another one (`--repo`), with a lock wait, a merge conflict and verification."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.core.cli.demo import EXAMPLES, make_sample_repo
from corral.core.cli.main import _parser
from corral.core.log import events as ev
from corral.core.log import read_log
from corral.core.report.render import load_report
from corral.core.runs.rundir import list_runs
from tests.core.engine_helpers import CORRAL

AUDITORS = {"ruff", "bandit", "detect-secrets", "vulture", "radon"}
CODERS = {"lint-fix", "reformat", "modernize"}


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory: the run's control socket path must fit AF_UNIX's ~100 bytes."""
    path = Path(tempfile.mkdtemp(prefix="cd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_demo(cwd: Path, *args: str) -> tuple[Path, str]:
    """Run `corral demo ARGS` headless; return the repository it ran on and its output."""
    env = {**os.environ, "TMPDIR": str(cwd)}  # the fresh sample repository lands there
    env.pop("DEMO_TOOLS", None)
    proc = subprocess.run(
        [*CORRAL, "demo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    match = re.search(r"demo repository: (.+)", proc.stdout)
    assert match is not None, output
    return Path(match.group(1).strip()), output


def assert_full_demo(repo: Path, output: str) -> None:
    runs = list_runs(repo / ".git")
    assert len(runs) == 1, output
    rundir = runs[0]
    events = read_log(rundir.events).events
    report, _ = load_report(rundir.path / "report.json")  # validates it

    found_by = {agent for finding in report.findings for agent in finding.agents}
    assert found_by >= AUDITORS, f"findings only from {sorted(found_by)}"
    finished = {e.agent: e for e in events if isinstance(e, ev.AgentFinished)}
    assert set(finished) == AUDITORS | CODERS
    assert all(e.outcome == "succeeded" for e in finished.values()), finished

    waits = [e for e in events if isinstance(e, ev.LockWaiting)]
    assert waits, "one of lint-fix and reformat waits for the ruff-config lock"
    assert waits[0].lock == "ruff-config"
    assert {waits[0].agent, waits[0].holder} == {"lint-fix", "reformat"}

    left_out = [e for e in events if isinstance(e, ev.BranchLeftOut) and e.conflicts_with]
    predicted = [e for e in events if isinstance(e, ev.ConflictPredicted)]
    assert left_out or predicted, "no merge conflict"
    assert report.merged, "some coding work reaches the integration branch"

    verified = [e for e in events if isinstance(e, ev.VerificationFinished)]
    assert len(verified) == 1
    assert verified[0].passed, Path(verified[0].log_path).read_text()
    assert report.verification is not None
    assert report.verification.passed
    assert "report:" in output
    assert "verification passed" in output


def test_demo_runs_five_auditors_and_three_coders_on_the_sample(short_tmp: Path) -> None:
    repo, output = run_demo(short_tmp, "--quiet")
    assert repo.is_relative_to(short_tmp)
    assert_full_demo(repo, output)
    left_out = {
        e.agent: e
        for e in read_log(list_runs(repo / ".git")[0].events).events
        if isinstance(e, ev.BranchLeftOut)
    }
    assert "reformat" in left_out, "the 60-column formatter rewrote pyupgrade's lines"
    assert "modernize" in left_out["reformat"].conflicts_with


def another_repository(target: Path) -> Path:
    """A second service: the sample, changed, with a module of its own; adapters not in it."""
    source = target.parent / "source"
    shutil.copytree(EXAMPLES / "sample", source)
    (source / "inventory" / "orders.py").write_text(
        '"""Orders."""\n'
        "import subprocess\n"
        "from typing import List\n\n"
        'SMTP_PASSWORD = "0rders-Sup3r-Secret!"\n\n\n'
        "def total(lines: List[tuple]) -> float:\n"
        "    return sum(count * price for count, price in lines)\n\n\n"
        "def notify(address):\n"
        "    subprocess.call('mail -s order ' + address, shell=True)\n"
    )
    (source / "tests" / "test_orders.py").write_text(
        "import unittest\n\nfrom inventory.orders import total\n\n\n"
        "class OrdersTest(unittest.TestCase):\n"
        "    def test_total(self):\n"
        "        self.assertEqual(total([(2, 1.5), (1, 3.0)]), 6.0)\n"
    )
    # two classes with a complex method of the same name: radon reports both, one id each
    (source / "inventory" / "discounts.py").write_text(
        '"""Discount rules."""\n\n\n'
        + repeated_method("RetailPrice")
        + repeated_method("BulkPrice")
    )
    repo = make_sample_repo(target, source)
    assert not (repo / "tools").exists()
    return repo


def repeated_method(cls: str) -> str:
    """A class whose `price` method has a cyclomatic complexity of 12 (radon grade C)."""
    branches = "".join(
        f"        {'if' if n == 0 else 'elif'} code == {n}:\n            return {n}.5\n"
        for n in range(11)
    )
    return f"class {cls}:\n    def price(self, code):\n{branches}        return 0.0\n\n\n"


def test_demo_on_another_repository(short_tmp: Path) -> None:
    repo = another_repository(short_tmp / "orders")
    ran_on, output = run_demo(short_tmp, "--repo", str(repo), "--quiet")
    assert ran_on == repo.resolve()
    assert_full_demo(repo, output)
    report, _ = load_report(list_runs(repo / ".git")[0].path / "report.json")
    assert any(f.file == "inventory/orders.py" for f in report.findings)
    radon = [f.title for f in report.findings if "radon" in f.agents]
    methods = sorted(title.split(" is ")[0] for title in radon if title.startswith("method "))
    assert methods == ["method BulkPrice.price", "method RetailPrice.price"], radon


@pytest.mark.parametrize(
    "argv",
    [["demo", "--repo", "/x"], ["--repo", "/x", "demo"], ["--repo", "/y", "demo", "--repo", "/x"]],
)
def test_demo_takes_repo_before_or_after_the_command(argv: list[str]) -> None:
    assert _parser(argv).parse_args(argv).repo == Path("/x")


def test_demo_without_repo_uses_a_fresh_sample() -> None:
    argv = ["demo", "--quiet"]
    assert _parser(argv).parse_args(argv).repo is None
