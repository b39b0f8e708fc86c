"""The console: a Textual app that attaches to runs through the engine's public API."""
