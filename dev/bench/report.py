"""The bench's statistics, its result table and the machine it ran on."""
from __future__ import annotations

import os
import platform
import re
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Row:
    section: str
    metric: str
    values: List[float]
    unit: str
    digits: int = 1
    target: str = ""
    verdict: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def cells(self) -> List[str]:
        def fmt(v: float) -> str:
            return f"{v:,.{self.digits}f}"
        return [self.section, self.metric, fmt(self.median), fmt(min(self.values)), fmt(max(self.values)),
                str(len(self.values)), self.unit, self.target, self.verdict]


class Report:
    HEADER = ["Section", "Metric", "Median", "Min", "Max", "n", "Unit", "Target", "Verdict"]

    def __init__(self) -> None:
        self.rows: List[Row] = []
        self.tables: List[Tuple[str, List[str], List[List[str]]]] = []
        self.blocks: List[Tuple[str, str]] = []
        self.notes: List[str] = []

    def add(self, section: str, metric: str, values: Iterable[float], unit: str, digits: int = 1,
            target: str = "", holds: Optional[Callable[[float], bool]] = None, verdict: str = "") -> Row:
        row = Row(section, metric, [float(v) for v in values], unit, digits, target)
        if holds is not None:
            row.verdict = "HOLD" if holds(row.median) else "MISS"
        if verdict:
            row.verdict = verdict
        if "proposal" in section or "proposal" in metric:  # a what-if, not the code as it is
            row.verdict = f"would {row.verdict}" if row.verdict else ""
        self.rows.append(row)
        print(f"  {metric}: {row.cells()[2]} {unit} (min {row.cells()[3]}, max {row.cells()[4]}, n={len(row.values)})"
              + (f"  target {target}: {row.verdict}" if target else ""), flush=True)
        return row

    def table(self, title: str, header: List[str], rows: List[List[str]]) -> None:
        self.tables.append((title, header, rows))

    def block(self, title: str, text: str) -> None:
        self.blocks.append((title, text))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def ordered(self) -> List[Row]:
        return sorted(self.rows, key=lambda row: row.section.split(" ", 1)[0])

    def text_table(self) -> str:
        cells = [self.HEADER] + [r.cells() for r in self.ordered()]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.HEADER))]
        right = {2, 3, 4, 5}
        lines = []
        for n, row in enumerate(cells):
            lines.append("  ".join(cell.rjust(width) if i in right else cell.ljust(width)
                                   for i, (cell, width) in enumerate(zip(row, widths))))
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


def md_table(header: List[str], rows: List[List[str]]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def replace_block(path: Path, begin: str, end: str, block: str) -> None:
    """Put `block` (starting with `begin`, ending with `end` and a newline) into `path` in place of the one there,
    changing nothing else; appended when there is none yet."""
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def section(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def _cpu_flags() -> str:
    try:
        return next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return ""


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> Dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = f"{line.split('=', 1)[1].strip(chr(34))} ({platform.system()} {platform.release()})"
    except OSError:
        pass
    versions = []
    for name in ("anthropic", "pynamodb", "chalice", "boto3", "moto"):
        try:
            from importlib.metadata import version
            versions.append(f"{name} {version(name)}")
        except Exception:
            pass
    return {
        "CPU": cpu + (" (virtual machine)" if "hypervisor" in _cpu_flags() else ""),
        "Cores": str(os.cpu_count()),
        "Memory": memory,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": os_name,
        "Packages": ", ".join(versions),
        "Date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
