"""Run probes in a subprocess with a timeout and a memory cap each; never hang or crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 4096
STARTUP_S = 120.0  # importing torch on a busy machine


@dataclass
class ProbeRun:
    result: dict | None
    problem: str | None  # why there is no result: timeout, crash, memory


def run_probes(specs: list[dict], timeout: float, memory_mb: int | None, jobs: int) -> list[ProbeRun]:
    """Run every spec in one subprocess that imports torch once and forks a child per spec
    (its own process group, memory cap and `timeout`); one ProbeRun per spec, in order."""
    if not specs:
        return []
    with tempfile.TemporaryDirectory(prefix="trainlint-probe-") as tmp:
        path = os.path.join(tmp, "batch.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"specs": specs, "timeout": timeout, "memory_mb": memory_mb, "jobs": max(jobs, 1)}, handle)
        # Each child keeps its own timeout; this bound only catches a runner that hangs itself.
        budget = timeout * (len(specs) // max(jobs, 1) + 1) + STARTUP_S
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "trainlint.harness.probe", path, tmp],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=tmp,
                start_new_session=True,
            )
        except OSError as exc:
            return [ProbeRun(None, f"could not start the probe: {exc}")] * len(specs)
        try:
            _, err = proc.communicate(timeout=budget)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return [ProbeRun(None, f"the probes did not finish within {budget:g} s")] * len(specs)
        finally:
            _kill_group(proc)
        if proc.returncode != 0:
            tail = (err.decode(errors="replace").strip().splitlines() or [""])[-1]
            return [ProbeRun(None, f"the probe runner failed (exit {proc.returncode}): {tail}")] * len(specs)
        return [_collect(tmp, i) for i in range(len(specs))]


def _collect(directory: str, index: int) -> ProbeRun:
    for suffix in ("json", "problem"):
        try:
            with open(os.path.join(directory, f"{index}.{suffix}"), encoding="utf-8") as handle:
                text = handle.read()
        except OSError:
            continue
        if suffix == "problem":
            return ProbeRun(None, text)
        try:
            return ProbeRun(json.loads(text), None)
        except ValueError:
            return ProbeRun(None, "the probe printed no result")
    return ProbeRun(None, "the probe printed no result")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError, OSError):
        pass
