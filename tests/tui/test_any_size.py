"""The console at any size and any colour setting: what a narrow terminal keeps, what a wide one
fills, failures first, help without Textual's built-ins, and failures that stand out without
colour (the pictures are test_snapshots.py's)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from rich.style import Style
from rich.text import Text
from textual.widgets._footer import FooterKey

from corral.core.operator.describe import STATE_STYLE
from corral.tui import look
from corral.tui.app import CorralApp
from corral.tui.screens.dashboard import DashboardScreen
from corral.tui.widgets.tables import AgentsTable, fit_columns
from tests.tui.conftest import until
from tests.tui.synthetic import frozen_clock, make_live_run


def dashboard_ready(app: CorralApp) -> bool:
    screen = app.screen
    return isinstance(screen, DashboardScreen) and screen.draws > 0 and screen.agents.row_count > 0


def fit(width: int) -> dict[str, int]:
    return {
        key: size
        for key, _, size in fit_columns(
            AgentsTable.COLUMNS,
            width,
            first=AgentsTable.FIRST,
            then=AgentsTable.THEN,
            minimum=AgentsTable.MINIMUM,
            grow=AgentsTable.GROW,
        )
    }


def test_columns_yield_to_state_id_and_progress_and_widen_when_wide() -> None:
    narrow = fit(78)
    assert {"id", "state", "progress"} <= set(narrow)
    assert "workspace" not in narrow
    assert sum(size + 2 for size in narrow.values()) <= 78
    assert set(fit(40)) == {"mark", "id", "state", "progress"}  # never fewer than these
    wide = fit(198)
    assert set(wide) == {key for key, _, _ in AgentsTable.COLUMNS}
    assert sum(size + 2 for size in wide.values()) == 198  # nothing left empty
    wanted = {key: size for key, _, size in AgentsTable.COLUMNS}
    assert wide["progress"] > wanted["progress"]
    assert wide["workspace"] > wanted["workspace"]


@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
def test_the_footer_keeps_help_quit_and_commands(repo: Path, size: tuple[int, int]) -> None:
    run = make_live_run(repo)

    async def scenario() -> None:
        app = CorralApp(repo, run.run_id, clock=frozen_clock)
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            await pilot.pause(0.2)
            keys = list(app.screen.query(FooterKey))
            assert [key.key for key in keys[:3]] == ["question_mark", "q", "colon"]
            right = app.size.width
            assert all(key.region.right <= right for key in keys[:3])
            assert all(key.region.width > 0 for key in keys[:3])
            table = app.screen.query_one("#agents", AgentsTable)
            shown = {key for key, _, _ in table.columns_shown}
            assert {"id", "state", "progress"} <= shown
            if size[0] == 200:
                widths = sum(column.get_render_width(table) for column in table.columns.values())
                assert widths >= table.size.width - 3  # the table fills the screen

    asyncio.run(scenario())


def test_failures_sort_first_on_a_key_and_back(repo: Path) -> None:
    run = make_live_run(repo)

    async def scenario() -> None:
        app = CorralApp(repo, run.run_id, clock=frozen_clock)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            table = app.screen.query_one("#agents", AgentsTable)

            def order() -> list[str]:
                return [str(row.key.value) for row in table.ordered_rows]

            planned = order()
            assert planned[0] == "api-auth"
            await pilot.press("f")
            await until(pilot, lambda: order()[:2] == ["perf", "sec-scan"], what="failures first")
            await until(
                pilot, lambda: "failures first" in str(table.border_title), what="the title"
            )
            rest = [agent for agent in planned if agent not in ("perf", "sec-scan")]
            assert order()[2:] == rest  # the others keep the plan's order
            await pilot.press("f")
            await until(pilot, lambda: order() == planned, what="the plan's order")

    asyncio.run(scenario())


def test_help_lists_corral_keys_in_order_with_a_glyph_legend(repo: Path) -> None:
    run = make_live_run(repo)

    async def scenario() -> None:
        app = CorralApp(repo, run.run_id, clock=frozen_clock)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            rows = app.help_rows(app.screen)
            ids = [binding_id for _, _, binding_id, _ in rows]
            assert all(ids), "a key without a binding id is one of Textual's built-ins"
            assert ids[0] == "dashboard.open"  # the screen's own first, as bound
            first_global = next(i for i, name in enumerate(ids) if name.startswith("app."))
            assert all(name.startswith("app.") for name in ids[first_global:])
            assert ids.index("dashboard.kill") < ids.index("dashboard.retry")
            legend = look.legend_text().plain
            for state, (glyph, _) in STATE_STYLE.items():
                assert f"{glyph} {state}" in legend

    asyncio.run(scenario())


def has(style: str | Style, *attributes: str) -> bool:
    parsed = Style.parse(style) if isinstance(style, str) else style
    return all(getattr(parsed, attribute) for attribute in attributes)


def test_without_colour_failures_are_bold_and_reverse(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_live_run(repo)
    monkeypatch.setenv("NO_COLOR", "1")

    async def scenario() -> None:
        app = CorralApp(repo, run.run_id, clock=frozen_clock)
        assert app.no_color
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            table = app.screen.query_one("#agents", AgentsTable)
            failed = table.cells["perf"]["state"]
            assert failed.plain == "✘ dead_lettered"
            assert has(failed.style, "bold", "reverse")
            silent = table.cells["sec-scan"]["beat"]  # a silent heartbeat, red in colour
            assert has(silent.style, "bold", "reverse")
            fine = table.cells["api-auth"]["state"]
            assert not has(fine.style, "reverse")

    asyncio.run(scenario())


def test_monochrome_keeps_emphasis_and_drops_colour() -> None:
    text = Text("a")
    text.append("b", style="red")
    text.append("c", style="yellow bold")
    mono = look.monochrome(text)
    styles = [span.style for span in mono.spans]
    assert has(styles[0], "bold", "reverse")
    assert isinstance(styles[1], Style)
    assert styles[1].bold
    assert styles[1].color is None


COMMON_BLOCKS = [
    (0x20, 0xFF),  # Latin-1 (·)
    (0x370, 0x3FF),  # Greek (Δ)
    (0x2000, 0x206F),  # punctuation (…)
    (0x2190, 0x22FF),  # arrows, mathematical operators
    (0x2500, 0x25FF),  # box drawing, block elements, geometric shapes (● ◐ ◷ ■ ▣)
    (0x2600, 0x27BF),  # symbols and dingbats with text presentation (♥ ⚙ ✔ ✘)
]
"""What DejaVu Sans Mono, Menlo and Consolas draw; not misc technical (⏱ ⌛), not 1F000 up."""


def test_core_glyphs_have_no_emoji() -> None:
    """Emoji tofu in many terminal fonts: core state never depends on one (CORRAL_EMOJI=1 opts
    in to a few decorative ones)."""
    glyphs = [glyph for glyph, _ in STATE_STYLE.values()] + list(look.PLAIN_GLYPHS.values())
    for char in "".join(glyphs):
        assert any(low <= ord(char) <= high for low, high in COMMON_BLOCKS), f"{char!r}"
    look.use_emoji(True)
    try:
        assert look.GLYPHS["lock"] == "🔒"
    finally:
        look.use_emoji(False)
    assert look.GLYPHS == look.PLAIN_GLYPHS
