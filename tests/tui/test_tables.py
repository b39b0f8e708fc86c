"""The dashboard's tables redraw a changed cell without rendering the other rows again, and
still show every change: on the cursor row, beside it, with rows added and dropped."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from corral.tui.widgets.tables import KeyTable, Row
from tests.tui.conftest import screen_text, until


class Table(KeyTable):
    COLUMNS: ClassVar[list[tuple[str, str, int]]] = [("name", "name", 10), ("say", "says", 20)]


def rows(count: int, said: dict[int, str] | None = None) -> list[tuple[str, Row]]:
    said = said or {}
    return [
        (f"row-{n:02d}", {"name": Text(f"row-{n:02d}"), "say": Text(said.get(n, f"hello {n}"))})
        for n in range(count)
    ]


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield Table(id="table")


async def rendered_cells(table: KeyTable, pilot: Pilot[Any], shown: str) -> set[tuple[str, str]]:
    """The (row, column) cells the table renders until the screen shows `shown`: the entries
    its cell render cache gains."""
    before = set(table._cell_render_cache.keys())
    await until(pilot, lambda: shown in screen_text(pilot), what=shown)
    return {
        (str(cached[0].value), str(cached[1].value))
        for cached in set(table._cell_render_cache.keys()) - before
        if cached[0].value is not None  # the header
    }


def test_a_changed_cell_re_renders_its_row_only_and_shows() -> None:
    async def scenario() -> None:
        app = TableApp()
        async with app.run_test(size=(40, 20)) as pilot:
            table = app.query_one(Table)
            table.sync(rows(30))
            await pilot.pause()
            table.move_cursor(row=2)
            await pilot.pause()
            assert "hello 3" in screen_text(pilot)

            table.sync(rows(30, {3: "changed 3", 2: "changed 2"}))
            frame = await rendered_cells(table, pilot, "changed 3")
            assert {("row-02", "say"), ("row-03", "say")} <= frame
            assert {row for row, _ in frame} == {"row-02", "row-03"}, "the other rows kept theirs"
            shown = screen_text(pilot)
            assert "changed 3" in shown
            assert "changed 2" in shown
            assert "hello 3" not in shown
            assert "hello 4" in shown
            assert "hello 1" in shown
            assert table.get_cell("row-03", "say").plain == "changed 3"

            table.sync(rows(31, {3: "again 3"}), complete=True)  # a row added: all of it
            await pilot.pause()
            shown = screen_text(pilot)
            assert "again 3" in shown
            assert "changed 2" not in shown
            assert "hello 2" in shown
            table.sync(rows(5), complete=True)
            await until(pilot, lambda: "row-05" not in screen_text(pilot), what="rows dropped")
            assert "hello 3" in screen_text(pilot)
            assert table.row_count == 5

    asyncio.run(scenario())
