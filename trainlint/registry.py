"""Finds the rule classes shipped in `trainlint.rules` and resolves code selectors."""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from trainlint.rule import Rule


class SelectorError(ValueError):
    pass


@lru_cache(maxsize=None)
def all_rules() -> tuple[type[Rule], ...]:
    import trainlint.rules as package

    found: list[type[Rule]] = []
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("tl"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type)
            and issubclass(obj, Rule)
            and obj.__module__ == module.__name__
            and "code" in vars(obj)
        ]
    return tuple(sorted(found, key=lambda r: r.code))


def by_code(code: str) -> type[Rule]:
    for rule in all_rules():
        if rule.code == code.upper():
            return rule
    raise SelectorError(f"unknown rule code {code!r}")


def matching(selectors: list[str], origin: str) -> set[type[Rule]]:
    """Rules whose code starts with any selector; a selector matching nothing is an error."""
    chosen: set[type[Rule]] = set()
    for selector in selectors:
        sel = selector.strip().upper()
        hits = {r for r in all_rules() if r.code.startswith(sel)}
        if not sel or not hits:
            raise SelectorError(f"{origin}: unknown rule code or prefix {selector!r}")
        chosen |= hits
    return chosen


def select(
    select: list[str] | None, extend_select: list[str], ignore: list[str], origin: str = "selection"
) -> list[type[Rule]]:
    base = (
        matching(select, origin)
        if select is not None
        else {r for r in all_rules() if r.default_enabled}
    )
    chosen = (base | matching(extend_select, origin)) - matching(ignore, origin)
    return sorted(chosen, key=lambda r: r.code)
