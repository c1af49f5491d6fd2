"""Benchmark trainlint on a corpus directory (issue 6); not a test.

    python bench/run.py CORPUS [--jobs N] [--sample K] [--skip-jobs1] [--no-breakdown]
    python bench/run.py --scaling [--big-mb MB]

Prints, in one run: the single-process bare `libcst.parse_module` time of every file, the
prefilter's reach (files skipped by the text prefilter, skipped by the ast screen, parsed
by LibCST; files and time per rule for both), trainlint cold `--jobs 1 --no-cache`, cold
with all cores (empty cache), warm, one file changed, peak memory, a per-stage (read,
decode, text prefilter, ast parse, ast index, screens, LibCST parse, traversal, rules,
positions, process start-up) and per-rule time breakdown, `ruff --select B006` and
`flake8 --select B006` when installed, and the ratios that issue 6 sets as goals. Wall
times depend on what else runs on the machine, so CPU times (user+sys, workers included)
and the load average are printed too.

The corpus is copied to a temporary directory first (one file of the copy gets edited);
the original is only read.

`--scaling` (issue 14) instead times one generated file with N = 200, 400 and 800 fixable
diagnostics, in two shapes (N classes each storing a tensor attribute: one TL113 fix each;
N functions with a mutable default and a `.view(16, -1)`: one TL005 fix and one TL006
report each), linted with fix edits (what `--output-format json` needs) and fixed (what
`--fix --unsafe-fixes` computes), in this process; then one generated file of about
`--big-mb` MB of the function shape, against its own bare LibCST parse. It prints CPU
seconds (this process; the machine is shared) and the ratios that issue 14 sets as goals.
"""

from __future__ import annotations

