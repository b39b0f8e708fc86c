"""Presets: the data files validate, a repository's own override by name, an agent with a
preset expands into its command, environment, kind and stream, and each attempt renders it with
its overlay; a bad preset or a missing CLI is a clear exit 2 that starts nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from corral.core.plan.model import AgentSpec, FromEnv, PlanError, parse_plan, resolve_env
from corral.core.presets.attempt import render, substitute, write_overlays
from corral.core.presets.catalog import Catalog, PresetError, load_catalog, parse_preset
from corral.core.presets.expand import expand, expand_plan, read_prompt
from corral.core.presets.frozen import freeze, thaw
from corral.core.presets.schema import Preset
from tests.conftest import git
from tests.core.engine_helpers import corral, write_plan

FIVE = ["aider", "claude-code", "codex", "gemini", "opencode"]
MINIMAL = """
name = "mine"
description = "my agent"
program = "my-agent"
install = "pip install my-agent"
command = ["my-agent", "--task", "{prompt}", "{model_args}", "{endpoint_args}", "{preset_args}"]
model_args = ["--model", "{model}"]
pass_env = ["MY_KEY"]
kind = "audit"
timeout = "20m"
stream = "claude"

[env]
MY_SETTINGS = "{overlay}/settings.json"
MY_MODE = "headless"

[endpoint]
variable = "MY_BASE_URL"
args = ["--base-url", "{endpoint}"]

[[overlays]]
path = "settings.json"
content = '{"model": "{model}", "workspace": "{workspace}"}'

