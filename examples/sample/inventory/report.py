"""Stock reports: a text summary, and an archive of the report directory."""
import subprocess

from inventory.config import load_settings
from inventory.stock import Stock


def summary(stock: Stock) -> str:
    lines = ["%-10s %5d" % (item, count) for item, count in sorted(stock.levels.items())]
    low = stock.low(load_settings()["low_stock"])
    if low:
        lines.append("low: {}".format(", ".join(low)))
    return "\n".join(lines)


def archive(report_dir: str) -> str:
    # the name comes from the settings file: a shell line is an injection risk
    return subprocess.check_output("tar czf reports.tgz " + report_dir, shell=True, text=True)
