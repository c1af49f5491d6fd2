"""The `trainlint` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from trainlint import __version__
from trainlint.config import ConfigError, resolve
from trainlint.diagnostic import internal
from trainlint.docs import page
from trainlint.registry import SelectorError, all_rules, by_code
from trainlint.report import FORMATS
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
    type=click.Choice(sorted(FORMATS)),
    default="text",
    show_default=True,
    envvar="TRAINLINT_OUTPUT_FORMAT",
    help="How to print diagnostics (also TRAINLINT_OUTPUT_FORMAT).",
)
@click.option("-o", "--output-file", type=click.Path(path_type=Path), help="Write the report to this file.")
@click.option("--statistics", is_flag=True, help="Print the number of diagnostics per rule.")
@click.option("--show-fixes", is_flag=True, help="List the fixes that were applied, per file and rule.")
@click.option(
    "--add-noqa",
    is_flag=True,
    help="Add a `# noqa: CODE` comment for every current diagnostic (adopting trainlint).",
)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when diagnostics remain.")
@click.option("--config", type=click.Path(path_type=Path), help="Read settings from this TOML file.")
@click.option(
    "--verify",
    is_flag=True,
    help="With --fix/--diff: apply unsafe fixes only where `trainlint verify` confirms them "
    "(executes the project's schedulers and losses).",
)
@click.option(
    "-j", "--jobs",
    type=click.IntRange(min=0),
    default=None,
    envvar="TRAINLINT_JOBS",
    help="Worker processes (default and 0: all cores; 1: serial).",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    envvar="TRAINLINT_CACHE_DIR",
    help="Where to keep the result cache (default: .trainlint_cache in the config root or the "
    "current directory; also TRAINLINT_CACHE_DIR).",
)
def check(paths, fix, unsafe_fixes, diff, select, ignore, extend_select, output_format,
          output_file, statistics, show_fixes, add_noqa, exit_zero, config, verify, jobs, no_cache, cache_dir) -> None:
    """Lint PATHS (files or directories; default: the current directory)."""
    from trainlint.report import text as text_report

    paths = list(paths) or [Path(".")]
    color = False if os.environ.get("NO_COLOR") else None  # None: only on a terminal
    if verify and not (fix or diff):
        raise click.UsageError("--verify decides which fixes to apply: use it with --fix or --diff")
    if add_noqa and (fix or diff):
        raise click.UsageError("--add-noqa suppresses what remains: run --fix first, then --add-noqa")
    try:
        settings = resolve(config, paths)
        verify_settings = _verify_settings(settings, "auto") if verify else None
        runner = Runner(
            settings,
            Options(
                select=_codes(select),
                ignore=_codes(ignore) or [],
                extend_select=_codes(extend_select) or [],
                fix=fix,
                unsafe_fixes=unsafe_fixes,
                diff=diff,
                want_edits=output_format != "text",
                verify=verify,
                verify_settings=verify_settings,
                jobs=jobs or None,  # 0 = all cores too
                cache=not no_cache,
                cache_dir=cache_dir,
            ),
        )
    except (ConfigError, SelectorError) as exc:
        click.echo(f"trainlint: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)

    run = runner.run(paths)
    if add_noqa:
        _add_noqa(run)
    if diff:
        for outcome in run.outcomes:
            if outcome.diff:
                click.echo(outcome.diff, nl=False)
        changed = [o for o in run.outcomes if o.diff]
        click.echo(f"Would fix {len(changed)} file(s).", err=True)
        errors = any(d.is_error for d in run.diagnostics)
        sys.exit(EXIT_ERROR if errors else EXIT_DIAGNOSTICS if changed else EXIT_CLEAN)
    if statistics:
        rendered = text_report.statistics(run)
    else:
        rendered = FORMATS[output_format](run, fix)
    if show_fixes:
        if output_format in ("text", "concise") or output_file is not None:
            rendered += text_report.fixes(run)
        else:
            click.echo(text_report.fixes(run), err=True, nl=False, color=color)
    if output_file is not None:
        try:
            output_file.write_text(click.unstyle(rendered), encoding="utf-8")
        except OSError as exc:
            click.echo(f"trainlint: error: {output_file}: cannot write the report: {exc.strerror}", err=True)
            sys.exit(EXIT_ERROR)
    else:
        click.echo(rendered, nl=False, color=color)
    remaining = run.diagnostics
    if any(d.is_error for d in remaining):
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_DIAGNOSTICS if remaining and not exit_zero else EXIT_CLEAN)


def _add_noqa(run) -> None:
    """Suppress every remaining diagnostic in its file; they no longer count afterwards."""
    from trainlint.engine import SourceError, decode
    from trainlint.runner import write_atomically
    from trainlint.suppress import add_noqa

    added = 0
    for outcome in run.outcomes:
        wanted = [d for d in outcome.diagnostics if not d.is_error]
        if not wanted:
            continue
        path = Path(outcome.path)
        if path.suffix == ".ipynb":
            click.echo(f"trainlint: {outcome.path}: --add-noqa does not edit notebooks", err=True)
            continue
        try:
            data = path.read_bytes()
            source = decode(data)
        except (OSError, SourceError) as exc:
            click.echo(f"trainlint: error: {outcome.path}: cannot add noqa comments: {exc}", err=True)
            continue
        text, count = add_noqa(source.text, wanted)
        if not count:
            continue
        problem = write_atomically(path, data, text.encode(source.encoding))
        if problem:
            outcome.diagnostics.append(internal(outcome.path, problem))
            continue
        added += count
        done = {(d.row, d.code) for d in wanted}
        outcome.diagnostics = [d for d in outcome.diagnostics if (d.row, d.code) not in done]
    click.echo(f"Added {added} noqa directive{'' if added == 1 else 's'}.", err=True)


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
    pages = [page(r) for r in rules]
    click.echo("\n".join(pages), nl=False)


def _verify_settings(settings, device: str, timeout: float | None = None):
    """Harness settings from [tool.trainlint.verify] and the command line; needs torch."""
    from trainlint.harness.verify import Settings as VerifySettings

    try:
        import torch
    except ImportError:
        raise ConfigError(
            "verification runs code with torch, which is not installed: "
            "pip install 'trainlint[verify]'"
        ) from None
    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise ConfigError("--device cuda: no CUDA device is available")
    devices = {"cpu": ["cpu"], "cuda": ["cuda"], "auto": ["cpu", "cuda"] if has_cuda else ["cpu"]}
    table = dict(settings.verify)
    cfg_timeout = table.pop("timeout", None)
    memory = table.pop("memory-mb", None)
    targets = table  # validated by config.load: one table per scheduler or loss class
    result = VerifySettings(devices=devices[device], targets=targets, project_root=settings.root)
    if timeout or cfg_timeout:
        result.timeout = float(timeout or cfg_timeout)
    if memory:
        result.memory_mb = int(memory)
    return result


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where loss probes run; auto = CPU, and CUDA too when present.")
@click.option("--output-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--plot", "plot_dir", type=click.Path(path_type=Path),
              help="Write one PNG per scheduler (original vs fixed LR) into this directory.")
@click.option("--timeout", type=float, help="Seconds each probe may run (default 60).")
@click.option("--select", help="Comma-separated rule codes or prefixes whose fixes to verify.")
@click.option("--ignore", help="Comma-separated rule codes or prefixes to leave out.")
@click.option("--config", type=click.Path(path_type=Path), help="Read settings from this TOML file.")
@click.option("--explain", is_flag=True,
              help="Print, per verdict, a self-contained Python snippet that reruns its probe.")
def verify(paths, device, output_format, plot_dir, timeout, select, ignore, config, explain) -> None:
    """Run each proposed fix to schedulers and losses in PATHS and report whether it is confirmed.

    This EXECUTES the classes it probes (in a subprocess with a timeout and a memory cap),
    never the module's top level.
    """
    from trainlint.harness import report
    from trainlint.harness.verify import verify_files

    paths = list(paths) or [Path(".")]
    try:
        settings = resolve(config, paths)
        vsettings = _verify_settings(settings, device, timeout)
        runner = Runner(settings, Options(select=_codes(select), ignore=_codes(ignore) or []))
    except (ConfigError, SelectorError) as exc:
        click.echo(f"trainlint: error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    from trainlint.discover import Discovery
    from trainlint.runner import display_path

    discovery = Discovery(settings.root, settings.exclude)
    files = discovery.files(paths)
    if discovery.missing:
        click.echo(f"trainlint: error: {discovery.missing[0]}: no such file or directory", err=True)
        sys.exit(EXIT_ERROR)
    progress = (lambda msg: click.echo(f"\r\033[K{msg}", err=True, nl=False)) if sys.stderr.isatty() else (lambda msg: None)
    inputs = []
    for path in files:
        try:
            inputs.append((display_path(path), path.read_bytes(), runner.rules_for(path)))
        except OSError as exc:
            click.echo(f"trainlint: error: {path}: cannot read: {exc.strerror}", err=True)
            sys.exit(EXIT_ERROR)
    verdicts = verify_files(inputs, vsettings, progress)
    if sys.stderr.isatty():
        click.echo("\r\033[K", err=True, nl=False)
    click.echo(report.as_json(verdicts) if output_format == "json" else report.text(verdicts, explain), nl=False)
    if plot_dir is not None:
        try:
            written = report.plot(verdicts, plot_dir)
        except ImportError:
            click.echo("trainlint: error: --plot needs matplotlib: pip install matplotlib", err=True)
            sys.exit(EXIT_ERROR)
        for p in written:
            click.echo(f"wrote {p}", err=True)
    sys.exit(EXIT_DIAGNOSTICS if any(v.verdict == "refuted" for v in verdicts) else EXIT_CLEAN)


@main.command()
def server() -> None:
    """Run the language server over stdio (for editors; needs `pip install 'trainlint[server]'`)."""
    try:
        from trainlint.server.app import serve
    except ImportError as exc:
        if exc.name not in ("pygls", "lsprotocol"):
            raise
        click.echo("trainlint: error: the server needs pygls: pip install 'trainlint[server]'", err=True)
        sys.exit(EXIT_ERROR)
    serve()
