"""The dashboard's tables. Each keeps the last value of every cell and, on a redraw, calls
`update_cell` only for cells whose text changed (docs/performance.md: never rebuild a table)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterable
from typing import ClassVar, TypeVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist, RowKey

from corral.core.log.state import AgentState, ConflictState, LockState
from corral.core.operator.describe import FAILED_STATES, shown_state
from corral.tui import look
from corral.tui.feed import RunFeed
from corral.tui.text import inert

Row = dict[str, Text]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def drop_cached(cache: LRUCache[K, V], stale: Callable[[K], bool]) -> None:
    keys = cache.keys()
    for key in [key for key in keys if stale(key)]:
        cache.discard(key)


class KeyTable(DataTable[Text]):
    """A row-cursor table with vim keys, whose rows are keyed and updated cell by cell."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("g", "scroll_top", "Top", show=False, id="table.top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="table.bottom"),
    ]
    COLUMNS: ClassVar[list[tuple[str, str, int]]] = []
    """(key, label, width) of each column."""

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(
            name=name,
            id=id,
            classes=classes,
            disabled=disabled,
            cursor_type="row",
            zebra_stripes=False,
        )
        self.cells: dict[str, Row] = {}
        self.filter_text = ""
        self.columns_shown: list[tuple[str, str, int]] = list(self.COLUMNS)
        """The columns shown, in order, with their widths: COLUMNS unless the table lays itself
        out to its width (AgentsTable)."""
        self.shown: set[str] = {key for key, _, _ in self.columns_shown}
        self.stale_cells: set[tuple[str, str]] = set()
        """(row, column) of the cells `set_cell` changed since the last `repaint`."""
        for key, label, width in self.columns_shown:
            self.add_column(Text(label, style="bold"), width=width, key=key)

    @property
    def current_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except CellDoesNotExist:
            return None

    def select_key(self, key: str) -> None:
        with contextlib.suppress(RowDoesNotExist):
            self.move_cursor(row=self.get_row_index(key))

    def put(self, key: str, row: Row) -> int:
        """Add the row, or update the cells that changed; returns how many cells were written."""
        if self.app.no_color:
            row = {column: look.monochrome(value) for column, value in row.items()}
        old = self.cells.get(key)
        if old is None:
            self.cells[key] = row
            self.add_row(*(row[column] for column, _, _ in self.columns_shown), key=key)
            return len(row)
        written = 0
        for column, value in row.items():
            if old.get(column) != value:
                old[column] = value
                if column in self.shown:
                    self.set_cell(key, column, value)
                    written += 1
        return written

    def set_cell(self, key: str, column: str, value: Text) -> None:
        """`update_cell` without its cost: DataTable keys every render cache on one update
        count, so one changed cell re-rendered every visible cell of the table on the next
        frame. Here the value is stored and only its row's renders are dropped (`repaint`)."""
        try:
            self._data[RowKey(key)][ColumnKey(column)] = value
        except (AttributeError, KeyError):  # another Textual's internals: the public way
            self.update_cell(key, column, value)
            return
        self.stale_cells.add((key, column))

    def repaint(self) -> None:
        """Drop the cached renders of the cells `set_cell` changed and of their rows' lines,
        and repaint those rows."""
        if not self.stale_cells:
            return
        cells = {(RowKey(key), ColumnKey(column)) for key, column in self.stale_cells}
        rows = {row for row, _ in cells}
        self.stale_cells.clear()
        try:
            indices = {self._row_locations.get(row) for row in rows}
            drop_cached(self._cell_render_cache, lambda cached: cached[:2] in cells)
            drop_cached(self._row_render_cache, lambda cached: cached[0] in rows)
            drop_cached(self._row_renderable_cache, lambda cached: cached[1] in indices)
            self._line_cache.clear()
        except AttributeError:  # another Textual's internals: every render dropped
            self._update_count += 1
            self.refresh()
            return
        for index in indices:
            if index is not None:
                self.refresh_row(index)

    def relayout(self, layout: list[tuple[str, str, int]]) -> None:
        """Show these columns: the rows are laid out again (a resize past a width, rarely)."""
        current = self.current_key
        self.columns_shown = layout
        self.shown = {key for key, _, _ in layout}
        self.clear(columns=True)
        for key, label, width in layout:
            self.add_column(Text(label, style="bold"), width=width, key=key)
        for key, row in self.cells.items():
            self.add_row(*(row[column] for column, _, _ in layout), key=key)
        if current is not None:
            self.select_key(current)

    def drop(self, key: str) -> None:
        if self.cells.pop(key, None) is not None:
            self.remove_row(key)

    def shows(self, row: Row) -> bool:
        needle = self.filter_text.lower()
        return not needle or any(needle in cell.plain.lower() for cell in row.values())

    def sync(self, rows: Iterable[tuple[str, Row]], *, complete: bool = False) -> int:
        """Put the given rows (respecting the filter); with `complete`, drop rows not given."""
        seen: set[str] = set()
        written = 0
        for key, row in rows:
            seen.add(key)
            if self.shows(row):
                written += self.put(key, row)
            else:
                self.drop(key)
        if complete:
            for key in [k for k in self.cells if k not in seen]:
                self.drop(key)
        self.repaint()
        return written

    def set_filter(self, text: str, rows: Callable[[], Iterable[tuple[str, Row]]]) -> None:
        """A new filter is a user action: the one time the rows are laid out again."""
        self.filter_text = text
        current = self.current_key
        self.cells.clear()
        self.clear()
        self.sync(rows())
        if current is not None:
            self.select_key(current)


