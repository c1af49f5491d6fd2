"""trainlint as a flake8 plugin: `flake8 --select TL` reports trainlint's diagnostics.

The rules, per-file ignores and the rest of `[tool.trainlint]` come from the nearest
pyproject.toml of each file, as for `trainlint check`; flake8's own `--select` and
`--extend-ignore` then filter the codes. flake8 handles `# noqa` comments itself too.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterator

from trainlint import __version__, engine
from trainlint.config import ConfigError, Settings, find_config, load
from trainlint.registry import SelectorError
from trainlint.runner import Options, Runner
from trainlint.server.checking import encode


class Plugin:
    name = "trainlint"
    version = __version__

    def __init__(self, tree, filename: str, lines: list[str]) -> None:
        self.filename = filename
        self.lines = lines

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        path = Path(self.filename)
        try:
            runner = _runner(find_config(path.resolve().parent))
        except (ConfigError, SelectorError) as exc:
            yield 1, 0, f"TL000 configuration: {exc}", type(self)
            return
        data = encode("".join(self.lines))
        result = engine.lint(self.filename, data, runner.rules_for(path))
        for d in result.diagnostics:
            # flake8 counts columns from 0 here and adds 1 when it prints them
            yield d.row, d.column - 1, f"{d.code} {d.message}", type(self)


@lru_cache(maxsize=None)
def _runner(config: Path | None) -> Runner:
    """One Runner per configuration file (flake8 checks many files with one config)."""
    settings = load(config) if config is not None else Settings(root=Path.cwd().resolve())
    return Runner(settings, Options())