import argparse
import collections
import compileall
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _snapshot_and_reexec() -> None:
    """Run against a frozen copy of trainlint and its rules.

    The cache keys include the engine's and rules' file stamps (editing a rule must not
    serve stale results), so in a checkout that is being edited while the benchmark runs
    every run would be cold. The copy keeps one version of the code for the whole run.
    """
    if os.environ.get("TRAINLINT_BENCH_SNAPSHOT"):
        return
    import trainlint
    import trainlint.rules

    snap = Path(tempfile.mkdtemp(prefix="trainlint-bench-code-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(Path(trainlint.__file__).parent, snap / "trainlint", ignore=ignore)
    shutil.rmtree(snap / "trainlint" / "rules", ignore_errors=True)
    shutil.copytree(Path(trainlint.rules.__file__).parent, snap / "trainlint" / "rules", ignore=ignore)
    # byte-compiled, as `pip install` leaves an installed package (this machine sets
    # PYTHONDONTWRITEBYTECODE, so a source tree would be compiled again by every run)
    compileall.compile_dir(snap, quiet=1)
    env = dict(os.environ, TRAINLINT_BENCH_SNAPSHOT=str(snap),
               PYTHONPATH=os.pathsep.join(filter(None, [str(snap), os.environ.get("PYTHONPATH")])))
    try:
        code = subprocess.call([sys.executable, *sys.argv], env=env)
    finally:
        shutil.rmtree(snap, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    _snapshot_and_reexec()

import libcst  # noqa: E402

from trainlint import engine  # noqa: E402
from trainlint.config import Settings  # noqa: E402
from trainlint.discover import Discovery
from trainlint.imports import ImportTable
from trainlint.registry import select
from trainlint.runner import Options, Runner
from trainlint.screen import AstIndex
from trainlint.tokens import Tokens

CLI = [sys.executable, "-c", "import sys; from trainlint.cli import main; sys.exit(main())"]


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class TreeRSS(threading.Thread):
    """Samples the summed RSS of a process and its descendants (the pool's workers)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def _tree(self, pid: int) -> list[int]:
        out = [pid]
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    for child in f.read().split():
                        out += self._tree(int(child))
        except OSError:
            pass
        return out

    def run(self) -> None:
        while not self.stop.is_set():
            total = 0
            for pid in self._tree(self.pid):
                try:
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            if line.startswith("VmRSS:"):
                                total += int(line.split()[1]) * 1024
                except OSError:
                    pass
            self.peak = max(self.peak, total)
            self.stop.wait(0.05)


def run_cli(args: list[str], cwd: Path) -> dict:
    start = time.perf_counter()
    proc = subprocess.Popen(CLI + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = TreeRSS(proc.pid)
    sampler.start()
    out_chunks = []
    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    err = proc.stderr.read()
    reader.join()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        sys.exit(f"trainlint failed ({proc.returncode}): {err.decode()[-2000:]}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "maxrss": usage.ru_maxrss * 1024,  # the largest single process (Linux: KiB)
        "tree_rss": sampler.peak,
        "out": out_chunks[0] if out_chunks else b"",
    }


def run_tool(cmd: list[str], cwd: Path) -> dict | None:
    if shutil.which(cmd[0]) is None:
        return None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu}


def bare_parse(files: list[Path]) -> dict:
    t0, c0 = time.perf_counter(), cpu_self()
    failed = 0
    for path in files:
        try:
            libcst.parse_module(path.read_bytes())
        except Exception:
            failed += 1
    return {"wall": time.perf_counter() - t0, "cpu": cpu_self() - c0, "failed": failed}


def prefilter(files: list[Path], rules) -> dict:
    """Which files and rules the text prefilter and the ast screen let through, and what
    each costs per rule (serial, in-process; the engine's own `select_rules` steps)."""
    out = {
        "files": 0, "unreadable": 0, "by_prefilter": 0, "by_screen": 0, "unscreened": 0,
        "parsed": 0, "text": collections.Counter(), "screen": collections.Counter(),
        "text_t": collections.defaultdict(float), "screen_t": collections.defaultdict(float),
        "ast_t": 0.0, "index_t": 0.0, "tokens_t": 0.0,
    }
    clock = time.perf_counter
    for path in files:
        out["files"] += 1
        try:
            source = engine.decode(path.read_bytes())
        except engine.SourceError:
            out["unreadable"] += 1
            continue
        text = source.text
        t = clock()
        tokens = Tokens(text)
        out["tokens_t"] += clock() - t
        runnable = []
        for rule in rules:
            t = clock()
            hit = rule.may_apply(tokens)
            out["text_t"][rule.code] += clock() - t
            if hit:
                runnable.append(rule)
                out["text"][rule.code] += 1
        if not runnable:
            out["by_prefilter"] += 1
            continue
        t = clock()
        try:
            tree = engine.syntax_tree(source)
        except engine.SourceError:
            tree = None
        out["ast_t"] += clock() - t
        if tree is None:  # CPython cannot parse it: every rule runs
            out["unscreened"] += 1
            out["parsed"] += 1
            out["screen"].update(r.code for r in runnable)
            continue
        t = clock()
        index = AstIndex(tree, text)
        out["index_t"] += clock() - t
        remaining = 0
        for rule in runnable:
            t = clock()
            hit = rule.screen(index)
            out["screen_t"][rule.code] += clock() - t
            if hit:
                remaining += 1
                out["screen"][rule.code] += 1
        if remaining:
            out["parsed"] += 1
        else:
            out["by_screen"] += 1
    return out


def breakdown(
    files: list[Path], root: Path, selected: list[str] | None = None
) -> tuple[dict, dict, collections.Counter]:
    """An in-process serial lint with every stage and every rule handler timed."""
    stages: dict[str, float] = collections.defaultdict(float)
    rules_t: dict[str, float] = collections.defaultdict(float)
    reached: collections.Counter = collections.Counter()
    clock = time.perf_counter
    names = ("parse", "check_syntax", "_locate", "decode", "select_rules", "syntax_tree",
             "screen", "AstIndex", "run_rules")
    saved = {name: getattr(engine, name) for name in names}
    saved_table, saved_call = ImportTable.of_module, engine._Dispatcher._call

    def timed(name, fn):
        def wrapper(*a, **k):
            t = clock()
            try:
                return fn(*a, **k)
            finally:
                stages[name] += clock() - t
        return wrapper

    def call(self, handlers, node):
        descend = True
        for rule, handler in handlers:
            t = clock()
            try:
                if handler(node) is False:
                    descend = False
            except Exception:
                pass
            rules_t[rule.code] += clock() - t
        return descend

    def run_rules(module, rules, *phase_one):
        reached.update(r.code for r in rules)
        return saved["run_rules"](module, rules, *phase_one)

    engine.parse = timed("parse (LibCST)", saved["parse"])
    engine.check_syntax = timed("syntax check, prefiltered-out files (ast)", saved["check_syntax"])
    engine.syntax_tree = timed("ast parse, prefiltered-in files", saved["syntax_tree"])
    engine.AstIndex = timed("ast index", saved["AstIndex"])
    engine.screen = timed("ast screens", saved["screen"])
    engine.select_rules = timed("select_rules", saved["select_rules"])
    engine._locate = timed("positions + fix edits (reported files only)", saved["_locate"])
    engine.decode = timed("decode", saved["decode"])
    ImportTable.of_module = classmethod(timed("import table", saved_table.__func__))
    engine._Dispatcher._call = call
    engine.run_rules = timed("traversal + rules", run_rules)
    try:
        runner = Runner(Settings(root=root), Options(select=selected, jobs=1, cache=False))
        t0 = clock()
        for path in files:
            t = clock()
            data = path.read_bytes()
            stages["read"] += clock() - t
            runner.run_file(path, data)
        stages["total"] = clock() - t0
    finally:
        for name, fn in saved.items():
            setattr(engine, name, fn)
        ImportTable.of_module = saved_table
        engine._Dispatcher._call = saved_call
    return stages, rules_t, reached


SCALING_SHAPES = {
    "classes with a tensor attribute (TL113 fix)": (
        "import torch\nimport torch.nn as nn\n",
        "\nclass M{i}(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.w{i} = torch.zeros(3)\n",
    ),
    "functions with a mutable default and a view (TL005 fix, TL006)": (
        "import torch\n",
        "\ndef f{i}(x, seen=[]):\n    seen.append(1)\n    return x.view(16, -1)\n",
    ),
}


def generated(shape: str, n: int) -> bytes:
    head, each = SCALING_SHAPES[shape]
    return (head + "".join(each.format(i=i) for i in range(n))).encode()


def timed(function, *args, **kwargs) -> tuple[float, object]:
    """(CPU seconds of this process, result)."""
    start = time.process_time()
    result = function(*args, **kwargs)
    return time.process_time() - start, result


def scaling(big_mb: float) -> None:
    rules = select(None, [], [])
    print(f"== scaling (CPU seconds of this process; load average {os.getloadavg()[0]:.1f})")
    for shape in SCALING_SHAPES:
        print(f"  {shape}")
        lint_t, fix_t = {}, {}
        for n in (200, 400, 800):
            data = generated(shape, n)
            lint_t[n], result = timed(engine.lint, "gen.py", data, rules, want_edits=True)
            edits = sum(len(d.edits) for d in result.diagnostics)
            fix_t[n], fixed = timed(engine.fix, "gen.py", data, rules, unsafe=True)
            print(f"    N={n:<4} {len(result.diagnostics):5d} diagnostics, {edits:5d} edits: lint with "
                  f"edits {lint_t[n]:6.2f} s;  {len(fixed.applied):5d} fixes applied: fix {fix_t[n]:6.2f} s")
        for name, t in (("lint with edits", lint_t), ("fix", fix_t)):
            r = t[800] / t[400]
            print(f"    {name}: N=800 / N=400 = {r:.2f}x   goal <= 2.5x: {'MET' if r <= 2.5 else 'not met'}")
    shape = list(SCALING_SHAPES)[1]
    per_function = len(generated(shape, 1000)) / 1000
    n = int(big_mb * 1e6 / per_function)
    data = generated(shape, n)
    print(f"  one file of {len(data) / 1e6:.1f} MB ({n} functions of the second shape)")
    bare, _ = timed(libcst.parse_module, data)
    lint, result = timed(engine.lint, "big.py", data, rules, want_edits=True)
    fix, fixed = timed(engine.fix, "big.py", data, rules, unsafe=True)
    print(f"    bare libcst.parse_module {bare:6.2f} s")
    for name, t, what in (
        ("lint with edits", lint, f"{len(result.diagnostics)} diagnostics"),
        ("fix", fix, f"{len(fixed.applied)} fixes applied"),
    ):
        r = t / bare
        print(f"    {name:<16} {t:6.2f} s ({what}): {r:.2f}x the bare parse   goal <= 3x: "
              f"{'MET' if r <= 3 else 'not met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, nargs="?")
    ap.add_argument("--scaling", action="store_true", help="the scaling series of issue 14 instead")
    ap.add_argument("--big-mb", type=float, default=3.5, help="size of the big generated file (default 3.5)")
    ap.add_argument("--jobs", type=int, default=None, help="for the default run (default: all cores)")
    ap.add_argument("--sample", type=int, default=1, help="breakdown on every K-th file (default 1: all)")
    ap.add_argument("--skip-jobs1", action="store_true", help="skip the serial cold run")
    ap.add_argument("--no-breakdown", action="store_true")
    ap.add_argument("--select", default=None,
                    help="rule codes or prefixes (comma list) instead of the default rules, "
                         "passed to every trainlint run (e.g. TL0 for the seed rules)")
    args = ap.parse_args()
    if args.scaling:
        scaling(args.big_mb)
        return
    if args.corpus is None:
        ap.error("a corpus directory is needed (or --scaling)")

    corpus = args.corpus.resolve()
    selected = [c.strip() for c in args.select.split(",")] if args.select else None
    files = Discovery(corpus, []).files([corpus])
    size = sum(p.stat().st_size for p in files)
    lines = sum(p.read_bytes().count(b"\n") for p in files)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"corpus: {corpus}  {len(files)} files, {size / 1e6:.1f} MB, {lines} lines; "
          f"{cores} cores; load average at start {os.getloadavg()[0]:.1f}")
    from importlib.metadata import version

    import trainlint

    print(f"python {sys.version.split()[0]}, libcst {version('libcst')}, trainlint "
          f"{trainlint.__version__} (code frozen in {Path(trainlint.__file__).parent})")

    tmp = Path(tempfile.mkdtemp(prefix="trainlint-bench-"))
    try:
        work = tmp / "corpus"
        shutil.copytree(corpus, work, symlinks=True)
        cache_dir = tmp / "cache"
        rows = []

        def show(name, r, extra=""):
            rows.append((name, r))
            print(f"  {name:<42} wall {r['wall']:8.2f} s   cpu {r['cpu']:8.2f} s{extra}", flush=True)

        print("\n== timings (wall = elapsed; cpu = user+sys of all processes)")
        bare = bare_parse(files)
        show("bare libcst.parse_module, 1 process", bare, f"   ({bare['failed']} failed)")

        rules = select(selected, [], [])

        common = ["check", ".", "--exit-zero", "--output-format", "json"]
        if selected:
            common += ["--select", ",".join(selected)]
        jobs1 = None
        if not args.skip_jobs1:
            jobs1 = run_cli(common + ["--jobs", "1", "--no-cache"], work)
            show("trainlint cold --jobs 1 --no-cache", jobs1, f"   peak RSS {jobs1['maxrss'] / 2**20:.0f} MB")
        jobs_arg = ["--jobs", str(args.jobs)] if args.jobs else []
        cold = run_cli(common + jobs_arg + ["--cache-dir", str(cache_dir)], work)
        show("trainlint cold, default jobs, empty cache", cold,
             f"   peak RSS {cold['tree_rss'] / 2**20:.0f} MB all processes, "
             f"{cold['maxrss'] / 2**20:.0f} MB largest")
        warm = run_cli(common + jobs_arg + ["--cache-dir", str(cache_dir)], work)
        show("trainlint warm (nothing changed)", warm, f"   peak RSS {warm['tree_rss'] / 2**20:.0f} MB")

        changed = next((p for p in sorted(work.rglob("*.py")) if p.stat().st_size > 2000), None)
        entries_before = {p: p.stat().st_mtime_ns for p in (cache_dir / "v1").rglob("*.json")}
        with open(changed, "a", encoding="utf-8") as handle:
            handle.write("\n# edited by bench/run.py\n")
        one = run_cli(common + jobs_arg + ["--cache-dir", str(cache_dir)], work)
        written = [p for p in (cache_dir / "v1").rglob("*.json")
                   if entries_before.get(p) != p.stat().st_mtime_ns]
        show("trainlint one file changed", one,
             f"   re-linted {len(written)} file(s) ({changed.relative_to(work)})")

        same = [cold["out"] == warm["out"]]
        if jobs1 is not None:
            same.append(jobs1["out"] == cold["out"])
        ruff = run_tool(["ruff", "check", "--isolated", "--no-cache", "--select", "B006",
                         "--exit-zero", "-q", "."], work)
        if ruff:
            show("ruff check --select B006 (no cache)", ruff)
        flake8 = run_tool(["flake8", "--isolated", "--select", "B006", "--exit-zero", "."], work)
        if flake8:
            show("flake8 --select B006", flake8)

        which = "rules " + ",".join(selected) if selected else "default rules"
        print(f"\n== prefilter (text conditions, then ast screens, of the {which}; serial)")
        pre = prefilter(files, rules)
        n = max(1, pre["files"])
        print(f"  files {pre['files']}: skipped by the text prefilter {pre['by_prefilter']} "
              f"({pre['by_prefilter'] / n:.0%}), by the ast screen {pre['by_screen']} "
              f"({pre['by_screen'] / n:.0%}), parsed by LibCST {pre['parsed']} "
              f"({pre['parsed'] / n:.0%}; {pre['unscreened']} that CPython cannot parse, "
              f"unscreened); unreadable {pre['unreadable']}")
        print(f"  words of every file (the token set) {pre['tokens_t']:.2f} s, ast parse of "
              f"prefiltered-in files {pre['ast_t']:.2f} s, ast index "
              f"{pre['index_t']:.2f} s")
        print("  per rule: files through text / through screen, time text / screen:")
        for r in rules:
            print(f"    {r.code}  {pre['text'][r.code]:5d} / {pre['screen'][r.code]:5d}   "
                  f"{pre['text_t'][r.code]:6.2f} s / {pre['screen_t'][r.code]:6.2f} s")

        if not args.no_breakdown:
            sample = files[:: args.sample]
            stages, rule_t, reached = breakdown(sample, work, selected)
            total = stages.pop("total")
            note = "" if args.sample == 1 else f" (1 file in {args.sample}: {len(sample)} files)"
            print(f"\n== where the time goes, serial in-process{note}: total {total:.2f} s")
            traversal = stages.get("traversal + rules", 0.0)
            rules_sum = sum(rule_t.values())
            stages["traversal + rules"] = traversal - rules_sum - stages.get("import table", 0.0)
            stages["rule handlers"] = rules_sum
            # select_rules minus its timed parts: the text prefilter (and check_syntax's
            # LibCST confirmation, rare)
            stages["text prefilter"] = stages.pop("select_rules", 0.0) - sum(
                stages.get(k, 0.0) for k in ("syntax check, prefiltered-out files (ast)",
                                             "ast parse, prefiltered-in files", "ast index",
                                             "ast screens"))
            order = ["read", "decode", "text prefilter", "syntax check, prefiltered-out files (ast)",
                     "ast parse, prefiltered-in files", "ast index", "ast screens",
                     "parse (LibCST)", "import table", "traversal + rules", "rule handlers",
                     "positions + fix edits (reported files only)"]
            for name in order:
                label = "traversal (dispatch, no rule code)" if name == "traversal + rules" else name
                print(f"  {label:<44} {stages.get(name, 0.0):8.2f} s  {stages.get(name, 0.0) / total:5.0%}")
            other = total - sum(stages.get(n, 0.0) for n in order)
            print(f"  {'other (suppressions, sorting, runner)':<44} {other:8.2f} s  {other / total:5.0%}")
            print("  per rule (handler time, files reached):")
            for code, t in sorted(rule_t.items(), key=lambda kv: -kv[1]):
                print(f"    {code}  {t:8.2f} s  {reached[code]:5d} files")
            if cold is not None:
                start_only = run_cli(["check", "--exit-zero", "--no-cache", os.devnull], work)
                print(f"  process start-up + imports (trainlint on /dev/null): wall "
                      f"{start_only['wall']:.2f} s, cpu {start_only['cpu']:.2f} s")

        print("\n== goals of issue 6 (ratio: wall, cpu)")

        def ratio(name, a, b, goal):
            rw, rc = a["wall"] / b["wall"], a["cpu"] / b["cpu"]
            if goal is None:
                print(f"  {name:<46} {rw:7.3f}x  {rc:7.3f}x   (reference)")
                return
            verdict = "MET" if rw <= goal else "not met"
            print(f"  {name:<46} {rw:7.3f}x  {rc:7.3f}x   goal <= {goal}x: {verdict} (wall)")

        if jobs1 is not None:
            ratio("cold --jobs 1 / bare parse", jobs1, bare, None)
        ratio("cold default / bare parse", cold, bare, 0.5)
        ratio("warm / bare parse", warm, bare, 0.03)
        if ruff:
            ratio("warm / ruff --select B006", warm, ruff, 5)
        peak = max(r.get("tree_rss", 0) for _, r in rows)
        print(f"  peak memory, all processes of one run: {peak / 2**20:.0f} MB   goal < 300 MB: "
              f"{'MET' if peak < 300 * 2**20 else 'not met'}")
        print(f"  one changed file re-lints only that file: {'MET' if len(written) == 1 else 'not met'}"
              f" ({len(written)} re-linted)")
        print(f"  identical output (cold jobs 1 == cold default == warm): "
              f"{'yes' if all(same) else 'NO'}")
        print(f"  throughput, cold default: {size / 1e6 / cold['wall']:.2f} MB/s wall, "
              f"{size / 1e6 / cold['cpu']:.2f} MB/s per cpu-second; bare parse "
              f"{size / 1e6 / bare['cpu']:.2f} MB/s per cpu-second")
        print(f"  load average at end {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
