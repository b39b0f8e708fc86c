"""Run a check command and report it as corral findings: a failing check is one finding.

Usage: python check_findings.py NAME SEVERITY -- COMMAND [ARGS...]
Writes $CORRAL_OUTPUT/findings.json; exits 0 when the audit itself ran (the finding says how
the check went), non-zero only when the command could not be run at all.
"""

import json
import os
import subprocess
import sys
from pathlib import Path


def main() -> int:
    name, severity, sep, *command = sys.argv[1:]
    if sep != "--" or not command:
        print(__doc__, file=sys.stderr)
        return 2
    proc = subprocess.run(command, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    print(output)
    findings = []
    if proc.returncode != 0:
        findings.append(
            {
                "id": f"{name}-failed",
                "severity": severity,
                "asset": name,
                "title": f"{name} failed (exit status {proc.returncode})",
                "detail": output[-4000:],
                "recommendation": f"run `{' '.join(command)}` and fix what it reports",
                "tool": command[0],
            }
        )
    out = Path(os.environ["CORRAL_OUTPUT"]) / "findings.json"
    out.write_text(json.dumps({"version": 1, "tool": name, "findings": findings}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