[[overlays]]
path = "endpoint.json"
when = "endpoint"
content = '{"url": "{endpoint}"}'
"""


def mine() -> Preset:
    return parse_preset(MINIMAL, "mine.toml")


def agent(**fields: object) -> dict[str, object]:
    return {"id": "a", "preset": "mine", "prompt": "fix it", **fields}


def expanded(environ: dict[str, str] | None = None, **fields: object) -> AgentSpec:
    plan = parse_plan({"agent": [agent(**fields)]})
    return expand(plan.agents[0], mine(), "fix it", environ or {})


def test_the_five_packaged_presets_load_with_their_programs_and_adapters() -> None:
    catalog = load_catalog()
    assert catalog.names() == FIVE
    programs = {name: catalog.get(name).program for name in FIVE}  # type: ignore[union-attr]
    assert programs == {
        "aider": "aider",
        "claude-code": "claude",
        "codex": "codex",
        "gemini": "gemini",
        "opencode": "opencode",
    }
    streams = {name: catalog.get(name).stream for name in FIVE}  # type: ignore[union-attr]
    assert streams == {
        "aider": "aider",
        "claude-code": "claude",
        "codex": "codex",
        "gemini": "gemini",
        "opencode": "opencode",
    }
    for name in FIVE:
        preset = catalog.get(name)
        assert preset is not None
        assert preset.install
        assert preset.endpoint is not None
        assert preset.mcp is not None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("{prompt}", "{promt}"), "command: '{promt}' uses {promt}, which is not a placeholder"),
        (('command = ["my-agent"', 'command = ["other"'), "not the program 'my-agent'"),
        (('kind = "audit"', 'kind = "audit"\nflavour = "x"'), "flavour: is not a preset field"),
        (('install = "pip install my-agent"\n', ""), "install: is required; add it"),
        (('timeout = "20m"', 'timeout = "soon"'), "timeout:"),
    ],
    ids=["typo", "program", "unknown-field", "missing-install", "bad-duration"],
)
def test_a_bad_preset_file_is_refused_naming_the_file_and_the_field(
    change: tuple[str, str], expected: str
) -> None:
    with pytest.raises(PresetError) as caught:
        parse_preset(MINIMAL.replace(*change, 1), "/repo/.corral/presets/mine.toml")
    assert "/repo/.corral/presets/mine.toml: not a valid preset" in str(caught.value)
    assert expected in str(caught.value)


def test_a_repository_preset_overrides_a_packaged_one_by_name(tmp_path: Path) -> None:
    own = tmp_path / ".corral" / "presets"
    own.mkdir(parents=True)
    text = MINIMAL.replace('name = "mine"', 'name = "codex"').replace("my-agent", "codex")
    (own / "my-codex.toml").write_text(text)
    (own / "mine.toml").write_text(MINIMAL)
    catalog = load_catalog(tmp_path)
    assert catalog.names() == sorted([*FIVE, "mine"])
    assert catalog.entries["codex"].source == str(own / "my-codex.toml")
    assert catalog.entries["claude-code"].source == "packaged:claude-code.toml"
    (own / "again.toml").write_text(MINIMAL)
    with pytest.raises(PresetError, match="preset 'mine' is also defined in"):
        load_catalog(tmp_path)
    (own / "again.toml").write_text("name = ")
    with pytest.raises(PresetError, match=r"again\.toml: is not valid TOML"):
        load_catalog(tmp_path)


def test_expand_makes_the_command_environment_kind_timeouts_and_stream() -> None:
    spec = expanded(
        {"MY_KEY": "secret", "OTHER": "x"},
        model="big",
        preset_args=["--fast"],
        env={"MY_MODE": "mine"},
    )
    assert spec.command == [
        "my-agent", "--task", "{prompt}", "--model", "{model}", "{endpoint_args}", "--fast",
    ]  # fmt: skip
    assert spec.model == "big"
    assert spec.env == {
        "MY_SETTINGS": "{overlay}/settings.json",
        "MY_MODE": "mine",  # the plan's own env wins
        "MY_KEY": FromEnv(from_env="MY_KEY"),  # passed on by reference: set in corral's env
    }
    assert (spec.kind, spec.timeout, spec.stream) == ("audit", 1200.0, "claude")
    assert spec.prompt == "fix it"


def test_without_a_model_the_model_arguments_are_left_out_and_what_the_agent_set_stays() -> None:
    spec = expanded(kind="coding", timeout="1m")
    assert "--model" not in spec.argv
    assert "MY_KEY" not in spec.env
    assert (spec.kind, spec.timeout) == ("coding", 60.0)


def test_defaults_set_in_the_plan_win_over_the_preset() -> None:
    plan = parse_plan({"defaults": {"kind": "coding"}, "agent": [agent()]})
    spec = expand(plan.agents[0], mine(), "fix it", {})
    assert spec.kind == "coding"


def test_render_fills_the_attempt_in_one_pass_and_adds_the_endpoint_only_when_set() -> None:
    spec = expanded(model="openai/big", prompt="keep {overlay} and {workspace} as written")
    spec = spec.model_copy(update={"prompt": "keep {overlay} and {workspace} as written"})
    env = {"MY_SETTINGS": "{overlay}/settings.json", "HOME": "/home/u"}
    plain = render(spec, mine(), env=env, workspace="/w", overlay="/o")
    assert plain.argv == [
        "my-agent", "--task", "keep {overlay} and {workspace} as written", "--model", "openai/big",
    ]  # fmt: skip
    assert plain.env == {"MY_SETTINGS": "/o/settings.json", "HOME": "/home/u"}
    assert plain.files == {"settings.json": '{"model": "openai/big", "workspace": "/w"}'}
    pointed = render(
        spec,
        mine(),
        env={**env, "MY_BASE_URL": "http://127.0.0.1:9/v1"},
        workspace="/w",
        overlay="/o",
    )
    assert pointed.argv[-2:] == ["--base-url", "http://127.0.0.1:9/v1"]
    assert pointed.files["endpoint.json"] == '{"url": "http://127.0.0.1:9/v1"}'
    assert substitute("{model_name} {unknown}", {"model_name": "big"}) == "big {unknown}"


def test_overlays_are_private_files_in_the_attempts_own_directory(tmp_path: Path) -> None:
    directory = tmp_path / "out" / "overlay"
    (tmp_path / "out").mkdir()
    write_overlays(directory, {"settings.json": "{}"})
    assert (directory / "settings.json").read_text() == "{}"
    assert directory.stat().st_mode & 0o777 == 0o700
    assert (directory / "settings.json").stat().st_mode & 0o777 == 0o600


def test_each_packaged_preset_renders_its_headless_command_line() -> None:
    catalog = load_catalog()
    env = {
        "ANTHROPIC_BASE_URL": "http://h/", "OPENAI_BASE_URL": "http://h/v1",
        "GOOGLE_GEMINI_BASE_URL": "http://h/",
    }  # fmt: skip
    lines = {}
    for name, model in [
        ("claude-code", "sonnet"), ("codex", "gpt-5.5"), ("gemini", "gemini-2.5-pro"),
        ("opencode", "corral/m"), ("aider", "openai/m"),
    ]:  # fmt: skip
        plan = parse_plan({"agent": [{"id": "a", "preset": name, "prompt": "P", "model": model}]})
        preset = catalog.get(name)
        assert preset is not None
        spec = expand(plan.agents[0], preset, "P", {})
        own, _ = resolve_env(spec.env, {})
        lines[name] = render(spec, preset, env={**own, **env}, workspace="/w", overlay="/o")
    assert lines["claude-code"].argv == [
        "claude", "-p", "--output-format", "stream-json", "--verbose", "--model", "sonnet",
        "--permission-mode", "bypassPermissions", "--", "P",
    ]  # fmt: skip
    assert lines["codex"].argv[:8] == [
        "codex", "exec", "--json", "--skip-git-repo-check", "-s", "workspace-write", "-m", "gpt-5.5",
    ]  # fmt: skip
    assert 'base_url="http://h/v1"' in lines["codex"].argv[11]
    assert lines["codex"].argv[-1] == "P"
    assert lines["gemini"].env["GEMINI_CLI_SYSTEM_DEFAULTS_PATH"] == "/o/gemini-defaults.json"
    settings = json.loads(lines["gemini"].files["gemini-defaults.json"])
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    config = json.loads(lines["opencode"].files["opencode.json"])
    assert config["provider"]["corral"]["options"]["baseURL"] == "http://h/v1"
    assert list(config["provider"]["corral"]["models"]) == ["m"]
    assert lines["opencode"].env["OPENCODE_CONFIG"] == "/o/opencode.json"
    assert lines["aider"].argv[:5] == [
        "aider", "--model", "openai/m", "--openai-api-base", "http://h/v1",
    ]  # fmt: skip
    assert "/o/chat.history.md" in lines["aider"].argv


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"preset": None}, "give a command"),
        ({"command": ["true"]}, "give either a command or a preset"),
        ({"prompt": None}, "needs its task"),
        ({"prompt_file": "t.md"}, "needs its task"),
        (
            {"preset": None, "command": ["true"], "model": "m"},
            "model: only for an agent with a preset",
        ),
        ({"preset": "Not A Name"}, "preset"),
    ],
    ids=["neither", "both", "no-prompt", "two-prompts", "model-without-preset", "bad-name"],
)
def test_a_preset_agent_needs_a_preset_or_a_command_and_one_prompt(
    fields: dict[str, object], expected: str
) -> None:
    data = {k: v for k, v in agent(**fields).items() if v is not None}
    with pytest.raises(PlanError, match=expected):
        parse_plan({"agent": [data]})


def test_expand_plan_reports_an_unknown_preset_with_the_known_ones_and_reads_prompt_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "fix.md").write_text("Fix the bug.\n")
    plan = parse_plan(
        {
            "agent": [
                {"id": "a", "preset": "claude-code", "prompt_file": "tasks/fix.md"},
                {"id": "b", "preset": "cluade", "prompt": "x"},
                {"id": "c", "preset": "codex", "prompt_file": "missing.md"},
                {"id": "d", "command": ["true"]},
            ]
        }
    )
    done, problems = expand_plan(plan, load_catalog(), read_prompt(tmp_path), {})
    assert done.agents[0].prompt == "Fix the bug.\n"
    assert (done.agents[0].command or [""])[0] == "claude"
    assert done.agents[3].command == ["true"]
    messages = [str(problem) for problem in problems]
    assert messages[0].startswith(
        "agent 'b': preset: 'cluade' is not a known preset; known: aider, claude-code, codex,"
    )
    assert messages[1].startswith(
        f"agent 'c': prompt_file: {tmp_path / 'missing.md'} does not exist"
    )
    assert len(messages) == 2


def test_a_run_keeps_its_expanded_agents_for_a_resume(tmp_path: Path) -> None:
    plan = parse_plan({"agent": [agent(), {"id": "b", "command": ["true"]}]})
    catalog = Catalog.of([mine()])
    done, _ = expand_plan(plan, catalog, read_prompt(tmp_path), {})
    freeze(tmp_path / "presets.json", done, [mine()])
    thawed, presets = thaw(tmp_path / "presets.json", plan)
    assert thawed.agents == done.agents
    assert presets.get("mine") == mine()


def test_a_missing_cli_is_exit_2_naming_its_install_command_and_starts_nothing(
    repo: Path, tmp_path: Path
) -> None:
    body = (
        '[[agent]]\nid = "claude"\npreset = "claude-code"\nprompt = "fix it"\n'
        'env = { PATH = "/nonexistent" }\n'
    )
    plan = write_plan(tmp_path, body)
    for command in (["validate", str(plan)], ["run", str(plan)]):
        result = corral(repo, *command)
        assert result.returncode == 2, result.stdout + result.stderr
        assert (
            "agent 'claude': preset: program 'claude' is not on PATH; install it: "
            "npm install -g @anthropic-ai/claude-code (preset 'claude-code')"
        ) in result.stderr
    assert not (repo / ".git" / "corral" / "runs").exists() or not any(
        (repo / ".git" / "corral" / "runs").iterdir()
    )
    assert "corral/" not in git(repo, "branch", "--list")


def test_an_unknown_preset_is_exit_2_listing_the_known_ones(repo: Path, tmp_path: Path) -> None:
    plan = write_plan(tmp_path, '[[agent]]\nid = "a"\npreset = "cluade"\nprompt = "x"\n')
    result = corral(repo, "validate", str(plan))
    assert result.returncode == 2
    assert "'cluade' is not a known preset; known: aider, claude-code, codex, gemini, opencode" in (
        result.stderr
    )


def test_corral_presets_lists_each_preset_with_what_is_installed(repo: Path) -> None:
    own = repo / ".corral" / "presets"
    own.mkdir(parents=True)
    (own / "mine.toml").write_text(MINIMAL.replace("my-agent", "git"))
    result = corral(repo, "presets", "--json")
    assert result.returncode == 0, result.stderr
    listed = {preset["name"]: preset for preset in json.loads(result.stdout)["presets"]}
    assert sorted(listed) == sorted([*FIVE, "mine"])
    assert listed["mine"]["installed"] is True
    assert listed["mine"]["version"].startswith("git version")
    assert listed["mine"]["source"] == str(own / "mine.toml")
    assert listed["codex"]["install"] == "npm install -g @openai/codex"
    text = corral(repo, "presets", "--no-version")
    assert text.returncode == 0
    assert "claude-code  claude" in text.stdout
    assert f"(from {own / 'mine.toml'})" in text.stdout


ECHOER = """
name = "echoer"
description = "writes its prompt and its overlay into the worktree"
program = "sh"
install = "it is part of every system"
command = [
    "sh", "-c",
    '''set -e
cp "$ECHO_SETTINGS" settings.copy && printf %s "$1" > task.txt
printf %s "${ECHO_PASSED-unset}" > passed.txt && test ! -e "$ECHO_FAIL"''',
    "sh", "{prompt}",
]
stream = "aider"
pass_env = ["ECHO_PASSED"]

