"""A case across sessions (issue #14): the sessions manifest (validated, clear errors), cases.csv /
cases.jsonl, the rating trend PNG, case pages and the per-therapist summary, from a real run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli._app import app
from pipeline.coding.cases import build_cases
from pipeline.errors import InputFormatError
from pipeline.io.manifest import read_manifest
from pipeline.run import steps as lib

LINES = [("T", "What would you like to focus on today?"), ("C", "I don't know. Whatever you think."),
         ("T", "It sounds hard to choose. Can we stay with that for a moment?"),
         ("C", "This is pointless, we keep going over the same thing."),
         ("T", "You're right to say so. I may have been pushing my agenda.")]
MANIFEST = ("session_id,client_id,therapist_id,session_number,date\n"
            "s-3,c1,t1,3,2026-03-21\ns-1,c1,t1,1,2026-03-07\ns-2,c1,t2,2,2026-03-14\n"
            "s-4,c2,t1,,2026-04-01\nmissing,c2,t1,2,\n")


@pytest.fixture(scope="module")
def run_dir(tiny_bundle, tmp_path_factory, code_with_tasks) -> Path:
    folder = tmp_path_factory.mktemp("cases")
    rows = ["session_id,turn,speaker,text"]
    for s in range(1, 6):
        rows += [f"s-{s},{i + 1},{who},\"{text}\"" for i, (who, text) in enumerate(LINES[: 3 + s % 3])]
    (folder / "in.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = folder / "run"
    code_with_tasks([folder / "in.csv"], lib.RunConfig(out=str(out), model=str(tiny_bundle),
                                                       cache_dir=str(out / ".cache")))
    (folder / "manifest.csv").write_text(MANIFEST, encoding="utf-8")
    return out


def test_cases_from_a_run_write_every_output(run_dir):
    result = CliRunner().invoke(app, ["cases", str(run_dir), "--manifest", str(run_dir.parent / "manifest.csv")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "cases: 2" in result.stdout and "1 coded session(s) in no case" in result.stdout
    assert "1 manifest row(s) naming no coded session" in result.stdout
    cases = [json.loads(line) for line in (run_dir / "cases.jsonl").read_text().splitlines()]
    assert [c["case_id"] for c in cases] == ["c1", "c2"]
    assert [e["session_id"] for e in cases[0]["sessions"]] == ["s-1", "s-2", "s-3"]  # by session number
    assert cases[0]["therapists"] == ["t1", "t2"] and cases[0]["n_sessions"] == 3
    rows = list(csv.DictReader(open(run_dir / "cases.csv", encoding="utf-8")))
    assert [(r["case_id"], r["position"], r["session_id"]) for r in rows] == [
        ("c1", "1", "s-1"), ("c1", "2", "s-2"), ("c1", "3", "s-3"), ("c2", "1", "s-4")]
    png = (run_dir / "cases" / "c1.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    page = (run_dir / "report" / "case-c1.html").read_text()
    assert page.count('<svg class="strip"') == 3 and '<svg class="trend"' in page
    assert 'href="s-1.html"' in page and "http://" not in page.replace("http://www.w3.org", "")
    index = (run_dir / "report" / "cases.html").read_text()
    assert 'href="case-c1.html"' in index and ">t2<" in index  # the per-therapist table
    assert 'href="cases.html"' in (run_dir / "report" / "index.html").read_text()


@pytest.mark.parametrize("text, message", [
    ("session_id,case_id\ns1,c1\n", "lacks columns; expected .*; found session_number or date"),
    ("session_id,therapist_id,date\ns1,t,2026-01-01\n", "lacks columns; expected .*; found case_id or client_id"),
    ("session_id,case_id,date\ns1,c1,14/03/2026\n", ":2: column date is not a date"),
    ("session_id,case_id,session_number\ns1,c1,first\n", ":2: column session_number is not a session number"),
    ("session_id,case_id,session_number\ns1,c1,\n", ":2: neither session_number nor date"),
    ("session_id,case_id,session_number\ns1,c1,1\ns1,c1,2\n", ":3: session listed twice; found also on line 2"),
    ("session_id,case_id,session_number\n,c1,1\n", ":2: column session_id is empty"),
])
def test_manifest_errors_name_file_line_and_column(write_file, text, message):
    path = write_file("m.csv", text)
    with pytest.raises(InputFormatError, match=message) as err:
        read_manifest(path)
    assert "14/03" not in str(err.value) and "first" not in str(err.value)


def test_manifest_error_stops_code_before_any_work(write_file, tmp_path):
    bad = write_file("m.csv", "session_id,case_id\ns1,c1\n")
    data = write_file("in.csv", "speaker,text\nT,Hello.\nC,Hi.\n")
    result = CliRunner().invoke(app, ["code", str(data), "--out", str(tmp_path / "out"), "--manifest", str(bad)])
    assert result.exit_code == 2 and "lacks columns" in result.stderr and not (tmp_path / "out").exists()


def test_build_cases_orders_by_date_without_numbers_and_summarises_therapists(write_file):
    rows = read_manifest(write_file("m.csv", "session_id,case_id,therapist_id,date\n"
                                             "b,c,t1,2026-02-01\na,c,t2,2026-01-01\n"))
    sessions = [{"session_id": "a", "client_turns": 10, "withdrawal_turns": 1, "confrontation_turns": 1,
                 "episodes": 2, "resolved_episodes": 1, "rating_withdrawal": 2, "rating_confrontation": 3,
                 "rating_resolution": 4, "repair_attempts": 1, "turns": 20},
                {"session_id": "b", "client_turns": 0, "episodes": 0, "resolved_episodes": 0, "turns": 2,
                 "rating_withdrawal": 1, "rating_confrontation": 1, "rating_resolution": None}]
    result = build_cases(sessions, rows)
    case = result["cases"][0]
    assert [e["session_id"] for e in case["sessions"]] == ["a", "b"]
    assert case["sessions"][0]["rupture_turns_per_100_client_turns"] == 20.0
    assert case["sessions"][1]["rupture_turns_per_100_client_turns"] is None and case["resolved_share"] == 0.5
    assert case["mean_rating_resolution"] == 4.0
    assert [(t["therapist_id"], t["sessions"]) for t in result["therapists"]] == [("t1", 1), ("t2", 1)]