def fit_columns(
    columns: list[tuple[str, str, int]],
    width: int,
    *,
    first: tuple[str, ...],
    then: tuple[str, ...],
    minimum: dict[str, int],
    grow: tuple[str, ...],
) -> list[tuple[str, str, int]]:
    """The columns that fit `width` (each costs its width and 2 of padding), in their order.

    The `first` ones always (at their minimum when short), then the others in the order of
    `then` (columns it does not name last) while they fit; what is left widens `grow`, evenly.
    """
    want = {key: size for key, _, size in columns}
    size = {key: minimum.get(key, want[key]) for key in first if key in want}
    left = width - sum(s + 2 for s in size.values())
    rest = [k for k in then if k in want] + [k for k in want if k not in then and k not in first]
    for key in rest:
        if left >= want[key] + 2:
            size[key] = want[key]
            left -= want[key] + 2
    for key in first:  # back up to their wanted width before anything grows
        if key in size and left > 0:
            extra = min(left, want[key] - size[key])
            size[key] += extra
            left -= extra
    growing = [key for key in grow if key in size]
    for i, key in enumerate(growing):
        share = left // (len(growing) - i)
        size[key] += share
        left -= share
    return [(key, label, size[key]) for key, label, _ in columns if key in size]


class AgentsTable(KeyTable):
    COLUMNS: ClassVar[list[tuple[str, str, int]]] = [
        ("mark", " ", 1),
        ("id", "agent", 16),
        ("kind", "kind", 6),
        ("state", "state", 15),
        ("beat", "heartbeat", 17),
        ("activity", "activity", 8),
        ("progress", "progress / message", 34),
        ("attempt", "try", 3),
        ("elapsed", "elapsed", 7),
        ("workspace", "workspace", 40),
    ]

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self.marked: set[str] = set()
        self.failures_first = False
        self.states_drawn: tuple[str, ...] = ()

    FIRST: ClassVar[tuple[str, ...]] = ("mark", "id", "state", "progress")
    """What a narrow terminal keeps: which agent, its state, what it says."""
    THEN: ClassVar[tuple[str, ...]] = ("beat", "elapsed", "attempt", "kind", "activity")
    MINIMUM: ClassVar[dict[str, int]] = {"id": 12, "state": 15, "progress": 20}
    GROW: ClassVar[tuple[str, ...]] = ("progress", "workspace")

    def on_resize(self) -> None:
        layout = fit_columns(
            self.COLUMNS,
            self.size.width - self.styles.scrollbar_size_vertical,
            first=self.FIRST,
            then=self.THEN,
            minimum=self.MINIMUM,
            grow=self.GROW,
        )
        if layout != self.columns_shown:
            self.relayout(layout)
            self.states_drawn = ()
            self.order()

    def sync(self, rows: Iterable[tuple[str, Row]], *, complete: bool = False) -> int:
        written = super().sync(rows, complete=complete)
        self.order()
        return written

    def order(self) -> None:
        """With failures first, sort again when a state changed: failed ones, then stalled,
        then the rest, each in the plan's order."""
        if not self.failures_first:
            return
        states = tuple(row["state"].plain for row in self.cells.values())
        if states == self.states_drawn:
            return
        self.states_drawn = states
        place = {row["id"].plain: i for i, row in enumerate(self.cells.values())}

        def rank(cells: tuple[Text, Text]) -> tuple[int, int]:
            state_cell, id_cell = cells
            state = state_cell.plain.partition(" ")[2]
            urgent = 0 if state in FAILED_STATES else 1 if state == "stalled" else 2
            return urgent, place.get(id_cell.plain, 0)

        current = self.current_key
        self.sort("state", "id", key=rank)
        if current is not None:
            self.select_key(current)

    def toggle_failures_first(self) -> bool:
        self.failures_first = not self.failures_first
        self.states_drawn = ()
        if self.failures_first:
            self.order()
        else:
            self.relayout(self.columns_shown)  # back to the plan's order
        return self.failures_first

    def row_for(self, agent: AgentState, feed: RunFeed, now: float) -> Row:
        timeout = feed.heartbeat_timeout.get(agent.id, 0.0)
        return {
            "mark": Text("◆", style="bold magenta") if agent.id in self.marked else Text(" "),
            "id": Text(inert(agent.id, limit=64), style="bold"),
            "kind": Text(agent.kind, style="dim"),
            "state": look.state_text(shown_state(agent), color=not self.app.no_color),
            "beat": look.heartbeat_text(agent, now, timeout),
            "activity": Text(look.sparkline(feed.sparkline_counts(agent.id, now)), style="cyan"),
            "progress": look.progress_text(agent),
            "attempt": Text(str(agent.attempt or "")),
            "elapsed": Text(look.elapsed_text(agent, now)),
            "workspace": look.workspace_text(agent),
        }

    def table_rows(
        self, feed: RunFeed, now: float, only: Iterable[str] | None = None
    ) -> Iterable[tuple[str, Row]]:
        agents = feed.state.agents
        for agent_id in only if only is not None else agents:
            agent = agents.get(agent_id)
            if agent is not None:
                yield agent_id, self.row_for(agent, feed, now)

    def toggle_mark(self) -> str | None:
        key = self.current_key
        if key is not None:
            self.marked ^= {key}
            self.update_cell(
                key, "mark", Text("◆", style="bold magenta") if key in self.marked else Text(" ")
            )
            self.cells[key]["mark"] = (
                Text("◆", style="bold magenta") if key in self.marked else Text(" ")
            )
        return key


