"""Logic lines of trainlint's code (issue 14); not a test.

    python bench/loc.py [DIR...]        (default: rules trainlint, next to this script)

A logic line holds some token other than a comment: blank lines, comment lines,
docstrings (of modules, classes and functions) and rule example data (the `VALID` and
`INVALID` assignments of a class body) do not count. Prints the count per file and per
directory, and the total.
"""

from __future__ import annotations

import argparse
import ast
import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DATA = {"VALID", "INVALID"}
_NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
             tokenize.ENCODING, tokenize.ENDMARKER}


def _excluded_rows(tree: ast.Module) -> set[int]:
    """Rows of docstrings and of example data."""
    rows: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                rows.update(range(body[0].lineno, body[0].end_lineno + 1))
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
                if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and any(
                    isinstance(t, ast.Name) and t.id in EXAMPLE_DATA for t in targets
                ):
                    rows.update(range(stmt.lineno, stmt.end_lineno + 1))
    return rows


def logic_lines(path: Path) -> int:
    text = path.read_text(encoding="utf-8")
    rows: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type not in _NOT_CODE:
            rows.update(range(token.start[0], token.end[0] + 1))
    return len(rows - _excluded_rows(ast.parse(text)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="*", type=Path, default=[ROOT / "rules", ROOT / "trainlint"])
    args = ap.parse_args()
    total = 0
    for directory in args.dirs:
        subtotal = 0
        for path in sorted(directory.rglob("*.py")):
            count = logic_lines(path)
            subtotal += count
            print(f"{count:7d}  {path.relative_to(directory.parent)}")
        print(f"{subtotal:7d}  {directory.name}/ (total)\n")
        total += subtotal
    print(f"{total:7d}  all")


if __name__ == "__main__":
    main()
