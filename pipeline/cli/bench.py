"""CLI command ``bench``: the benchmark of :mod:`pipeline.run.bench` from one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.cli._app import app, console, user_errors
from pipeline.errors import ConfigError

DEFAULT_INPUTS = Path("..") / "shared" / "data"


def _check_code_options(options: str) -> None:
    """A ``--variant`` must be options that ``rupture-coder code`` accepts (checked before
    minutes of measuring, not after)."""
    import shlex

    from typer.exceptions import TyperException

    code = typer.main.get_command(app).commands["code"]
    try:
        with code.context_class(code, info_name="code") as ctx:
            code.parse_args(ctx, ["transcript.csv", "--out", "out", *shlex.split(options)])
    except (TyperException, ValueError) as err:
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        raise ConfigError("--variant is not a set of `rupture-coder code` options", found=f"{options!r} ({message})",
                          fix="see `rupture-coder code --help`, e.g. --variant '--workers 2'") from None


@app.command()
def bench(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="Transcripts to measure on (default: ../shared/data).")] = None,
    sizes: Annotated[str, typer.Option(help="Corpus sizes for the scaling runs, comma-separated (e.g. 100,1000,10000; empty: none).")] = "100,1000",
    repeat: Annotated[int, typer.Option(help="Runs per measurement; the best is kept.")] = 2,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model bundle (default: the shipped model).")] = None,
    results: Annotated[Path, typer.Option(help="Folder for the JSON and Markdown results.")] = Path("benchmarks/results"),
    no_cli: Annotated[bool, typer.Option("--no-cli", help="Only the in-process measurements (no `code` processes, no latency, no scaling).")] = False,
    variant: Annotated[Optional[list[str]], typer.Option(help="Extra `code` options to time at 1,000 sessions (else the largest size), repeatable, e.g. --variant '--workers 2' --variant '--runner dask --workers 2'.")] = None,
) -> None:
    """Measure throughput (as a ratio to the raw encoder), one-session latency and scaling."""
    with user_errors():
        paths = inputs or [DEFAULT_INPUTS]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise ConfigError("benchmark inputs not found", path=missing[0],
                              fix="name transcript files or folders (the default is ../shared/data)")
        try:
            numbers = tuple(int(x) for x in sizes.split(",") if x.strip())
        except ValueError:
            raise ConfigError("--sizes must be comma-separated whole numbers", found=sizes) from None
        if repeat < 1 or any(n < 1 for n in numbers):
            raise ConfigError("--repeat and --sizes must be at least 1")
        for options in variant or ():
            _check_code_options(options)
        from pipeline.run.bench import markdown, run_bench

        console.print("measuring (minutes; keep the machine otherwise idle)...")
        result, path = run_bench([str(p) for p in paths], results, model, repeat, numbers, cli=not no_cli,
                                 variants=tuple(variant or ()))
    console.print(markdown(result), highlight=False)
    console.print(f"written to {path} and {path.with_suffix('.md')}")
