"""Score trainlint on hand-labelled real instances of its rules (issue 15); not a test.

    python bench/recall/score.py [--manifest FILE] [--mirror DIR]

Reads bench/recall/manifest.toml, writes every listed file (instances and `[[context]]`
files) from the git snapshots under the mirror directory (default /work/.mirror, laid out
as `fetch` leaves them: OWNER+NAME/repo) into a temporary directory, one folder per
repository and commit so that sibling imports keep their layout, runs trainlint on
those files with every TL0 and TL1 rule selected, and prints per rule: bug instances,
found, recall, near-misses, near-misses flagged (false positives); then the overall
figures, every missed bug with the gap that hides it, every flagged near-miss, and the
diagnostics in the listed files that no manifest line covers (unlabelled: read them).

A diagnostic counts for an instance when its code is the instance's rule, it is in the
instance's file, and its row lies inside the instance's line range.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
VERDICTS = ("bug", "near-miss")


@dataclass(frozen=True)
class Instance:
    repo: str
    commit: str
    path: str
    first: int
    last: int
    rule: str
    verdict: str
    reason: str
    gap: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.repo, self.commit, self.path


def load(manifest: Path) -> tuple[list[Instance], set[tuple[str, str, str]]]:
    """The instances, and every (repo, commit, path) to materialise."""
    data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    instances = []
    for i, raw in enumerate(data.get("instance", [])):
        lines = raw["lines"]
        first, last = (lines, lines) if isinstance(lines, int) else lines
        if raw["verdict"] not in VERDICTS or not 1 <= first <= last:
            raise SystemExit(f"manifest instance {i}: bad verdict or lines: {raw}")
        instances.append(Instance(raw["repo"], raw["commit"], raw["path"], first, last,
                                  raw["rule"], raw["verdict"], raw["reason"], raw.get("gap", "")))
    files = {inst.key for inst in instances}
    files |= {(c["repo"], c["commit"], c["path"]) for c in data.get("context", [])}
    return instances, files


def materialise(files: set[tuple[str, str, str]], mirror: Path, into: Path) -> dict[tuple[str, str, str], Path]:
    """Write each file from its repository's snapshot; exit naming any that is missing."""
    written, missing = {}, []
    for repo, commit, path in sorted(files):
        git_dir = mirror / repo.replace("/", "+") / "repo"
        if (git_dir / ".git").is_dir():  # some snapshots arrive as a checkout
            git_dir = git_dir / ".git"
        shown = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"],
                               capture_output=True)
        if shown.returncode:
            missing.append(f"{repo}@{commit[:12]}:{path} ({shown.stderr.decode(errors='replace').strip()})")
            continue
        target = into / repo.replace("/", "+") / commit[:12] / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(shown.stdout)
        written[(repo, commit, path)] = target
    if missing:
        raise SystemExit("not in the mirror (fetch github:OWNER/NAME first):\n  " + "\n  ".join(missing))
    return written


def lint(paths: list[Path], workdir: Path) -> list[dict]:
    config = workdir / "trainlint.toml"
    config.write_text("[tool.trainlint]\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "trainlint", "check", "--no-cache", "--exit-zero", "--select", "TL0,TL1",
         "--config", str(config), "--output-format", "json", *map(str, paths)],
        capture_output=True, text=True, cwd=workdir,
    )
    # exit 2 with a report means some file could not be parsed (a TL000 diagnostic, listed
    # among the unlabelled ones); anything else without a report is a failure
    if out.returncode not in (0, 2) or not out.stdout.strip():
        raise SystemExit(f"trainlint failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=HERE / "manifest.toml")
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror"))
    args = parser.parse_args()

    instances, files = load(args.manifest)
    with tempfile.TemporaryDirectory(prefix="trainlint-recall-") as tmp:
        workdir = Path(tmp)
        written = materialise(files, args.mirror, workdir / "src")
        diagnostics = lint(sorted(written.values()), workdir)
        by_file = {str(path.resolve()): key for key, path in written.items()}
        reported = collections.defaultdict(list)  # (key, code) -> rows
        for d in diagnostics:
            key = by_file.get(str(Path(d["filename"]).resolve()))
            if key is not None:
                reported[(key, d["code"])].append(d["location"]["row"])

    def hit(inst: Instance) -> bool:
        return any(inst.first <= row <= inst.last for row in reported[(inst.key, inst.rule)])

    table = collections.defaultdict(lambda: [0, 0, 0, 0])  # bugs, found, near-misses, flagged
    misses, false_positives = [], []
    for inst in instances:
        counts = table[inst.rule]
        if inst.verdict == "bug":
            counts[0] += 1
            if hit(inst):
                counts[1] += 1
            else:
                misses.append(inst)
        else:
            counts[2] += 1
            if hit(inst):
                counts[3] += 1
                false_positives.append(inst)

    print(f"{'rule':<7}{'bugs':>6}{'found':>7}{'recall':>8}{'near-misses':>13}{'flagged':>9}")
    for rule in sorted(table):
        bugs, found, near, flagged = table[rule]
        recall = f"{found / bugs:.0%}" if bugs else "-"
        print(f"{rule:<7}{bugs:>6}{found:>7}{recall:>8}{near:>13}{flagged:>9}")
    bugs, found, near, flagged = (sum(c[i] for c in table.values()) for i in range(4))
    print(f"{'all':<7}{bugs:>6}{found:>7}{found / max(bugs, 1):>8.0%}{near:>13}{flagged:>9}")
    print(f"\nrepositories: {len({i.repo for i in instances})}, files: {len(written)}, "
          f"rules with bugs: {sum(1 for c in table.values() if c[0])}")

    def where(inst: Instance) -> str:
        lines = f"{inst.first}" if inst.first == inst.last else f"{inst.first}-{inst.last}"
        return f"{inst.rule} {inst.repo}:{inst.path}:{lines}"

    print(f"\nmissed bugs ({len(misses)}):")
    for inst in misses:
        print(f"  {where(inst)}  -- {inst.gap or inst.reason}")
    print(f"\nflagged near-misses ({len(false_positives)}):")
    for inst in false_positives:
        print(f"  {where(inst)}  -- {inst.reason}")

    labelled = collections.defaultdict(list)
    for inst in instances:
        labelled[(inst.key, inst.rule)].append(inst)
    unlabelled = []
    for (key, code), rows in sorted(reported.items()):
        for row in sorted(rows):
            if not any(i.first <= row <= i.last for i in labelled[(key, code)]):
                unlabelled.append(f"  {code} {key[0]}:{key[2]}:{row}")
    print(f"\ndiagnostics on no labelled line ({len(unlabelled)}):")
    print("\n".join(unlabelled))


if __name__ == "__main__":
    main()
