"""The key line at the bottom of every screen, with `?`, `q` and `:` first: on a narrow terminal
the footer cuts off what does not fit, and those three lead to everything else."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

ESSENTIAL = ("app.help", "app.quit", "app.palette")
"""Binding ids shown before the screen's own keys, in this order."""


def footer_order(bindings: list[tuple[Binding, bool, str]]) -> list[tuple[Binding, bool, str]]:
    """One entry per action (its first key), the essential ones first, the rest as bound."""
    by_action: dict[str, tuple[Binding, bool, str]] = {}
    for entry in bindings:
        by_action.setdefault(entry[0].action, entry)
    entries = list(by_action.values())

    def rank(entry: tuple[Binding, bool, str]) -> int:
        binding_id = entry[0].id or ""
        return ESSENTIAL.index(binding_id) if binding_id in ESSENTIAL else len(ESSENTIAL)

    return sorted(entries, key=rank)  # stable: the screen's own order otherwise


class CorralFooter(Footer):
    """Textual's footer, reordered, without its `^p` palette entry (`:` is shown first)."""

    def __init__(self) -> None:
        super().__init__(show_command_palette=False)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        shown = [
            (binding, enabled, tooltip)
            for (_, binding, enabled, tooltip) in self.screen.active_bindings.values()
            if binding.show
        ]
        entries = footer_order(shown)
        self.styles.grid_size_columns = len(entries)
        for binding, enabled, tooltip in entries:
            yield FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip,
            ).data_bind(compact=Footer.compact)
