"""The ``rupture-coder`` command line (typer + rich).

Every user mistake ends in a one-paragraph message and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.version import __version__
from pipeline.run.processes import skip_final_collection
from pipeline.errors import ConfigError, RuptureCoderError
from pipeline.io.readers import FORMATS, ReadOptions, load_paths, require_inputs
from pipeline.io.readers._build import LABEL_LAYERS
from pipeline.io.readers.tabular import CANONICAL
from pipeline.io.readers.roles import parse_roles
from pipeline.io.speakers import read_speaker_corrections
from pipeline.preprocess.segment import SegmentConfig, segment_session

app = typer.Typer(
    name="rupture-coder",
    help="Code therapeutic-alliance ruptures and repair attempts in psychotherapy transcripts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

FormatOpt = Annotated[Optional[str], typer.Option("--format", "-f", help=f"Input format (default: auto-detect). One of: {', '.join(FORMATS)}.")]
RolesOpt = Annotated[Optional[str], typer.Option("--roles", help='Speaker label to role mapping, e.g. "S=client,C=therapist".')]
COLUMN_FIELDS = CANONICAL + LABEL_LAYERS
SpeakerFixOpt = Annotated[Optional[list[Path]], typer.Option("--speaker-corrections", help="Speaker-correction table(s) (CSV: dataset, session_id, turn_id, speaker_source, speaker_true, kind, note) applied while reading: swapped labels fixed, turns with both speakers flagged. See docs/formats-and-outputs.md.")]
ColumnsOpt = Annotated[Optional[str], typer.Option("--columns", help='Map canonical fields to your CSV/JSONL column names, e.g. "text=utterance,speaker=who".')]


def parse_columns(spec: str | None) -> dict[str, str]:
    if not spec:
        return {}
    out = {}
    for item in spec.split(","):
        name, sep, column = item.partition("=")
        if not sep or not name.strip() or not column.strip() or name.strip() not in COLUMN_FIELDS:
            raise ConfigError(f"bad --columns item {item.strip()!r}",
                              expected=f"FIELD=COLUMN pairs, FIELD one of {', '.join(COLUMN_FIELDS)}",
                              fix='e.g. --columns "text=utterance,speaker=who"')
        out[name.strip()] = column.strip()
    return out


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user's mistake into a one-line message and exit status 2 (no traceback)."""
    try:
        yield
    except RuptureCoderError as err:
        _print_error(err)
        raise typer.Exit(2) from None
    except OSError as err:  # an unwritable or missing output location, a full disk
        if isinstance(err, ConnectionError):
            raise
        _print_error(RuptureCoderError("could not read or write a file", path=err.filename,
                                       found=err.strerror or type(err).__name__,
                                       fix="check the path, its permissions and the free disk space"))
        raise typer.Exit(2) from None


def _print_error(err: RuptureCoderError) -> None:
    err_console.print(f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False, soft_wrap=True)


def read_options(fmt: str | None, roles: str | None, columns: str | None,
                 speaker_corrections: list[Path] | None = None) -> ReadOptions:
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}", expected=", ".join(FORMATS),
                          fix="leave --format out to auto-detect")
    fixes = read_speaker_corrections(speaker_corrections) if speaker_corrections else None
    return ReadOptions(fmt=fmt, roles=parse_roles(roles), columns=parse_columns(columns), speaker_corrections=fixes)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress at INFO level.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if version:
        console.print(f"rupture-coder {__version__}")
        raise typer.Exit()


@app.command()
def inspect(
    paths: Annotated[list[Path], typer.Argument(help="Transcript files or directories.")],
    fmt: FormatOpt = None,
    roles: RolesOpt = None,
    columns: ColumnsOpt = None,
    speaker_corrections: SpeakerFixOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show sessions, turns per speaker role, duration, detected format and warnings."""
    with user_errors():
        options = read_options(fmt, roles, columns, speaker_corrections)
        require_inputs(paths)
        results = load_paths(paths, options)
    rows, problems = [], []
    for result in results:
        problems.extend(p for p in result.problems)
        for session in result.sessions:
            seg = segment_session(session, SegmentConfig())
            rows.append({
                "file": result.path, "format": result.format, "session_id": session.session_id,
                "input_turns": len(session.turns), "turns": len(seg.turns),
                **{f"{k}_turns": v for k, v in seg.role_counts().items()},
                "duration_s": seg.duration_s,
                "warnings": sum(1 for p in result.problems
                                if p.level == "warning" and p.session_id in (None, session.session_id)),
            })
    failed = [r.path for r in results if r.failed]
    if as_json:
        payload = {"sessions": rows, "problems": [p.__dict__ for p in problems], "failed_files": failed}
        console.print_json(json.dumps(payload))
    else:
        _print_inspect(rows, problems, failed)
    if failed:
        raise typer.Exit(1)


def _print_inspect(rows, problems, failed) -> None:
    table = Table(title="Sessions", show_lines=False)
    for col in ("file", "format", "session", "turns", "therapist", "client", "other", "duration", "warnings"):
        named = col in ("file", "format", "session")
        # names fold onto more lines rather than being cut off in a narrow terminal
        table.add_column(col, justify="left" if named else "right", overflow="fold" if named else "ellipsis")
    for r in rows:
        dur = "" if r["duration_s"] is None else f"{r['duration_s'] / 60:.1f} min"
        table.add_row(Path(r["file"]).name, r["format"], r["session_id"], str(r["turns"]),
                      str(r["therapist_turns"]), str(r["client_turns"]), str(r["other_turns"]),
                      dur, str(r["warnings"]))
    console.print(table)
    console.print(f"{len(rows)} session(s), {sum(r['turns'] for r in rows)} turn(s); "
                  f"{sum(p.level == 'warning' for p in problems)} warning(s), {len(failed)} failed file(s)")
    for p in problems[:50]:
        style = "red" if p.level == "error" else "yellow"
        console.print(f"[{style}]{p.level}[/{style}] {escape(p.render())}", markup=True, highlight=False)
    if len(problems) > 50:
        console.print(f"... and {len(problems) - 50} more (use --json for all)")


@app.command()
def codes(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the codes of the label scheme (from the label file)."""
    from pipeline.codebook import load_codebook

    book = load_codebook()
    if as_json:
        console.print_json(json.dumps({
            "scheme": book.scheme, "version": book.version,
            "layers": {name: {"applies_to": layer.applies_to, "kind": layer.kind,
                              "codes": list(layer.values)} for name, layer in book.layers.items()},
        }))
        return
    table = Table(title=f"{book.scheme} {book.version}")
    for col in ("layer", "applies to", "code", "display"):
        table.add_column(col)
    for name, layer in book.layers.items():
        for code in layer.codes:
            table.add_row(name, layer.applies_to, code.code, code.display)
    console.print(table)



def main() -> None:
    """Console entry point. The app runs in standalone mode, so usage errors and exit codes are
    handled by click; commands turn user errors into clean messages themselves (user_errors),
    and this catches any that escape them."""
    try:
        app()
    except RuptureCoderError as err:
        _print_error(err)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    finally:  # the command is done: its exit need not walk every object the model loaded
        skip_final_collection()
