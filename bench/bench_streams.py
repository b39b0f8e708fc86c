"""Agent-stream benchmark: engine CPU per parsed stream event (docs/performance.md; target
under 50 us).

    .venv/bin/python bench/bench_streams.py [--lines 20000] [--runs 3]

Two figures. In process: each CLI's real sample (tests/agents/samples/) repeated to `--lines`
lines in a file, read through the engine's own StreamWatch (read, adapter, tally, the coalesced
`agent_activity` events built), CPU per line. End to end: a real `corral run` whose agent prints
`--lines` lines of Claude's sample, with `stream = "claude"` and without, alternated `--runs`
times; the engine's CPU (its rusage with its reaped children, the agent included in both) of the
two, their difference per line. The machines are noisy: read the ratios of one run.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from scratch import make_repo, run_quietly

from corral.core.engine.stream_watch import StreamWatch
from corral.core.log.state import Usage
from corral.core.plan.model import AgentSpec, RunSettings
from corral.core.streams import load_prices
from corral.core.trust.redact import Redactor

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "agents" / "samples"
TARGET_US = 50.0
PRINTER = """
import sys
lines = open(sys.argv[1], "rb").read().splitlines(keepends=True)
out = sys.stdout.buffer
for n in range(int(sys.argv[2])):
    out.write(lines[n % len(lines)])
out.flush()
"""


def repeated(sample: Path, lines: int, into: Path) -> Path:
    source = sample.read_bytes().splitlines(keepends=True)
    into.write_bytes(b"".join(source[n % len(source)] for n in range(lines)))
    return into


def in_process(name: str, log: Path) -> tuple[int, float, int]:
    """(lines parsed, CPU seconds, events built) reading `log` as the engine does."""
    stream = name.split(".")[0].split("-")[0]
    spec = AgentSpec(id="bench", command=["true"], stream=stream)
    watch = StreamWatch(
        spec,
        1,
        log,
        prices=load_prices(None),
        redactor=Redactor({"TOKEN": "not-in-the-stream-0123456789"}),
        run=RunSettings(),
        run_usage=Usage,
    )
    events = 0
    clock = 0.0
    start = time.process_time()
    while True:
        watch.read()
        clock += 0.25  # a liveness tick
        if watch.due(clock) is not None:
            events += 1
        watch.over_budget()
        if not watch.behind:
            break
    watch.finish()
    if watch.due(clock, force=True) is not None:
        events += 1
    return watch.adapter.lines, time.process_time() - start, events


def engine_cpu(root: Path, lines: int, stream: bool, number: int) -> float:
    """CPU seconds of one `corral run` (engine and its reaped children)."""
    repo = make_repo(root / f"repo-{number}", {"README.md": "bench\n"})
    printer = root / "printer.py"
    printer.write_text(PRINTER)
    sample = SAMPLES / "claude.jsonl"
    field = 'stream = "claude"\n' if stream else ""
    plan = root / f"plan-{number}.toml"
    plan.write_text(
        '[run]\nname = "bench-streams"\n\n[[agent]]\nid = "printer"\n'
        f"command = [{sys.executable!r}, {str(printer)!r}, {str(sample)!r}, '{lines}']\n{field}"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_quietly(plan, repo)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"the run failed: {result.stdout}{result.stderr}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"engine CPU per parsed stream event, {args.lines} lines (target < {TARGET_US:.0f} us)")
    print(f"{'in process':<28}{'lines':>8}{'bytes/line':>12}{'us/line':>10}{'events':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        worst = 0.0
        for sample in sorted(SAMPLES.iterdir()):
            log = repeated(sample, args.lines, Path(tmp) / sample.name)
            parsed, cpu, events = in_process(sample.name, log)
            per = cpu / parsed * 1e6
            worst = max(worst, per)
            size = log.stat().st_size / parsed
            print(f"{sample.name:<28}{parsed:>8}{size:>12.0f}{per:>10.1f}{events:>8}")
        with_stream, without = [], []
        for number in range(args.runs):
            with_stream.append(engine_cpu(Path(tmp), args.lines, True, 2 * number))
            without.append(engine_cpu(Path(tmp), args.lines, False, 2 * number + 1))
        on, off = statistics.median(with_stream), statistics.median(without)
        per_line = (on - off) / args.lines * 1e6
        print(
            f"end to end (corral run, claude sample): with stream {on:.2f} s CPU, without "
            f"{off:.2f} s (median of {args.runs}); difference {per_line:.1f} us/line"
        )
        verdict = "ok" if max(worst, per_line) < TARGET_US else "OVER TARGET"
        print(f"worst in process {worst:.1f} us/line, end to end {per_line:.1f} us/line: {verdict}")


if __name__ == "__main__":
    main()
