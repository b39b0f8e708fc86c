"""Agent CLIs' event streams read into normalised activity (docs/architecture.md, "Agent streams").

`adapter_for(name)` gives a fresh adapter for one attempt's output (`claude`, `codex`, `gemini`,
`opencode`, `aider`); `StreamTally` adds up what it reads; `load_prices` is the price table for
CLIs that report no cost. Pure code over bytes: the engine (core/engine/stream_watch.py) reads
the attempt's output.log and records the tally as `agent_activity` events.
"""

from __future__ import annotations

from corral.core.streams.base import StreamAdapter
from corral.core.streams.prices import PriceTable, load_prices
from corral.core.streams.registry import UnknownStream, adapter_for, stream_names
from corral.core.streams.tally import Pending, StreamTally

__all__ = [
    "Pending",
    "PriceTable",
    "StreamAdapter",
    "StreamTally",
    "UnknownStream",
    "adapter_for",
    "load_prices",
    "stream_names",
]
