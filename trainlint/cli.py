"""The `trainlint` command."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from trainlint import __version__
from trainlint.config import ConfigError, resolve
from trainlint.registry import SelectorError, all_rules, by_code
from trainlint.runner import Options, Runner

EXIT_CLEAN, EXIT_DIAGNOSTICS, EXIT_ERROR = 0, 1, 2


class _DefaultToCheck(click.Group):
    """`trainlint PATH...` and bare `trainlint --fix` mean `trainlint check ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h", "--version")):
            args = ["check", *args]
        return super().parse_args(ctx, args)


def _codes(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [c.strip() for c in value.split(",") if c.strip()]


@click.group(cls=_DefaultToCheck, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trainlint")
def main() -> None:
    """trainlint: find and fix silent bugs in PyTorch training code."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--fix", is_flag=True, help="Apply fixes (safe ones; unsafe ones too with --unsafe-fixes).")
@click.option("--unsafe-fixes/--no-unsafe-fixes", default=None, help="Also apply / offer unsafe fixes.")
@click.option("--diff", is_flag=True, help="Print the fixes as unified diffs; write nothing.")
@click.option("--select", help="Comma-separated rule codes or prefixes to enable (replaces the default set).")
@click.option("--ignore", help="Comma-separated rule codes or prefixes to disable.")
@click.option("--extend-select", help="Comma-separated rule codes or prefixes to enable in addition.")
@click.option(
    "--output-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="How to print diagnostics.",
)
@click.option("--statistics", is_flag=True, help="Print the number of diagnostics per rule.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when diagnostics remain.")
@click.option("--config", type=click.Path(path_type=Path), help="Read settings from this TOML file.")
def check(paths, fix, unsafe_fixes, diff, select, ignore, extend_select, output_format,
          statistics, exit_zero, config) -> None:
    """Lint PATHS (files or directories; default: the current directory)."""
    from trainlint.report import json as json_report
    from trainlint.report import text as text_report

    paths = list(paths) or [Path(".")]
    try:
        settings = resolve(config, paths)
        runner = Runner(
            settings,
            Options(
                select=_codes(select),
                ignore=_codes(ignore) or [],
                extend_select=_codes(extend_select) or [],
                fix=fix,
                unsafe_fixes=unsafe_fixes,
                diff=diff,
                want_edits=output_format == "json",
            ),
        )
    except (ConfigError, SelectorError) as exc:
        click.echo(f"trainlint: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)

    run = runner.run(paths)
    if diff:
        for outcome in run.outcomes:
            if outcome.diff:
                click.echo(outcome.diff, nl=False)
        changed = [o for o in run.outcomes if o.diff]
        click.echo(f"Would fix {len(changed)} file(s).", err=True)
        errors = any(d.is_error for d in run.diagnostics)
        sys.exit(EXIT_ERROR if errors else EXIT_DIAGNOSTICS if changed else EXIT_CLEAN)
    if output_format == "json":
        click.echo(json_report.render(run), nl=False)
    elif statistics:
        click.echo(text_report.statistics(run), nl=False)
    else:
        click.echo(text_report.render(run, fixing=fix), nl=False)
    remaining = run.diagnostics
    if any(d.is_error for d in remaining):
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_DIAGNOSTICS if remaining and not exit_zero else EXIT_CLEAN)


@main.command()
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="Print every rule's documentation.")
def rule(code: str | None, show_all: bool) -> None:
    """Print the documentation of rule CODE (or of every rule with --all)."""
    if show_all == (code is not None):
        raise click.UsageError("give either a rule CODE or --all")
    try:
        rules = all_rules() if show_all else (by_code(code),)
    except SelectorError as exc:
        click.echo(f"trainlint: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    pages = []
    for r in rules:
        fix = r.fix_applicability.value if r.fix_applicability else "none"
        pages.append(f"# {r.code} {r.name}\n\nFix: {fix}. Enabled by default: "
                     f"{'yes' if r.default_enabled else 'no'}.\n\n{r.documentation()}\n")
    click.echo("\n".join(pages), nl=False)
