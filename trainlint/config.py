"""`[tool.trainlint]` in pyproject.toml: discovery, validation, and the merged settings."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(Exception):
    pass


_LIST_KEYS = ("select", "ignore", "extend-select", "exclude")
KEYS = (*_LIST_KEYS, "per-file-ignores", "unsafe-fixes", "verify")


@dataclass
class Settings:
    root: Path
    source: str = "defaults"
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, list[str]] = field(default_factory=dict)
    unsafe_fixes: bool = False
    verify: dict = field(default_factory=dict)


def find_config(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above `start` that has a [tool.trainlint] table."""
    start = start.resolve()
    for directory in [start, *start.parents] if start.is_dir() else start.parents:
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            try:
                if "trainlint" in _read_toml(candidate).get("tool", {}):
                    return candidate
            except ConfigError:
                return candidate  # report the broken file rather than skip past it
    return None


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None


def load(path: Path) -> Settings:
    data = _read_toml(path)
    table = data.get("tool", {}).get("trainlint")
    if table is None:
        if path.name == "pyproject.toml":
            return Settings(root=path.parent.resolve(), source=str(path))
        table = data  # a dedicated config file holds the keys at top level
    where = f"{path}: [tool.trainlint]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    for key in table:
        if key not in KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (expected one of: {', '.join(KEYS)})")
    for key in _LIST_KEYS:
        if key in table and not _is_str_list(table[key]):
            raise ConfigError(f"{where}: {key!r} must be a list of strings, got {table[key]!r}")
    pfi = table.get("per-file-ignores", {})
    if not isinstance(pfi, dict) or not all(_is_str_list(v) for v in pfi.values()):
        raise ConfigError(
            f"{where}: 'per-file-ignores' must map glob patterns to lists of codes, got {pfi!r}"
        )
    unsafe = table.get("unsafe-fixes", False)
    if not isinstance(unsafe, bool):
        raise ConfigError(f"{where}: 'unsafe-fixes' must be true or false, got {unsafe!r}")
    verify = table.get("verify", {})
    if not isinstance(verify, dict):
        raise ConfigError(f"{where}: 'verify' must be a table, got {verify!r}")
    _check_verify(verify, f"{path}: [tool.trainlint.verify]")
    return Settings(
        root=path.parent.resolve(),
        source=str(path),
        select=table.get("select"),
        ignore=table.get("ignore", []),
        extend_select=table.get("extend-select", []),
        exclude=table.get("exclude", []),
        per_file_ignores=dict(pfi),
        unsafe_fixes=unsafe,
        verify=verify,
    )


VERIFY_NUMBERS = ("timeout", "memory-mb")
VERIFY_TARGET_KEYS = ("kwargs", "steps", "num_classes")


def _check_verify(table: dict, where: str) -> None:
    for key, value in table.items():
        if key in VERIFY_NUMBERS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{where}: {key!r} must be a positive number, got {value!r}")
        elif not isinstance(value, dict) or set(value) - set(VERIFY_TARGET_KEYS):
            raise ConfigError(
                f"{where}: {key!r} must be a table (per scheduler or loss class) with keys "
                f"{', '.join(VERIFY_TARGET_KEYS)}, or one of {', '.join(VERIFY_NUMBERS)}"
            )
        elif not isinstance(value.get("kwargs", {}), dict):
            raise ConfigError(f"{where}: {key}.kwargs must be a table, got {value['kwargs']!r}")


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def resolve(config: Path | None, paths: list[Path]) -> Settings:
    """Settings from `--config`, else from the nearest config above the first path."""
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"{config}: no such config file")
        return load(config)
    start = paths[0] if paths else Path.cwd()
    found = find_config(start if start.exists() else Path.cwd())
    return load(found) if found else Settings(root=Path.cwd().resolve())
