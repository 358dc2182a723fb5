"""What every benchmark script shares: the machine's name and appending a report to RESULTS.md."""

from __future__ import annotations

import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what the platform says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def print_and_record(report: str, record: bool) -> None:
    """Print a Markdown report and, with ``record``, append it to benchmarks/RESULTS.md."""
    print("\n" + report)
    if record:
        with RESULTS.open("a") as handle:
            handle.write("\n" + report)
