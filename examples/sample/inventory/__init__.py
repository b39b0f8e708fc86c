"""A tiny stock-keeping service."""
