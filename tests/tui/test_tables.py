"""The dashboard's tables redraw a changed cell by re-rendering its row only, and still show
every change: the cursor row, a filtered table, rows added and dropped."""

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


async def rendered_rows(table: KeyTable, pilot: Pilot[Any], shown: str) -> set[str]:
    """The row keys whose cells the table renders until the screen shows `shown`."""
    seen: set[str] = set()
    original = table._render_cell

    def spy(row_index: int, column_index: int, *args: Any, **kwargs: Any) -> Any:
        if row_index >= 0:
            key = table._row_locations.get_key(row_index)
            seen.add(str(key.value if key is not None else None))
        return original(row_index, column_index, *args, **kwargs)

    table._render_cell = spy  # type: ignore[method-assign]
    try:
        await until(pilot, lambda: shown in screen_text(pilot), what=shown)
    finally:
        del table._render_cell
    return seen


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
            frame = await rendered_rows(table, pilot, "changed 3")
            assert frame == {"row-02", "row-03"}, "only the changed rows are rendered again"
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
