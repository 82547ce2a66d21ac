"""CLI commands for human review: ``review export``, ``review import``, ``review round``, ``agreement`` and ``report``.

Thin wrappers over :mod:`pipeline.review.batch`, :mod:`pipeline.review.importing`,
:mod:`pipeline.review.agreement` and the Prefect flow :mod:`flows.review_round`; every user mistake ends
in a clean message and exit status 2.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli._app import app, console, user_errors

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
    seed: Annotated[int, typer.Option(help="Seed for --strategy stratified and --sessions.")] = 0,
    sessions: Annotated[Optional[int], typer.Option("--sessions", help="Only whole sessions: this many drawn at random (with --seed), every turn of each; for `rupture-coder adapt` (use with --strategy all).")] = None,
) -> None:
    """Export a review batch of coded turns with the model's codes as pre-annotations."""
    from pipeline.review.batch import export_batch

    with user_errors():
        items, paths = export_batch(run_dir, to, out, n, strategy, context, seed, sessions)
    roles = Counter(item.speaker for item in items)
    drawn = f" of {len({item.session_id for item in items})} session(s) drawn at random" if sessions else ""
    console.print(f"exported {len(items)} turn(s){drawn} ({', '.join(f'{v} {k}' for k, v in sorted(roles.items()))}; "
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
    from pipeline.review.importing import import_files, write_human_layer

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
    from pipeline.review.agreement import agreement, fmt, informative, write_report

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


@review_app.command("round")
def round_(
    run_dir: Annotated[Path, typer.Argument(help="Run folder the review batch was exported from (turns.jsonl).")],
    corrections: Annotated[list[Path], typer.Option("--corrections", help="Human layer(s) written by `review import`. Repeatable.")],
    model: Annotated[str, typer.Option("--model", "-m", help="The old bundle (path or NAME/VERSION), usually the one that coded the run.")],
    new_model: Annotated[Path, typer.Option("--new-model", help="Bundle folder to write, models/NAME/VERSION (write-once).")],
    out: Annotated[Path, typer.Option("--out", help="Report folder: round.json, round.md, agreement/.")],
    held_out: Annotated[Optional[list[str]], typer.Option("--held-out", help="Corrected session id to hold out for testing (repeatable). Default: a fraction.")] = None,
    fraction: Annotated[float, typer.Option("--held-out-fraction", help="Share of corrected sessions held out, chosen deterministically by session id (without --held-out).")] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of the held-out choice and the bootstrap.")] = 0,
    constructed: Annotated[bool, typer.Option("--constructed", help="Also train on the shipped constructed corpus.")] = False,
    real_data: Annotated[Optional[Path], typer.Option("--real-data", help="Also train on real transcripts joined with --labels.")] = None,
    labels: Annotated[Optional[list[Path]], typer.Option("--labels", help="Label tables for --real-data.")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples of held-out sessions (0: none).")] = 1000,
    cache_dir: Annotated[Path, typer.Option(help="Embedding cache folder.")] = Path(".cache/rupture-coder"),
) -> None:
    """Agreement, retraining on the corrections, and old vs new model on held-out sessions
    (the Prefect flow review_round)."""
    from pipeline.review.rounds import RoundConfig

    config = RoundConfig(str(run_dir), tuple(map(str, corrections)), model, str(new_model), str(out),
                         tuple(held_out or ()), fraction, seed, constructed, str(real_data) if real_data else None,
                         tuple(map(str, labels or ())), str(cache_dir), bootstrap)
    with user_errors():
        result = _run_round(config)
    p = result["comparison"]["primary"]
    table = Table(title=f"Held-out sessions: {p['n_sessions']} ({p['n_turns']} reviewed {p['role']} turns)")
    for col in ("metric", "old", "new", "new - old"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    show = lambda x, fmt=".3f": "n/a" if x is None else format(x, fmt)  # noqa: E731
    for row in result["comparison"]["headline"]:
        table.add_row(row["metric"], show(row["old"]), show(row["new"]), show(row["delta"], "+.3f"))
    console.print(table)
    console.print(f"[bold]{escape(result['verdict'])}[/bold]", highlight=False)
    for caution in result["cautions"]:
        console.print(f"[yellow]caution[/yellow] {escape(caution)}", highlight=False)
    console.print(f"new model: {escape(result['new_model_path'])}; report: {escape(', '.join(result['files']))}",
                  highlight=False)


def _run_round(config) -> dict:
    """Check everything a user can get wrong before Prefect's server starts (seconds, not a
    traceback from inside a task), then run the flow."""
    import os
    from dataclasses import replace

    from pipeline.errors import ConfigError
    from pipeline.review.rounds import check_round, prepare_round

    check_round(config)
    # bad corrections, too few sessions: a clean error now (extra data is read once, in the flow)
    prepare_round(replace(config, constructed=False, real_data=None))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from flows.review_round import run_review_round

    try:
        with console.status("review round: agreement, training, evaluation on held-out sessions..."):
            return run_review_round(config)
    except RuntimeError as err:
        if "Prefect API server" not in str(err):
            raise
        raise ConfigError("could not start Prefect's temporary API server", found=str(err).splitlines()[0],
                          fix="raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or point "
                              "PREFECT_API_URL at a running server (see docs/deployment.md)") from None


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `rupture-coder code`.")],
    human: Annotated[list[Path], typer.Option("--human", help="Human layer (written by `review import`) to show beside the model's codes. Repeatable.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for the pages (default RUN/report-human).")] = None,
) -> None:
    """Render the report with human layers beside the model's codes: disagreements marked,
    per-session agreement, episodes and ratings recomputed from the human codes where they exist."""
    from pipeline.review.side_by_side import write_side_by_side

    with user_errors():
        target = out or run_dir / "report-human"
        counts = write_side_by_side(run_dir, human, target)
    console.print(f"wrote {escape(str(target / 'index.html'))}: {counts.get('sessions_with_human_codes', 0)} "
                  f"session(s) with human codes, {counts.get('turns_compared', 0)} turns compared, "
                  f"{counts.get('turns_disagreeing', 0)} differing from the model", highlight=False)
