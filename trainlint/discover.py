"""Paths given on the command line -> the files to lint."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

DEFAULT_EXCLUDES = (
    ".git", ".venv", "venv", "build", "dist", "__pycache__", "node_modules", "site-packages",
)
EXTENSIONS = (".py", ".ipynb")


class Discovery:
    def __init__(self, root: Path, excludes: list[str]) -> None:
        self.root = root
        self.patterns = [*DEFAULT_EXCLUDES, *excludes]
        self.missing: list[Path] = []
        self.unreadable: list[tuple[Path, str]] = []  # directories that cannot be listed

    def excluded(self, path: Path) -> bool:
        name = path.name
        try:
            # resolve the directory only: the file itself may be a symlink (even a looping
            # or dangling one), and its own name is what the patterns match
            rel = (path.parent.resolve() / name).relative_to(self.root).as_posix()
        except (ValueError, OSError, RuntimeError):
            rel = path.as_posix()
        return any(
            fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, p.rstrip("/") + "/*")
            for p in self.patterns
        )

    def files(self, paths: list[Path]) -> list[Path]:
        found: list[Path] = []
        for path in paths:
            if path.is_dir():
                found += self._walk(path)
            elif path.exists() or path.is_symlink():
                found.append(path)  # named explicitly: linted even if excluded
            else:
                self.missing.append(path)
        return sorted(set(found), key=lambda p: p.as_posix())

    def _walk(self, top: Path) -> list[Path]:
        out = []
        real_top = top.resolve()
        def unreadable(exc: OSError) -> None:
            self.unreadable.append((Path(exc.filename), exc.strerror or str(exc)))

        for directory, dirnames, filenames in os.walk(top, onerror=unreadable):
            base = Path(directory)
            dirnames[:] = sorted(
                d for d in dirnames if not self.excluded(base / d) and not (base / d).is_symlink()
            )
            for name in sorted(filenames):
                path = base / name
                if not name.endswith(EXTENSIONS) or self.excluded(path):
                    continue
                if path.is_symlink() and _resolvable(path) and not _inside(path, real_top):
                    continue  # not followed out of the linted tree
                # a looping or dangling symlink is kept: reading it fails with the reason,
                # reported as TL000 for that file
                out.append(path)
        return out


def _resolvable(path: Path) -> bool:
    try:
        path.resolve(strict=True)
        return True
    except (OSError, RuntimeError):
        return False


def _inside(path: Path, top: Path) -> bool:
    try:
        path.resolve().relative_to(top)
        return True
    except (ValueError, OSError, RuntimeError):
        return False
