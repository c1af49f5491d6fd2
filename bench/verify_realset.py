"""Run `trainlint verify` over the real-code set of losses and schedulers and tally verdicts.

    python bench/verify_realset.py [--mirror DIR] [--device cpu|auto|cuda] [--speed N]
                                   [--json OUT] [--explain]

The set is bench/verify_realset.json: repository, path and commit of each file, and the
loss and scheduler classes in it that have fixes. Each repository is materialised at its
commit from a local snapshot (`fetch` puts them under /work/.mirror/OWNER+NAME/repo) into a
temporary directory, with all its Python files, so that `verify` sees the project's own
call sites; nothing is written into this repository. Prints confirmed / refuted /
inconclusive counts and shares, the wall time, every refutation with its evidence, and the
inconclusive reasons grouped. `--speed N` also times `verify` over N files of the
materialised repositories (the set's files first, then other files with fixes, then the
rest in path order).
Not a test: a benchmark of the harness on code it was not written for.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MANIFEST = Path(__file__).resolve().parent / "verify_realset.json"


def git_dir(mirror: Path, repository: str) -> Path:
    root = mirror / repository.replace("/", "+", 1) / "repo"
    return root / ".git" if (root / ".git").is_dir() else root


def materialise(mirror: Path, repository: str, commit: str, dest: Path) -> None:
    """The repository's Python files at `commit`, under dest/OWNER+NAME/."""
    out = dest / repository.replace("/", "+", 1)
    out.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "--git-dir", str(git_dir(mirror, repository)), "archive", commit, "--", ":(glob)**/*.py"],
        capture_output=True, check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)


def run_verify(root: Path, paths: list[str], device: str, explain: bool) -> tuple[list[dict], float, float]:
    """The verdicts, the wall time, and the CPU time (user + system, every process) it took."""
    command = [sys.executable, "-m", "trainlint", "verify", "--device", device, "--output-format", "json", *paths]
    if explain:
        command.insert(4, "--explain")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        sys.exit(f"verify failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return json.loads(proc.stdout), elapsed, cpu


def fixable_files(root: Path) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "trainlint", "check", "--no-cache", "--unsafe-fixes", "--exit-zero",
         "--output-format", "json", "."],
        cwd=root, capture_output=True, text=True,
    )
    found = json.loads(proc.stdout or "[]")
    return sorted({os.path.relpath(d["filename"], root) for d in found if d.get("fix")})


def tally(verdicts: list[dict], elapsed: float, cpu: float, files: int) -> None:
    counts = collections.Counter(v["verdict"] for v in verdicts)
    total = len(verdicts) or 1
    print(f"{len(verdicts)} verdicts on {files} files in {elapsed:.1f} s wall, {cpu:.1f} s CPU "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    for kind in ("confirmed", "refuted", "inconclusive"):
        print(f"  {kind:<13} {counts[kind]:>4}  {100 * counts[kind] / total:5.1f}%")
    per_code = collections.defaultdict(collections.Counter)
    for v in verdicts:
        per_code[v["code"]][v["verdict"]] += 1
    print("per rule:", ", ".join(
        f"{code} {c['confirmed']}/{c['refuted']}/{c['inconclusive']}" for code, c in sorted(per_code.items())
    ), "(confirmed/refuted/inconclusive)")
    refuted = [v for v in verdicts if v["verdict"] == "refuted"]
    if refuted:
        print("\nrefutations (read each one):")
        for v in refuted:
            print(f"  {v['filename']}:{v['row']} {v['target']} {v['code']}: {v['evidence']}")
    reasons = collections.Counter(
        v["evidence"].split(":")[0][:110] for v in verdicts if v["verdict"] == "inconclusive"
    )
    if reasons:
        print("\ninconclusive, by reason:")
        for reason, n in reasons.most_common():
            print(f"  {n:>3}  {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "auto", "cuda"])
    parser.add_argument("--speed", type=int, default=0, help="also time verify over this many files")
    parser.add_argument("--json", type=Path, help="write the verdicts here")
    parser.add_argument("--explain", action="store_true", help="ask verify for repro snippets too")
    args = parser.parse_args()
    entries = json.loads(MANIFEST.read_text())["files"]
    with tempfile.TemporaryDirectory(prefix="trainlint-realset-") as tmp:
        root = Path(tmp)
        for repository, commit in dict.fromkeys((e["repository"], e["commit"]) for e in entries):
            materialise(args.mirror, repository, commit, root)
        paths = [f"{e['repository'].replace('/', '+', 1)}/{e['path']}" for e in entries]
        verdicts, elapsed, cpu = run_verify(root, paths, args.device, args.explain)
        tally(verdicts, elapsed, cpu, len(paths))
        if args.json:
            args.json.write_text(json.dumps(verdicts, indent=1))
        if args.speed:
            fixable = [p for p in fixable_files(root) if p not in paths]
            rest = sorted(str(p.relative_to(root)) for p in root.rglob("*.py"))
            chosen = list(dict.fromkeys(paths + fixable + rest))[: args.speed]
            _, seconds, cpu = run_verify(root, chosen, args.device, False)
            print(f"\nspeed: verify over {len(chosen)} files took {seconds:.1f} s wall, {cpu:.1f} s CPU "
                  f"(user + system) on {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
