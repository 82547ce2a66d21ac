"""Per-session artifacts (timelines, plots, report pages) and the corpus-level outputs of a run.

Per-session files are written when a session is coded; ``finish_run`` streams the stored
session states, in input order, into turns.jsonl/.csv/.parquet, the Hugging Face dataset,
sessions.jsonl/.csv, report/index.html and run.json.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import platform
from pathlib import Path

from pipeline.version import __version__
from pipeline.run import corpus_index, uptodate
from pipeline.errors import Problem
from pipeline.io.files import (AtomicFile, safe_filename, TIMELINE_CSV_FIELDS, TURN_CSV_FIELDS, atomic_write, dumps, remove_temp_files,
                      safe_cell, session_csv_row, timeline_csv_rows, turn_csv_row, write_csv,
                      write_json)
from dataclasses import replace

from pipeline.run.steps import (STATE_DIR, Chunk, RunConfig, RunPlan, failure, read_state, state_path,
                  write_session_state)
from pipeline.io.turn_table import TurnTableWriter

log = logging.getLogger(__name__)
SESSION_FIELDS = ("session_id", "source_file", "format", "turns", "client_turns", "therapist_turns",
                  "other_turns", "duration_s", "withdrawal_turns", "confrontation_turns", "repair_attempts",
                  "episodes", "resolved_episodes", "rating_withdrawal", "rating_confrontation",
                  "rating_resolution", "markers", "strategies", "model")


def write_session_artifacts(out: Path, result: dict, png: bool = True) -> None:
    """timelines/<id>.json, .csv, .png (unless ``png`` is off) and report/<id>.html for one coded
    session."""
    from pipeline.report.plots import plot_timeline
    from pipeline.report.html import page_name, render_session_report

    key = result["session"]["session_id"]
    name = safe_filename(key)
    write_json(out / "timelines" / f"{name}.json", result["timeline"])
    write_csv(out / "timelines" / f"{name}.csv", TIMELINE_CSV_FIELDS, timeline_csv_rows(result["timeline"]))
    if png:
        plot_timeline(result["turns"], result["timeline"], out / "timelines" / f"{name}.png")
    else:  # not left over from an earlier run with PNGs
        (out / "timelines" / f"{name}.png").unlink(missing_ok=True)
    html = render_session_report(result["session"], result["turns"], result["timeline"])
    atomic_write(out / "report" / page_name(key), html)  # the name report/index.html links to


def write_chunk(out: Path, chunk: Chunk, png: bool = True) -> Chunk:
    """Write each session's artifacts, then its state (the session's commit point)."""
    return with_write_failures(chunk, write_results(out, chunk.tasks, chunk.results, chunk.findings, png))


def write_results(out: Path, tasks, results, findings, png: bool = True) -> tuple[Problem, ...]:
    """:func:`write_chunk`'s work on plain values (what a writer process is sent); returns the
    sessions that failed."""
    failed = []
    for task, result in zip(tasks, results):
        try:
            write_session_artifacts(out, result, png)
            # the gate's findings travel with the state, so a resumed or skipped session keeps them
            mine = [f for f in findings if f["session_id"] == task.key]
            write_session_state(out, task, {**result, "findings": mine})
        except Exception as err:  # noqa: BLE001 - reported per session, never silently
            failed.append(failure(task, err, "write"))
    return tuple(failed)


def with_write_failures(chunk: Chunk, failed: tuple[Problem, ...]) -> Chunk:
    """The written chunk: its failed sessions moved from its records to its failures."""
    chunk = replace(chunk, failures=chunk.failures + failed)
    return chunk.without({p.session_id for p in failed})


def finish_run(out: Path, plan: RunPlan, config: RunConfig, chunks: list[Chunk]) -> dict:
    """Corpus-level outputs from the stored session states; returns the run summary."""
    from pipeline.report.html import render_index

    out = Path(out)
    uptodate.clear(out)  # written again below once every corpus file is in place
    previous = corpus_index.PreviousOutputs.open(out)  # the rows of sessions unchanged since: copied
    corpus_index.clear(out)  # likewise
    remove_temp_files(out, ("timelines", "report", STATE_DIR))
    failures = [p for c in chunks for p in c.failures]
    this_run = {}  # findings of sessions the gate saw in this run, by session key
    for f in (f for c in chunks for f in c.findings):
        this_run.setdefault(f["session_id"], []).append(f)
    deid_findings = []
    failed_keys = {p.session_id for p in failures if p.session_id}
    jsonl, tcsv = AtomicFile(out / "turns.jsonl", binary=True), AtomicFile(out / "turns.csv", binary=True)
    table = TurnTableWriter(out / "turns.parquet", out / "turns_dataset")  # streamed: constant memory
    index = corpus_index.IndexWriter()
    sessions, session_lines, coded_keys = [], [], []
    buf = io.StringIO(newline="")
    rows = csv.writer(buf, lineterminator="\n")  # one writer for the file (was one a line)
    try:
        rows.writerow(TURN_CSV_FIELDS)
        data = _drain(buf)
        tcsv.write(data)
        index.wrote("turns.csv", data)
        copied = _RowCopier(table, previous)
        for key, fingerprint in plan.order:
            if key in failed_keys:
                deid_findings += this_run.get(key, [])  # e.g. a session --phi fail kept from coding
                continue
            # the state of a session not failed has the plan's fingerprint: it was skipped for
            # having it, or coded in this run and stored with it
            entry = previous.get(key, fingerprint) if previous else None
            if entry is not None:  # the state the previous files were built from: its bytes copied
                findings, line = entry.findings, previous.read("sessions.jsonl", entry.session)
                session = json.loads(line)
                first = copied.count
                turn_lines, csv_rows = previous.read("turns.jsonl", entry.jsonl), previous.read("turns.csv", entry.csv)
                copied.add(entry.rows)
            else:
                state = read_state(out, key)
                if state is None:
                    deid_findings += this_run.get(key, [])
                    continue
                findings, session = state.get("findings", []), state["session"]
                line = (dumps(session) + "\n").encode("utf-8")
                copied.flush()  # the rows copied so far go first
                first = table.count
                for record in state["turns"]:
                    buf.write(dumps(record) + "\n")
                    table.add(record)
                turn_lines = _drain(buf)
                for record in state["turns"]:
                    row = turn_csv_row(record)  # once a record (it was built again for each of its 18 fields)
                    rows.writerow([safe_cell(row.get(f)) for f in TURN_CSV_FIELDS])
                csv_rows = _drain(buf)
            jsonl.write(turn_lines)
            tcsv.write(csv_rows)
            deid_findings += findings  # saved with the session: also when resumed or skipped
            coded_keys.append(key)
            sessions.append(session)
            session_lines.append(line)
            index.entries[key] = corpus_index.Entry(
                fingerprint, index.wrote("turns.jsonl", turn_lines), index.wrote("turns.csv", csv_rows),
                (first, copied.count), index.wrote("sessions.jsonl", line), findings)
        copied.flush()
        if previous:
            previous.close()  # before the swaps below (its files are about to be replaced)
        jsonl.commit()
        tcsv.commit()
        table.close()
    except BaseException:  # e.g. a full disk: no temporary files left, previous files intact
        jsonl.abort()
        tcsv.abort()
        table.abort()
        if previous:
            previous.close()
        raise
    remove_stale_sessions(out, {key for key, _ in plan.order} | failed_keys, set(coded_keys))
    atomic_write(out / "sessions.jsonl", b"".join(session_lines))
    write_csv(out / "sessions.csv", SESSION_FIELDS, [session_csv_row(s) for s in sessions])
    summary = _summary(plan, sessions, table.count, failures)
    summary["coded_this_run"] = sum(len(c.results) for c in chunks)
    summary["failures"] = [p.render() for p in failures]
    run_info = _run_info(plan, config, summary, failures, deid_findings)
    atomic_write(out / "report" / "index.html", render_index(sessions, run_info))
    write_json(out / "run.json", run_info)
    if deid_findings:
        write_json(out / "phi_report.json", {"findings": deid_findings,
                                             "note": "positions only; found values are never stored"})
    else:  # not left over from an earlier run whose transcripts have been fixed since
        (out / "phi_report.json").unlink(missing_ok=True)
    index.write(out)  # lets the next run copy the rows of sessions it finds unchanged
    uptodate.write_marker(out, plan, config, summary, failures)  # lets an unchanged re-run skip everything
    return summary


class _RowCopier:
    """Hands the previous run's rows to the table in contiguous runs of up to a batch (one
    slice for many short sessions instead of one each); ``count`` includes those not handed yet."""

    def __init__(self, table: TurnTableWriter, previous):
        self.table, self.previous, self.span = table, previous, None

    @property
    def count(self) -> int:
        return self.table.count + (self.span[1] - self.span[0] if self.span else 0)

    def add(self, rows: tuple[int, int]) -> None:
        if self.span is not None and self.span[1] == rows[0]:
            self.span = (self.span[0], rows[1])
        else:
            self.flush()
            self.span = rows
        if self.span[1] - self.span[0] >= self.table.batch_rows:
            self.flush()

    def flush(self) -> None:
        if self.span is not None and self.span[1] > self.span[0]:
            self.table.add_rows(self.previous.rows(self.span))
        self.span = None


def _drain(buf: io.StringIO) -> bytes:
    """What was written to ``buf`` since the last drain, as UTF-8; ``buf`` emptied."""
    data = buf.getvalue().encode("utf-8")
    buf.seek(0)
    buf.truncate()
    return data


def remove_stale_sessions(out: Path, keys: set[str], coded: set[str]) -> None:
    """Timelines, report pages and states of sessions that are not in this run's outputs
    (inputs dropped since an earlier run into ``out``, sessions that failed this time)."""
    from pipeline.report.html import page_name

    stale = set(keys)
    for state in (out / STATE_DIR).glob("*.json"):
        try:
            with open(state, encoding="utf-8") as fh:
                stale.add(json.loads(fh.readline())["key"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    for key in sorted(stale - coded):
        name = safe_filename(key)
        for path in (*(out / "timelines" / f"{name}{ext}" for ext in (".json", ".csv", ".png")),
                     out / "report" / page_name(key), state_path(out, key)):  # the state last
            try:
                path.unlink(missing_ok=True)
            except IsADirectoryError:  # a folder of that name is not an output of ours: left alone
                continue


def _summary(plan: RunPlan, sessions: list[dict], n_turns: int, failures: list[Problem]) -> dict:
    return {
        "sessions_total": len(plan.order), "sessions_coded": len(sessions),
        "sessions_skipped_unchanged": plan.skipped, "sessions_failed": len({p.session_id for p in failures}),
        "files_failed": sum(1 for i in plan.inputs if i["failed"]),
        "turns": n_turns,
        "withdrawal_turns": sum(s["withdrawal_turns"] for s in sessions),
        "confrontation_turns": sum(s["confrontation_turns"] for s in sessions),
        "repair_attempts": sum(s["repair_attempts"] for s in sessions),
        "episodes": sum(s["episodes"] for s in sessions),
        "resolved_episodes": sum(s["resolved_episodes"] for s in sessions),
    }


def _run_info(plan, config, summary, failures, deid_findings) -> dict:
    import numpy
    import sklearn

    # what this invocation did (coded, skipped) is no property of the outputs: a re-run that
    # skips every session must leave run.json byte-identical
    counts = {k: v for k, v in summary.items()
              if k not in ("sessions_skipped_unchanged", "coded_this_run", "failures")}
    warnings = [p for p in plan.problems if p.level == "warning"]
    return {
        "rupture_coder": __version__, "python": platform.python_version(),
        "libraries": {"scikit-learn": sklearn.__version__, "numpy": numpy.__version__},
        "inputs": plan.inputs, "model": plan.model,
        "config": {"model": config.model, "format": config.fmt, "roles": dict(config.roles),
                   "columns": dict(config.columns), "phi": config.phi,
                   "merge_same_speaker": config.merge_same_speaker,
                   **({} if config.png else {"png": False}),  # recorded when off (older runs had PNGs)
                   **({"speaker_corrections": list(config.speaker_corrections)} if config.speaker_corrections else {})},
        "counts": counts,
        "warnings": {"count": len(warnings), "items": [p.render() for p in warnings]},
        "failures": [p.render() for p in plan.problems if p.level == "error"] + [p.render() for p in failures],
        "phi": {"mode": config.phi, "findings": len(deid_findings)},
    }
