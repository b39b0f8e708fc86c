"""Widgets that draw parts of a run; each updates only what changed."""
