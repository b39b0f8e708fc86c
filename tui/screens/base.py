"""What every run screen shares: a bounded redraw timer that draws only what changed, and
that stops drawing while a dialog sits on top (the live view a prompt refers to stays frozen)."""

from __future__ import annotations

from typing import ClassVar

from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static

from corral.tui.bridge import RunSession
from corral.tui.feed import RunFeed

REDRAW_HZ = 10
"""Redraws a second at most. A frame re-renders only the table rows that changed
(KeyTable.set_cell), so 100 ms costs little and, with the follower's 25 ms poll, bounds an
event's way to the screen (docs/performance.md: p99 under 250 ms at 100 agents)."""
AGE_SECONDS = 1.0
"""Ages, TTLs and elapsed times move on their own; they are redrawn once a second."""


class RunScreen(Screen[None]):
    """A screen that draws one run's feed."""

    AUTO_FOCUS: ClassVar[str | None] = None
    DEFAULT_CSS = """
    RunScreen #notice {
        dock: bottom;
        height: 1;
        margin-bottom: 1;
        background: $warning 25%;
        color: $text;
    }
    """

    def __init__(
        self, session: RunSession, *, name: str | None = None, id: str | None = None
    ) -> None:
        super().__init__(name=name, id=id)
        self.session = session
        self.drawn_version = -1
        self.ages_drawn = 0.0
        self.draws = 0
        self.bindings_signature: tuple[bool | None, ...] = ()
        self.notice_drawn = 0

    def on_mount(self) -> None:
        self.set_interval(1 / REDRAW_HZ, self.tick)
        self.call_after_refresh(self.tick)

    def tick(self) -> None:
        feed = self.session.feed
        if feed is None or not self.is_current:
            return
        if self.session.notice_version != self.notice_drawn:
            self.notice_drawn = self.session.notice_version
            self.show_notice(self.session.notice)
        now = self.session.clock()
        ages_due = now - self.ages_drawn >= AGE_SECONDS or now < self.ages_drawn
        if feed.version == self.drawn_version and not ages_due:
            return
        self.redraw(feed, now, since=self.drawn_version, ages=ages_due)
        if feed.version != self.drawn_version:
            self.update_bindings()
        self.drawn_version = feed.version
        if ages_due:
            self.ages_drawn = now
        self.draws += 1
        hook = self.session.on_drawn
        if hook is not None:
            hook(self, feed.version)

    def show_notice(self, text: str) -> None:
        """The lasting status line: mounted with the first notice, so a screen without one
        looks as it always did."""
        try:
            line = self.query_one("#notice", Static)
        except NoMatches:
            line = Static(id="notice", markup=False)
            self.mount(line)
        line.update(text)

    def update_bindings(self) -> None:
        """Refresh the footer only when an action became available or unavailable: a footer
        rebuild costs more than a whole table redraw."""
        actions = sorted({binding.action for _, binding in self._bindings})
        signature = tuple(self.check_action(action, ()) for action in actions)
        if signature != self.bindings_signature:
            self.bindings_signature = signature
            self.refresh_bindings()

    def palette_target(self, action: str) -> str:
        """What `action` would act on, for its name in the command palette ('' for nothing)."""
        return ""

    def redraw(self, feed: RunFeed, now: float, *, since: int, ages: bool) -> None:
        """Draw what changed after version `since` (everything when `since` is -1)."""
        raise NotImplementedError