[env]
ECHO_SETTINGS = "{overlay}/settings.json"

[[overlays]]
path = "settings.json"
content = '{"model": "{model}"}'
"""


def test_a_repository_preset_runs_through_the_engine_with_its_overlay_and_resumes(
    repo: Path, tmp_path: Path
) -> None:
    """The whole path without an AI CLI: the catalog, preflight's expansion, the attempt's
    overlay and environment, the commit and the merge; a resumed run starts what it expanded
    when it began, though its prompt file and its preset are gone."""
    own = repo / ".corral" / "presets"
    own.mkdir(parents=True)
    (own / "echoer.toml").write_text(ECHOER)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "an echoer preset")
    (tmp_path / "task.md").write_text("say {overlay} as written")
    fail = tmp_path / "fail"
    fail.touch()
    body = (
        '[[agent]]\nid = "echo"\npreset = "echoer"\nprompt_file = "task.md"\nmodel = "m1"\n'
        f"env = {{ ECHO_FAIL = {json.dumps(str(fail))} }}\n"
    )
    plan = write_plan(tmp_path, body)
    first = corral(repo, "run", str(plan), "--run-id", "echo-run", "--quiet")
    assert first.returncode == 1, first.stdout + first.stderr
    rundir = repo / ".git" / "corral" / "runs" / "echo-run"
    overlay = rundir / "agents" / "echo" / "1" / "out" / "overlay" / "settings.json"
    assert overlay.read_text() == '{"model": "m1"}'
    frozen = json.loads((rundir / "presets.json").read_text())
    assert [preset["name"] for preset in frozen["presets"]] == ["echoer"]
    assert frozen["agents"][0]["prompt"] == "say {overlay} as written"
    assert frozen["agents"][0]["stream"] == "aider"

    for gone in (fail, tmp_path / "task.md", own / "echoer.toml"):
        gone.unlink()
    again = corral(repo, "run", "--resume", "echo-run", "--retry", "echo", "--quiet")
    assert again.returncode == 0, again.stdout + again.stderr
    integration = "corral/echo-run/integration"
    assert git(repo, "show", f"{integration}:task.txt") == "say {overlay} as written"
    assert json.loads(git(repo, "show", f"{integration}:settings.copy")) == {"model": "m1"}


def test_validate_shows_the_command_a_preset_agent_runs(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)  # else the endpoint's arguments show
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "codex"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    body = (
        '[[agent]]\nid = "c"\npreset = "codex"\nprompt = "fix it"\nmodel = "gpt-5.5"\n'
        f"env = {{ PATH = {json.dumps(str(bin_dir))} }}\n"
    )
    result = corral(repo, "validate", str(write_plan(tmp_path, body)))
    assert result.returncode == 0, result.stderr
    assert (
        "agent c runs preset codex: codex exec --json --skip-git-repo-check "
        "-s workspace-write -m gpt-5.5 -c mcp_servers.corral={command="
    ) in result.stdout
    assert 'env_vars=["CORRAL_SOCKET",' in result.stdout, "corral's MCP server, as started"
    assert result.stdout.rstrip().endswith("-- {prompt}")


def test_a_sandboxed_preset_agent_sees_its_overlay_and_what_the_preset_passes_on(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overlay lives in the attempt's output directory, which the sandbox mounts; a
    `pass_env` variable set in corral's environment reaches the agent, though a sandbox passes
    on nothing of the engine's environment but a few basics."""
    from corral.core.sandbox.bwrap import probe

    found = probe()
    if not found.ok:
        pytest.skip(f"bubblewrap cannot run here: {found.problem}")
    own = repo / ".corral" / "presets"
    own.mkdir(parents=True)
    (own / "echoer.toml").write_text(ECHOER)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "an echoer preset")
    body = (
        '[run]\nruntime = "sandbox"\n\n[[agent]]\nid = "echo"\npreset = "echoer"\n'
        'prompt = "inside"\nmodel = "m2"\nenv = { ECHO_FAIL = "/nonexistent" }\n'
    )
    plan = tmp_path / "plan.toml"
    plan.write_text(body)
    monkeypatch.setenv("ECHO_PASSED", "from corral's environment")
    done = corral(repo, "run", str(plan), "--run-id", "sandboxed", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    integration = "corral/sandboxed/integration"
    assert git(repo, "show", f"{integration}:task.txt") == "inside"
    assert json.loads(git(repo, "show", f"{integration}:settings.copy")) == {"model": "m2"}
    assert git(repo, "show", f"{integration}:passed.txt") == "from corral's environment"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("[endpoint]", "[unused]"), "needs an [endpoint] table"),
        ((', "{endpoint_args}"', ""), "no {endpoint_args} item"),
        ((', "{model_args}"', ""), "no {model_args} item"),
    ],
    ids=["endpoint-args-without-endpoint", "endpoint-args-nowhere", "model-args-nowhere"],
)
def test_a_preset_whose_parts_do_not_fit_together_is_refused(
    change: tuple[str, str], expected: str
) -> None:
    text = MINIMAL.replace(*change, 1)
    if change[1] == "[unused]":  # drop the whole [endpoint] table
        text = text.replace(
            '[unused]\nvariable = "MY_BASE_URL"\nargs = ["--base-url", "{endpoint}"]\n', ""
        )
    with pytest.raises(PresetError, match=re.escape(expected)):
        parse_preset(text, "mine.toml")


