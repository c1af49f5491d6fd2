"""Run one probe in a subprocess with a timeout and a memory cap; never hang or crash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MEMORY_MB = 4096


@dataclass
class ProbeRun:
    result: dict | None
    problem: str | None  # why there is no result: timeout, crash, memory


def _limit_memory(megabytes: int):
    def apply() -> None:
        try:
            import resource

            limit = megabytes * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        except (ImportError, ValueError, OSError):
            pass
        os.setsid()  # its own process group, so a timeout can end every child it forked

    return apply


def run_probe(spec: dict, timeout: float, memory_mb: int | None) -> ProbeRun:
    with tempfile.TemporaryDirectory(prefix="trainlint-probe-") as tmp:
        path = os.path.join(tmp, "spec.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(spec, handle)
        # CUDA reserves far more address space than it uses, so the cap is CPU-only.
        cap = memory_mb if memory_mb and "cuda" not in spec.get("devices", ()) else None
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "trainlint.harness.probe", path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=tmp,
                preexec_fn=_limit_memory(cap) if cap else os.setsid,
            )
        except OSError as exc:
            return ProbeRun(None, f"could not start the probe: {exc}")
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return ProbeRun(None, f"the probe did not finish within {timeout:g} s")
        finally:
            _kill_group(proc)
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
        if proc.returncode < 0:
            return ProbeRun(None, f"the probe was killed by signal {-proc.returncode} {tail[0]}".strip())
        if "MemoryError" in tail[0]:
            return ProbeRun(None, f"the probe ran out of memory (cap {cap} MB)")
        return ProbeRun(None, f"the probe crashed (exit {proc.returncode}): {tail[0]}")
    try:
        return ProbeRun(json.loads(out.decode().strip().splitlines()[-1]), None)
    except (ValueError, IndexError):
        return ProbeRun(None, "the probe printed no result")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError, OSError):
        pass
