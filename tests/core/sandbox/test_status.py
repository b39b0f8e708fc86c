"""`corral status` says where each agent runs and, sandboxed, what its policy lets it reach
(the same words as the console's agent detail: core/operator/describe.py `runtime_line`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.engine_helpers import agent_block, corral, only_run, write_plan

POLICY = {"network": "allow", "allow": ["pypi.org:443"], "read": ["/opt"], "hide": ["~/work"]}


@pytest.fixture(autouse=True)
def _bwrap(bwrap_works: None) -> None:
    """Real bubblewrap (the probe fails the test if it cannot)."""


def test_status_names_each_agents_runtime_and_a_sandboxed_policy(
    repo: Path, tmp_path: Path
) -> None:
    body = agent_block("boxed", ["true"], sandbox=POLICY) + agent_block(
        "plain", ["true"], runtime="local"
    )
    plan = write_plan(tmp_path, body, header='runtime = "sandbox"\n')
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = only_run(repo).run_id

    text = corral(repo, "status", run_id, check=True).stdout
    assert (
        "runtime of boxed: sandbox · network: only pypi.org:443 (through corral's proxy) · "
        "read: /opt · 26 credential stores hidden, and ~/work"
    ) in text, text
    assert "runtime of plain: local\n" in text, text

    published = json.loads(corral(repo, "status", run_id, "--json", check=True).stdout)
    assert published["status"] == "finished"
    boxed, plain = published["runtimes"]["boxed"], published["runtimes"]["plain"]
    assert (boxed["runtime"], boxed["sandboxed"]) == ("sandbox", True)
    assert boxed["policy"]["allow"] == ["pypi.org:443"]
    assert boxed["summary"][-1] == "26 credential stores hidden, and ~/work"
    assert (plain["runtime"], plain["sandboxed"], plain["policy"]) == ("local", False, None)