def test_preset_args_for_a_preset_that_takes_none_are_a_problem(tmp_path: Path) -> None:
    preset = parse_preset(MINIMAL.replace(', "{preset_args}"', "", 1), "mine.toml")
    plan = parse_plan({"agent": [agent(preset_args=["--x"], model="m")]})
    _, problems = expand_plan(plan, Catalog.of([preset]), read_prompt(tmp_path), {})
    assert [problem.field for problem in problems] == ["preset_args"]
    assert "takes no preset_args" in problems[0].message


def test_claude_code_with_input_takes_its_prompt_as_the_first_message(tmp_path: Path) -> None:
    """`input_format = "stream-json"`: its `[input]` command (no prompt argument) and the prompt
    written to its stdin as it starts; a preset that takes no input says so."""
    catalog = load_catalog(tmp_path)
    plan = parse_plan(
        {
            "agent": [
                {
                    "id": "c",
                    "preset": "claude-code",
                    "prompt": "- fix {it}",
                    "input_format": "stream-json",
                },
                {"id": "x", "preset": "codex", "prompt": "fix", "input_format": "stream-json"},
                {"id": "l", "preset": "claude-code", "prompt": "fix", "input_format": "lines"},
            ]
        }
    )
    done, problems = expand_plan(plan, catalog, read_prompt(tmp_path), {})
    assert [(p.where, p.field) for p in problems] == [
        ("agent 'x'", "input_format"),
        ("agent 'l'", "input_format"),
    ]
    assert "takes no input while it runs; remove input_format" in problems[0].message
    assert 'set input_format = "stream-json"' in problems[1].message
    claude = done.agents[0]
    preset = catalog.get("claude-code")
    assert preset is not None
    launch = render(claude, preset, env={}, workspace="/w", overlay="/o")
    assert launch.argv[:4] == ["claude", "-p", "--input-format", "stream-json"]
    assert "- fix {it}" not in launch.argv
    assert launch.first_input == "- fix {it}"  # braces in the prompt stay as written
