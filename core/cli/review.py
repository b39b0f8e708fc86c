"""`corral review show|approve|reject|suppress|acknowledge RUN`: the human gate from a terminal.

An approval binds to the report the reviewer saw: interactively, the one printed just before
the question; otherwise the sha256 given with `--sha` (printed by `corral review show`).

`review show` on a terminal goes through `$PAGER` (default `less -R`), never when piped;
`--findings [WORDS]` and `--severity LEVEL` list the findings that match instead of the whole
report, and `--json` prints the same as one JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys

TYPE_CHECKING = False  # keep typing and pathlib out of the agent-side commands' start-up
if TYPE_CHECKING:
    from typing import Any, Literal


def add_review_parser(sub: Any) -> None:
    review = sub.add_parser("review", help="show, approve or reject a finished run's report")
    actions = review.add_subparsers(dest="review_action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show", help="print the report and its sha256 (through $PAGER on a terminal)"
    )
    show.add_argument("run", nargs="?")
    show.add_argument(
        "--findings",
        nargs="?",
        const="",
        metavar="WORDS",
        help="list the findings instead of the report; with WORDS, those matching every word "
        "(severity, agent, file, rule or title)",
    )
    show.add_argument(
        "--severity",
        choices=("critical", "high", "medium", "low", "info"),
        help="list the findings at least this severe",
    )
    show.add_argument("--json", action="store_true", help="print one JSON document")
    approve = actions.add_parser(
        "approve", help="approve the report (a coding run lands on its base)"
    )
    approve.add_argument("run", nargs="?")
    approve.add_argument("--sha", help="the report sha256 you reviewed (from `corral review show`)")
    reject = actions.add_parser("reject", help="reject the report; nothing lands")
    reject.add_argument("run", nargs="?")
    reject.add_argument("--reason", required=True, help="what is wrong (required)")
    reject.add_argument("--sha", help="the report sha256 you reviewed (from `corral review show`)")
    suppress = actions.add_parser(
        "suppress",
        help="set a rule or a path aside for this review (recorded; the report shows it)",
    )
    suppress.add_argument("run", nargs="?")
    what = suppress.add_mutually_exclusive_group(required=True)
    what.add_argument("--rule", help="a rule id, exactly as the findings name it")
    what.add_argument("--path", help="a file, a directory or a glob, from the repository root")
    suppress.add_argument("--reason", required=True, help="why these findings can wait")
    suppress.add_argument(
        "--sha", help="the report sha256 you reviewed (from `corral review show`)"
    )
    acknowledge = actions.add_parser(
        "acknowledge",
        help="acknowledge that you read how the shared repository was tampered with (approve "
        "waits for it)",
    )
    acknowledge.add_argument("run", nargs="?")
    acknowledge.add_argument(
        "--through",
        type=int,
        metavar="SEQ",
        help="the last tampering report you read (its #seq, from `corral review show`)",
    )


def cmd_review(args: argparse.Namespace, rundir: Any) -> int:
    """Everything printed goes through `inert` (T5): the report, names and reasons are text an
    agent, a plan or a planted git identity may have written."""
    from corral.core.operator.decisions import approve, reject, report_sha256
    from corral.core.operator.identity import Operator
    from corral.core.operator.reading import status
    from corral.core.trust.inert import inert

    state = status(rundir)
    if args.review_action == "acknowledge":
        return _acknowledge(args, rundir, state)
    if args.review_action == "suppress":
        return _suppress(args, rundir, state)
    sha = report_sha256(rundir, state)  # an OperatorError: exit 1, from cli/main.py
    if args.review_action == "show":
        return _show(args, state, sha)
    shown = args.sha
    if shown is None:
        if not sys.stdin.isatty():
            print(
                "corral: without a terminal, pass --sha SHA from `corral review show`",
                file=sys.stderr,
            )
            return 2
        _print_report(state.report.path if state.report else "", sha)
        what = "approve" if args.review_action == "approve" else "reject"
        target = (
            f" and land {state.merge.integration_commit[:12]} on {state.base_ref}"
            if (what == "approve" and state.merge.integration_commit)
            else ""
        )
        if input(f"\n{what} this report{inert(target)}? [y/N] ").strip().lower() not in (
            "y",
            "yes",
        ):
            print("nothing done")
            return 1
        shown = sha
    by = Operator.current()
    approving = args.review_action == "approve"
    result = approve(rundir, by, shown) if approving else reject(rundir, by, args.reason, shown)
    print(inert(result.message, lines=True))
    return 0


def _show(args: argparse.Namespace, state: Any, sha: str) -> int:
    """The report (or the findings asked for), tampering and the decision; paged on a
    terminal."""
    from corral.core.findings.display import read_report
    from corral.core.trust.inert import inert

    path = state.report.path if state.report else ""
    listing = args.findings is not None or args.severity is not None
    loaded = read_report(path) if (listing or args.json) else None
    if loaded is not None and loaded.sha256 != sha:
        print("corral: the report changed while it was read; run it again", file=sys.stderr)
        return 1
    if args.json:
        print(_show_json(args, state, sha, loaded))
        return 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        if loaded is not None:
            _print_findings(args, loaded, sha)
        else:
            _print_report(path, sha)
        _print_tampering(state)
        if state.review is not None:
            decided = f"{state.review.decision} by {state.review.by}" + (
                f": {state.review.reason}" if state.review.reason else ""
            )
            print("\n" + inert(decided))
    _page(out.getvalue())
    return 0


def _print_findings(args: argparse.Namespace, loaded: Any, sha: str) -> None:
    from corral.core.findings.select import describe, matching

    picked = matching(loaded, args.findings or "", args.severity)
    asked = [f"at least {args.severity}"] if args.severity else []
    asked += [f"matching {args.findings!r}"] if args.findings else []
    print(
        f"{len(picked)} of {len(loaded.findings)} findings"
        + (f" ({', '.join(asked)})" if asked else "")
    )
    for index in picked:
        print("\n" + describe(loaded.findings[index]))
    print(f"\nreport sha256: {sha}")


def _show_json(args: argparse.Namespace, state: Any, sha: str, loaded: Any) -> str:
    """The findings asked for as the report holds them; the whole report without a filter."""
    import json

    from corral.core.findings.select import matching, raw_findings
    from corral.core.trust.inert import inert_json

    raw = raw_findings(loaded)
    picked = matching(loaded, args.findings or "", args.severity)
    doc: dict[str, Any] = {
        "run_id": state.run_id,
        "report_sha256": sha,
        "findings": [raw[i] for i in picked if i < len(raw)],
        "review": state.review.model_dump(mode="json") if state.review is not None else None,
        "tampering_unacknowledged": [t.seq for t in state.unacknowledged_tampering()],
    }
    if args.findings is None and args.severity is None:
        doc["report"] = loaded.raw
    return inert_json(json.dumps(doc, indent=2, ensure_ascii=False))


def _page(text: str) -> None:
    """`text` through `$PAGER` (default `less -R`) when stdout is a terminal, else printed. The
    text is inert already: the pager is shown no escape an agent wrote."""
    import os
    import shlex
    import subprocess

    pager = os.environ.get("PAGER", "less -R")
    if not sys.stdout.isatty() or not pager.strip() or pager.strip() == "cat":
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    try:
        subprocess.run(shlex.split(pager), input=text, text=True, check=False)
    except OSError:  # no such pager: the text is not lost
        sys.stdout.write(text)


def _print_report(path: str, sha: str) -> None:
    from pathlib import Path

    from corral.core.trust.inert import inert

    markdown = Path(path).with_suffix(".md") if path else None
    if markdown is not None and markdown.is_file():
        print(inert(markdown.read_text(errors="replace"), lines=True))
    elif path:
        print(inert(Path(path).read_text(errors="replace"), lines=True))
    print(f"report sha256: {sha}")


def _print_tampering(state: Any) -> None:
    """Every tampering report with its changes; how to acknowledge those still open."""
    from corral.core.trust.integrity import describe_change, describe_when, printable

    if not state.tampering:
        return
    print("\nTHE SHARED REPOSITORY WAS TAMPERED WITH")
    for tampering in state.tampering:
        ack = (
            f"acknowledged by {printable(tampering.acknowledged_by, 80)}"
            if tampering.acknowledged_by
            else "NOT ACKNOWLEDGED"
        )
        print(f"#{tampering.seq} {describe_when(tampering.live, tampering.seen)} ({ack})")
        for change in tampering.changes:
            print(f"  - {describe_change(change)}")
            for line in change.detail:
                print(f"      {line}")
        if tampering.problem:
            print(f"  ! {printable(tampering.problem, 400)}")
    pending = state.unacknowledged_tampering()
    if pending:
        print(
            "approve waits until a person acknowledges it: "
            f"corral review acknowledge {state.run_id} --through {pending[-1].seq}"
        )


def _suppress(args: argparse.Namespace, rundir: Any, state: Any) -> int:
    """Bound to the report shown, as a decision is: `--sha`, or on a terminal the current
    one (a suppression lands nothing, and the report written again shows it)."""
    from corral.core.operator.decisions import report_sha256, suppress
    from corral.core.operator.identity import Operator
    from corral.core.trust.inert import inert

    kind: Literal["rule", "path"] = "rule" if args.rule is not None else "path"
    shown = args.sha
    if shown is None:
        if not sys.stdin.isatty():
            print(
                "corral: without a terminal, pass --sha SHA from `corral review show`",
                file=sys.stderr,
            )
            return 2
        shown = report_sha256(rundir, state)
    done = suppress(rundir, Operator.current(), kind, args.rule or args.path, args.reason, shown)
    print(inert(done.message))
    print(f"report sha256: {done.report_sha256}")
    return 0


def _acknowledge(args: argparse.Namespace, rundir: Any, state: Any) -> int:
    from corral.core.operator.decisions import acknowledge_tampering
    from corral.core.operator.identity import Operator

    pending = state.unacknowledged_tampering()
    through = args.through
    if through is None and pending:
        if not sys.stdin.isatty():
            print(
                "corral: without a terminal, pass --through SEQ (the last tampering report "
                "you read, from `corral review show`)",
                file=sys.stderr,
            )
            return 2
        _print_tampering(state)
        question = f"\nacknowledge these {len(pending)} tampering report(s)? [y/N] "
        if input(question).strip().lower() not in ("y", "yes"):
            print("nothing done")
            return 1
        through = pending[-1].seq
    # With nothing to acknowledge the gate refuses and says so, whatever `through` is.
    print(acknowledge_tampering(rundir, Operator.current(), through or 0))
    return 0
