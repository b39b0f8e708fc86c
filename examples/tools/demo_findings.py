"""Run one of the demo's audit tools and write its findings where corral collects them.

Usage: python demo_findings.py TOOL [PATH]   (run in the repository; PATH defaults to ".")

TOOL is one of:
  ruff            `ruff check` as SARIF, its absolute `file://` URIs made relative and its
                  levels graded (security error, likely bugs warning, style note)
  bandit          `bandit -f sarif` (the bandit[sarif] extra), written as it is
  detect-secrets  `detect-secrets scan` -> corral findings JSON
  vulture         `vulture` (dead code) -> corral findings JSON
  radon           `radon cc` (cyclomatic complexity, grade C and worse) -> corral findings JSON

Output goes to $CORRAL_OUTPUT (findings.json or TOOL.sarif). Paths are relative to the
repository root, as corral's findings format requires. Exits non-zero only when the tool
itself could not run: what it found is in the output, not in the exit status.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

OUT = Path(os.environ.get("CORRAL_OUTPUT", "."))
ROOT = Path.cwd().resolve()


def run(command):
    proc = subprocess.run(command, capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    return proc


def relative(path):
    """A path relative to the repository root, with forward slashes."""
    resolved = (ROOT / path).resolve()
    try:
        return resolved.relative_to(ROOT).as_posix()
    except ValueError:
        return None


def write_findings(tool, findings):
    document = {"version": 1, "tool": tool, "findings": findings}
    (OUT / "findings.json").write_text(json.dumps(document, indent=2))
    print(f"{tool}: {len(findings)} finding(s)")


def ruff_level(rule):
    """ruff calls every result an error; say how much each family matters instead."""
    if rule.startswith("S"):  # flake8-bandit: security
        return "error"
    if rule.startswith(("B", "C90", "F")) and rule != "F401":  # likely bugs, complexity
        return "warning"
    return "note"  # style, imports, outdated syntax


def ruff(path):
    target = OUT / "ruff.sarif"
    proc = run(
        ["ruff", "check", "--exit-zero", "--output-format", "sarif", "-o", str(target), path]
    )
    if proc.returncode != 0:
        return proc.returncode
    document = json.loads(target.read_text())

    def fix(node):
        if isinstance(node, dict):
            uri = node.get("uri")
            if isinstance(uri, str) and uri.startswith("file://"):
                node["uri"] = relative(unquote(urlsplit(uri).path)) or uri
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    fix(document)
    for run_ in document["runs"]:
        for result in run_.get("results", []):
            result["level"] = ruff_level(result.get("ruleId") or "")
    target.write_text(json.dumps(document, indent=2))
    print(f"ruff: {sum(len(r.get('results', [])) for r in document['runs'])} result(s)")
    return 0


def bandit(path):
    target = OUT / "bandit.sarif"
    proc = run(["bandit", "-q", "-r", path, "-f", "sarif", "-o", str(target), "--exit-zero"])
    if proc.returncode == 0:
        document = json.loads(target.read_text())
        print(f"bandit: {sum(len(r.get('results', [])) for r in document['runs'])} result(s)")
    return proc.returncode


SECRET_SEVERITY = {"Secret Keyword": "high", "Basic Auth Credentials": "high"}


def detect_secrets(path):
    proc = run(["detect-secrets", "scan", path])
    if proc.returncode != 0:
        return proc.returncode
    findings = []
    for _name, secrets in sorted(json.loads(proc.stdout)["results"].items()):
        for secret in secrets:
            kind = secret["type"]
            findings.append(
                {
                    # the same secret can sit on the same line of two files
                    "id": f"{secret['hashed_secret'][:12]}-{relative(secret['filename'])}:"
                    f"{secret['line_number']}",
                    "severity": SECRET_SEVERITY.get(kind, "critical" if "Key" in kind else "high"),
                    "title": f"{kind} in the source",
                    "file": relative(secret["filename"]),
                    "line": secret["line_number"],
                    "asset": "credentials",
                    "detail": "detect-secrets found what looks like a secret committed to the repository.",
                    "recommendation": "revoke it, then read it from the environment or a secret store",
                    "tool": "detect-secrets",
                    "rule": kind,
                }
            )
    write_findings("detect-secrets", findings)
    return 0


VULTURE_LINE = re.compile(
    r"^(?P<file>.+?):(?P<line>\d+): (?P<what>.+?) \((?P<confidence>\d+)% confidence"
)


def vulture(path):
    proc = run(["vulture", path])
    if proc.returncode not in (0, 3):  # 3: dead code found
        return proc.returncode
    findings = []
    for number, row in enumerate(proc.stdout.splitlines(), 1):
        match = VULTURE_LINE.match(row)
        if match is None:
            continue
        what = match["what"]
        findings.append(
            {
                "id": f"vulture-{number}",
                "severity": "low",
                "title": what[:1].upper() + what[1:],
                "file": relative(match["file"]),
                "line": int(match["line"]),
                "asset": "dead code",
                "detail": f"vulture is {match['confidence']}% confident nothing uses it.",
                "recommendation": "remove it, or whitelist it if something uses it dynamically",
                "tool": "vulture",
                "rule": what.split(" '")[0].replace(" ", "-"),
            }
        )
    write_findings("vulture", findings)
    return 0


RANK_SEVERITY = {"C": "low", "D": "medium", "E": "medium", "F": "high"}


def radon(path):
    proc = run(["radon", "cc", "--json", "--min", "C", path])
    if proc.returncode != 0:
        return proc.returncode
    findings = []
    for name, blocks in sorted(json.loads(proc.stdout).items()):
        for block in blocks if isinstance(blocks, list) else []:
            # a name repeats (two classes' `run` methods), a place in the file does not
            where = f"{block['lineno']}:{block.get('col_offset', 0)}"
            qualified = ".".join(filter(None, [block.get("classname"), block["name"]]))
            findings.append(
                {
                    "id": f"cc-{relative(name)}:{where}-{qualified}",
                    "severity": RANK_SEVERITY.get(block["rank"], "low"),
                    "title": f"{block['type']} {qualified} is too complex "
                    f"(cyclomatic complexity {block['complexity']}, grade {block['rank']})",
                    "file": relative(name),
                    "line": block["lineno"],
                    "asset": "maintainability",
                    "recommendation": "split it into smaller functions, e.g. one per case",
                    "tool": "radon",
                    "rule": f"cc-{block['rank']}",
                }
            )
    write_findings("radon", findings)
    return 0


TOOLS = {
    "ruff": ruff,
    "bandit": bandit,
    "detect-secrets": detect_secrets,
    "vulture": vulture,
    "radon": radon,
}


def main(argv):
    if not argv or argv[0] not in TOOLS:
        print(__doc__, file=sys.stderr)
        return 2
    return TOOLS[argv[0]](argv[1] if len(argv) > 1 else ".")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
