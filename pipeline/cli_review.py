"""CLI commands for human review: ``review export``, ``review import`` and ``agreement``.

Thin wrappers over :mod:`pipeline.review`, :mod:`pipeline.review_import` and
:mod:`pipeline.agreement`; every user mistake ends in a clean message and exit status 2.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .cli import app, console, user_errors

review_app = typer.Typer(help="Review batches: export turns for annotators, import their codes.",
                         no_args_is_help=True, add_completion=False)
app.add_typer(review_app, name="review")

RunOpt = Annotated[Optional[Path], typer.Option("--run", help="The run folder (turns.jsonl) the codes belong to.")]


@review_app.command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `rupture-coder code` (reads turns.jsonl).")],
    to: Annotated[str, typer.Option("--to", help="label-studio (tasks JSON + config XML) or csv (review sheet + codes sheet).")],
    out: Annotated[Path, typer.Option("--out", help="Output file (.json for Label Studio, .csv for the sheet).")],
    n: Annotated[Optional[int], typer.Option("--n", help="Number of turns (default: all).")] = None,
    strategy: Annotated[str, typer.Option(help="uncertainty (most uncertain first), stratified (round-robin over predicted codes) or all (session order).")] = "uncertainty",
    context: Annotated[int, typer.Option(help="Preceding turns shown as context.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed for --strategy stratified.")] = 0,
) -> None:
    """Export a review batch of coded turns with the model's codes as pre-annotations."""
    from .review import export_batch

    with user_errors():
        items, paths = export_batch(run_dir, to, out, n, strategy, context, seed)
    roles = Counter(item.speaker for item in items)
    console.print(f"exported {len(items)} turn(s) ({', '.join(f'{v} {k}' for k, v in sorted(roles.items()))}; "
                  f"strategy {strategy}) to {escape(str(paths[0]))}", highlight=False)
    what = "labeling config" if to == "label-studio" else "codes sheet"
    console.print(f"{what}: {escape(str(paths[1]))}", highlight=False)


@review_app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="Filled review sheets (.csv) and Label Studio JSON exports (.json).")],
    out: Annotated[Path, typer.Option("--out", help="Human layer file (JSON lines); extended if it exists.")],
    annotator: Annotated[Optional[str], typer.Option("--annotator", help="Coder id (needed for CSV; for a Label Studio file coded by one person it replaces ls-<user id>).")] = None,
    run_dir: RunOpt = None,
) -> None:
    """Validate reviewed codes and write them as a human layer (human:<coder>)."""
    from .review_import import import_files, write_human_layer

    with user_errors():
        result = import_files(files, annotator, run_dir)
        counts = write_human_layer(out, result, protect=files)
    table = Table(title="Imported codings")
    for col in ("source", "turns", "codes"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for source, entry in result.by_source().items():
        table.add_row(escape(source), str(entry["turns"]), str(entry["codes"]))
    console.print(table)
    console.print(f"wrote {counts['records']} record(s) to {escape(str(out))} ({counts['new_records']} from this import, "
                  f"{counts['replaced_records']} replaced); {counts['notes']} note(s)"
                  + (f" in {escape(counts['notes_path'])}" if counts["notes_path"] else ""), highlight=False)


@app.command("agreement")
def agreement_cmd(
    labels: Annotated[list[Path], typer.Argument(help="Human layer files written by `review import`.")],
    run_dir: RunOpt = None,
    layer: Annotated[str, typer.Option(help="rupture, markers, repair, strategies or all.")] = "all",
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for agreement.json, agreement.md and agreement.html.")] = None,
) -> None:
    """Agreement between annotators and with the model (--run): kappa, alpha, % agreement, ICC."""
    from .agreement import agreement, fmt, informative, write_report

    with user_errors():
        report = agreement(labels, run_dir, layer)
    console.print(f"Agreement ({report['scheme']}); coders: {escape(', '.join(report['coders']))}", highlight=False)
    shown = [r for r in report["rows"] if informative(r)]
    for comparison in dict.fromkeys(r["comparison"] for r in shown):
        table = Table(title=escape(comparison))
        for col in ("layer", "code", "n", "% agree", "kappa", "alpha", "positives"):
            table.add_column(col, justify="right" if col in ("n", "% agree", "kappa", "alpha") else "left", overflow="fold")
        for r in (r for r in shown if r["comparison"] == comparison):
            table.add_row(r["layer"], escape(r["code"]), str(r["n_items"]), fmt(r["percent_agreement"], 1),
                          fmt(r["cohen_kappa"]), fmt(r["krippendorff_alpha"]),
                          " / ".join(str(v) for v in r["positives"].values()))
        console.print(table)
    hidden = len(report["rows"]) - len(shown)
    if hidden:
        console.print(f"{hidden} code row(s) where no coder used the code are not shown (all are in agreement.json)")
    if report["segments"]:
        seg = Table(title="Segment salience: ICC(2,1)")
        for col in ("comparison", "type", "segments", "ICC(2,1)"):
            seg.add_column(col)
        for s in report["segments"]:
            seg.add_row(escape(s["comparison"]), s["type"], str(s["n_segments"]), fmt(s["icc_2_1"]))
        console.print(seg)
    else:
        console.print(f"segment ICC: {report['segment_note']}")
    if out:
        paths = write_report(report, out)
        console.print(f"wrote {', '.join(escape(str(p)) for p in paths)}", highlight=False)
