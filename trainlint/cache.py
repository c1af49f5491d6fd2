"""Per-file result cache: content hash + settings -> the file's diagnostics, as JSON.

Layout: `<dir>/.gitignore` (`*`), `<dir>/CACHEDIR.TAG`, and `<dir>/v1/<k[:2]>/<k>.json`, one
entry per (file content, trainlint build, settings that affect the file). An entry holds
only what the reports read (no libcst nodes); a hit rebuilds `Diagnostic` objects whose
`fix` carries the same applicability and message but no node edits, so a cached result can
be printed but never applied (`--fix` re-lints the files it has to change).

Robustness: entries are written to a temporary file and renamed into place (atomic, safe
under concurrent runs); an entry that cannot be read or does not match its key is deleted
and recomputed; the directory is pruned to `max_bytes` (oldest entries first) after a run
that wrote to it. Every failure to read or write the cache degrades to "no cache".
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

from trainlint import __version__
from trainlint.diagnostic import Diagnostic, Edit
from trainlint.rule import Applicability, Fix

DIRNAME = ".trainlint_cache"
ENV_VAR = "TRAINLINT_CACHE_DIR"
FORMAT = "v1"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def default_dir(root: Path) -> Path:
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else root / DIRNAME


@functools.lru_cache(maxsize=None)
def build_fingerprint() -> str:
    """The trainlint version plus the size and mtime of every module of the engine and the
    rules, so that editing a rule (in a checkout) never serves results of the old code.

    Taken once per process, after the rules were imported: it stands for the loaded code."""
    import trainlint
    import trainlint.rules

    h = hashlib.blake2b(__version__.encode(), digest_size=16)
    for package in (trainlint, trainlint.rules):
        for directory in package.__path__:
            for dirpath, dirnames, filenames in os.walk(directory):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for name in sorted(filenames):
                    if name.endswith(".py"):
                        try:
                            st = os.stat(os.path.join(dirpath, name))
                        except OSError:
                            continue
                        h.update(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


# ------------------------------------------------------------------ (de)serialisation


def dump(d: Diagnostic) -> dict:
    fix = None if d.fix is None else [d.fix.applicability.value, d.fix.message]
    return {
        "code": d.code,
        "name": d.name,
        "message": d.message,
        "span": [d.row, d.column, d.end_row, d.end_column],
        "fix": fix,
        "help": d.help,
        "edits": [[e.content, e.row, e.column, e.end_row, e.end_column] for e in d.edits],
        "data": d.data,
        "cell": d.cell,
    }


def load(record: dict, path: str) -> Diagnostic:
    fix = record["fix"]
    row, column, end_row, end_column = record["span"]
    return Diagnostic(
        path,
        record["code"],
        record["name"],
        record["message"],
        row,
        column,
        end_row,
        end_column,
        None if fix is None else Fix(fix[1], Applicability(fix[0]), ()),
        record["help"],
        [Edit(*e) for e in record["edits"]],
        record["data"],
        record["cell"],
    )


def lighten(d: Diagnostic) -> Diagnostic:
    """The same diagnostic without libcst nodes (cheap to pickle, cannot be applied)."""
    if d.fix is None or not d.fix.edits:
        return d
    return Diagnostic(
        d.path, d.code, d.name, d.message, d.row, d.column, d.end_row, d.end_column,
        Fix(d.fix.message, d.fix.applicability, ()), d.help, list(d.edits), d.data, d.cell,
    )


def encode(diagnostics: Iterable[Diagnostic]) -> list[dict] | None:
    """JSON-ready records, or None when a diagnostic would not survive the round trip
    exactly (e.g. a tuple in `data`): such a file is simply not cached."""
    records = [dump(d) for d in diagnostics]
    try:
        if json.loads(json.dumps(records)) != records:
            return None
    except (TypeError, ValueError):
        return None
    return records


# ---------------------------------------------------------------------------- store


def make_key(salt: str, data: bytes, settings: tuple) -> str:
    h = hashlib.blake2b(data, digest_size=20)
    h.update(repr((salt, settings)).encode())
    return h.hexdigest()


class Cache:
    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(directory)
        self.entries = self.directory / FORMAT
        self.max_bytes = max_bytes
        self.salt = build_fingerprint()
        self.hits = self.misses = self.writes = self.healed = 0
        self._ready = False
        self._disabled = False

    def key(self, data: bytes, settings: tuple) -> str:
        return make_key(self.salt, data, settings)

    def _path(self, key: str) -> Path:
        return self.entries / key[:2] / f"{key}.json"

    def get(self, key: str) -> list[dict] | None:
        path = os.path.join(self.entries, key[:2], key + ".json")
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except OSError:
            self.misses += 1
            return None
        try:
            entry = json.loads(raw)
            if entry["key"] != key or not isinstance(entry["diagnostics"], list):
                raise ValueError("key mismatch")
            for record in entry["diagnostics"]:  # validate the shape once, here
                load(record, "")
        except Exception:  # corrupt or foreign: heal by dropping it
            self.healed += 1
            self.misses += 1
            try:
                os.unlink(path)
            except OSError:
                pass
            return None
        self.hits += 1
        return entry["diagnostics"]

    def put(self, key: str, records: list[dict]) -> None:
        if self._disabled or not self._prepare():
            return
        path = self._path(key)
        payload = json.dumps({"key": key, "diagnostics": records}, separators=(",", ":"))
        try:
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(payload)
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError:
            self._disabled = True  # read-only tree, full disk...: carry on without a cache
            return
        self.writes += 1

    def _prepare(self) -> bool:
        if self._ready:
            return True
        try:
            self.entries.mkdir(parents=True, exist_ok=True)
            gitignore = self.directory / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("# Created by trainlint automatically.\n*\n", encoding="utf-8")
            tag = self.directory / "CACHEDIR.TAG"
            if not tag.exists():
                tag.write_text(
                    "Signature: 8a477f597d28d172789f06886806bc55\n"
                    "# This file is a cache directory tag created by trainlint.\n",
                    encoding="utf-8",
                )
        except OSError:
            self._disabled = True
            return False
        self._ready = True
        return True

    def size(self) -> int:
        return sum(size for _, size, _ in self._scan())

    def _scan(self) -> list[tuple[float, int, Path]]:
        found = []
        try:
            shards = list(os.scandir(self.entries))
        except OSError:
            return found
        for shard in shards:
            if not shard.is_dir():
                continue
            try:
                for entry in os.scandir(shard.path):
                    try:
                        st = entry.stat()
                    except OSError:
                        continue
                    found.append((st.st_mtime, st.st_size, Path(entry.path)))
            except OSError:
                continue
        return found

    def prune(self) -> int:
        """Keep the cache under max_bytes by deleting the oldest entries (down to 80%)."""
        if not self.writes:
            return 0
        entries = self._scan()
        total = sum(size for _, size, _ in entries)
        if total <= self.max_bytes:
            return 0
        removed = 0
        for _, size, path in sorted(entries):
            if total <= self.max_bytes * 0.8:
                break
            try:
                path.unlink()
            except OSError:
                continue
            total -= size
            removed += 1
        return removed