class LocksTable(KeyTable):
    COLUMNS: ClassVar[list[tuple[str, str, int]]] = [
        ("name", "resource", 18),
        ("holder", "holder", 18),
        ("token", "token", 6),
        ("ttl", "ttl left", 11),
        ("waiters", "waiters", 30),
        ("last", "last", 30),
    ]

    @staticmethod
    def row_for(lock: LockState, now: float) -> Row:
        return {
            "name": Text(inert(lock.name, limit=80), style="bold"),
            "holder": look.holder_text(lock),
            "token": Text("" if lock.token is None else str(lock.token)),
            "ttl": look.ttl_text(lock, now),
            "waiters": look.waiters_text(lock),
            "last": Text(inert(lock.last_event, limit=120), style="dim"),
        }

    def table_rows(self, feed: RunFeed, now: float) -> Iterable[tuple[str, Row]]:
        for name, lock in feed.state.locks.items():
            yield name, self.row_for(lock, now)


class ConflictsTable(KeyTable):
    COLUMNS: ClassVar[list[tuple[str, str, int]]] = [
        ("kind", "conflict", 12),
        ("agents", "agents", 26),
        ("files", "files", 60),
    ]

    @staticmethod
    def row_for(conflict: ConflictState) -> Row:
        paths = [inert(f.path, limit=120) for f in conflict.files]
        shown = ", ".join(paths[:3]) + (f" +{len(paths) - 3}" if len(paths) > 3 else "")
        return {
            "kind": look.conflict_kind_text(conflict.predicted, conflict.actual),
            "agents": Text(" ⇄ ".join(inert(a, limit=40) for a in conflict.agents), style="bold"),
            "files": Text(f"{len(paths)}: {shown}" if paths else "-"),
        }

    def table_rows(self, feed: RunFeed) -> Iterable[tuple[str, Row]]:
        for key, conflict in feed.state.conflicts.items():
            yield key, self.row_for(conflict)
