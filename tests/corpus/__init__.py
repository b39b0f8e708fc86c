"""Event logs written by real runs, each beside the state it must fold to (README.md)."""
