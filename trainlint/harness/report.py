"""Verdicts as a text table (with LR sparklines), as JSON, and as PNG plots."""

from __future__ import annotations

import json
import math
from pathlib import Path

from trainlint.harness.verify import Verdict

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    return "".join(
        " " if v is None or not math.isfinite(v) else BARS[int((v - low) / span * (len(BARS) - 1))]
        for v in values
    )


def text(verdicts: list[Verdict], explain: bool = False) -> str:
    if not verdicts:
        return "No fix to verify: no proposed fix was found.\n"
    rows = [("file", "target", "code", "row", "verdict", "devices", "evidence")]
    for v in verdicts:
        rows.append((v.filename, v.target, v.code, str(v.row), v.verdict, ",".join(v.devices), v.evidence))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = []
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r[:6], widths)) + "  " + r[6])
    shown: set[tuple[str, str]] = set()
    for v in verdicts:
        if v.traces and (v.filename, v.target) not in shown:
            shown.add((v.filename, v.target))
            lines.append("")
            lines.append(f"{v.filename}: {v.target} learning rate per step()")
            for label in ("original", "fixed"):
                if label in v.traces:
                    lines.append(f"  {label:<9} {sparkline(v.traces[label])}")
    if explain:
        for v in verdicts:
            if v.repro:
                lines += ["", f"--- {v.filename}:{v.row} {v.code} {v.verdict}: repro " + "-" * 20, v.repro.rstrip()]
    counts = {k: sum(v.verdict == k for v in verdicts) for k in ("confirmed", "refuted", "inconclusive")}
    lines.append("")
    lines.append(", ".join(f"{n} {k}" for k, n in counts.items()) + ".")
    return "\n".join(lines) + "\n"


def as_json(verdicts: list[Verdict]) -> str:
    return json.dumps([v.as_json() for v in verdicts], indent=2) + "\n"


def plot(verdicts: list[Verdict], directory: Path) -> list[Path]:
    """One PNG per scheduler: original vs fixed learning rate. Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    done: set[tuple[str, str]] = set()
    for v in verdicts:
        if not v.traces or (v.filename, v.target) in done:
            continue
        done.add((v.filename, v.target))
        fig, ax = plt.subplots(figsize=(7, 4))
        for label in ("original", "fixed"):
            if label in v.traces:
                ax.plot(v.traces[label], marker=".", label=label)
        ax.set_xlabel("step() call")
        ax.set_ylabel("learning rate")
        ax.set_title(f"{v.target} ({v.filename})")
        ax.legend()
        name = f"{Path(v.filename).stem}-{v.target}.png"
        fig.savefig(directory / name, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(directory / name)
    return written
