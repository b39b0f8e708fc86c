"""Report every TODO and FIXME of the repository as an `info` finding (corral findings JSON)."""

import json
import os
import re
import subprocess
from pathlib import Path

MARK = re.compile(r"\b(TODO|FIXME)\b[:\s]*(.*)")


def main() -> None:
    listing = subprocess.run(
        ["git", "grep", "-n", "-I", "-E", r"\b(TODO|FIXME)\b"], capture_output=True, text=True
    ).stdout
    findings = []
    for number, row in enumerate(listing.splitlines(), 1):
        path, line, text = row.split(":", 2)
        match = MARK.search(text)
        if match is None:
            continue
        findings.append(
            {
                "id": f"todo-{number}",
                "severity": "info",
                "file": path,
                "line": int(line),
                "title": f"{match.group(1)}: {match.group(2).strip()[:200] or 'no text'}",
                "tool": "todo-scan",
            }
        )
    print(f"{len(findings)} TODO/FIXME marks")
    out = Path(os.environ["CORRAL_OUTPUT"]) / "findings.json"
    out.write_text(json.dumps({"version": 1, "findings": findings}, indent=2))


if __name__ == "__main__":
    main()
