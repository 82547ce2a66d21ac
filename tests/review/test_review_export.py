"""Review batches: selection strategies, determinism, Label Studio tasks and config, CSV sheets."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline.cli._app import app
from pipeline.errors import ConfigError, InputFormatError
from pipeline.resources import resource
from pipeline.io.run_folder import RunFolder
from pipeline.records import TurnRecord
from pipeline.review.batch import CSV_FIELDS, build_items, export_batch, select_items

MODEL = "toy-model@1.0.0"
SPEAKER_IDS = {"client": "C", "therapist": "T", "other": "I"}


def rec(sid, turn, speaker, text, rupture=None, markers=(), repair=None, strategies=(), unc=0.2, start=None):
    """A turn record shaped like pipeline.coding.apply.turn_records."""
    return {"session_id": sid, "turn": turn, "source_turns": [str(turn + 1)], "source_lines": [turn + 2],
            "speaker": speaker, "speaker_id": SPEAKER_IDS[speaker], "start": start,
            "end": None if start is None else start + 5.0, "text": text, "clean_text": text, "nonverbal": [],
            "rupture": rupture,
            "rupture_scores": None if rupture is None else {"none": 0.3, "withdrawal": 0.5, "confrontation": 0.2},
            "markers": [{"code": m, "score": 0.8} for m in markers], "repair": repair,
            "repair_score": None if repair is None else 0.7,
            "strategies": [{"code": s, "score": 0.6} for s in strategies], "uncertainty": unc, "model": MODEL}


RECORDS = [
    rec("s1", 0, "therapist", "How was the week for you?", repair="none", unc=0.1),
    rec("s1", 1, "client", "Fine. <b>Nothing</b> to say.", rupture="withdrawal",
        markers=["withdrawal.minimal_response"], unc=0.6),
    rec("s1", 2, "therapist", "It sounds hard to talk about today.", repair="repair",
        strategies=["repair.validate_defense"], unc=0.5),
    rec("s1", 3, "other", "[the interpreter repeats the question]", unc=None),
    rec("s1", 4, "client", "=HYPERLINK(\"x\") This is pointless.", rupture="confrontation",
        markers=["confrontation.complaint_progress"], unc=0.6),
    rec("s2", 0, "therapist", "Welcome back.", repair="none", unc=0.05),
    rec("s2", 1, "client", "+Thanks, glad to be here.", rupture="none", unc=0.6),
    rec("s2", 2, "therapist", "-What would you like to start with?", repair="none", unc=None),
    rec("s2", 3, "client", "@home things, mostly.", rupture="none", unc=0.3),
]
TURNS = [TurnRecord.from_dict(r) for r in RECORDS]


def write_run(folder: Path, records=RECORDS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "turns.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return folder


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return write_run(tmp_path / "run")


def ids(items):
    return [item.item_id for item in items]


def test_review_export_uncertainty_most_uncertain_first_with_tie_breaks():
    items = build_items(TURNS)
    picked = select_items(items, strategy="uncertainty")
    # 0.6 three times: session order, then turn; None last
    assert ids(picked) == ["s1:1", "s1:4", "s2:1", "s1:2", "s2:3", "s1:0", "s2:0", "s2:2"]
    assert ids(select_items(items, n=2, strategy="uncertainty")) == ["s1:1", "s1:4"]


def test_review_export_only_client_and_therapist_turns_in_session_order():
    picked = select_items(build_items(TURNS), strategy="all")
    assert ids(picked) == ["s1:0", "s1:1", "s1:2", "s1:4", "s2:0", "s2:1", "s2:2", "s2:3"]
    assert all(item.speaker in ("client", "therapist") for item in picked)


def test_review_export_stratified_round_robin_is_seeded():
    items = build_items(TURNS)
    first = select_items(items, n=4, strategy="stratified", seed=7)
    # strata (sorted): repair:none, repair:repair, rupture:confrontation, rupture:none, rupture:withdrawal
    codes = [(i.model_codes.get("rupture") or i.model_codes.get("repair")) for i in first]
    assert codes == [("none",), ("repair",), ("confrontation",), ("none",)]
    assert ids(first) == ids(select_items(items, n=4, strategy="stratified", seed=7))
    everything = select_items(items, strategy="stratified", seed=7)
    assert sorted(ids(everything)) == sorted(ids(items))
    orders = {tuple(ids(select_items(items, strategy="stratified", seed=s))) for s in range(8)}
    assert len(orders) > 1  # the seed matters


def test_review_export_context_holds_only_preceding_turns():
    items = {i.item_id: i for i in build_items(TURNS, context=2)}
    assert items["s1:4"].context == (("T", "It sounds hard to talk about today."),
                                     ("I", "[the interpreter repeats the question]"))
    assert items["s1:0"].context == ()
    assert items["s2:0"].context == ()  # never across sessions
    assert all(len(i.context) == 0 for i in build_items(TURNS, context=0))


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "random"}, r"unknown --strategy 'random'"),
    ({"n": 0}, r"--n must be at least 1"),
])
def test_review_export_bad_selection_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        select_items(build_items(TURNS), **kwargs)


def test_review_export_bad_run_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"run folder has no turns.jsonl"):
        RunFolder(tmp_path).turns()
    (tmp_path / "turns.jsonl").write_text('{"session_id": "s1", "turn": 0, "speaker": "client"}\nnot json\n')
    with pytest.raises(InputFormatError, match=r"turns.jsonl:2: not a JSON line"):
        RunFolder(tmp_path).turns()
    with pytest.raises(ConfigError, match=r"--context must be 0 or more"):
        build_items(TURNS, context=-1)


def test_review_export_label_studio_tasks_carry_predictions(run_dir, tmp_path):
    items, paths = export_batch(run_dir, "label-studio", tmp_path / "batch.json", strategy="all", context=4)
    assert paths == [tmp_path / "batch.json", tmp_path / "batch.config.xml"]
    tasks = {t["data"]["item_id"]: t for t in json.loads(paths[0].read_text(encoding="utf-8"))}
    client = tasks["s1:1"]
    assert client["data"] == {
        "item_id": "s1:1", "session_id": "s1", "turn": 1, "speaker": "client", "speaker_id": "C",
        "text": "Fine. <b>Nothing</b> to say.", "context": [{"speaker_id": "T", "text": "How was the week for you?"}],
        "context_html": "<p><b>T</b>: How was the week for you?</p>",
        "turn_label": "Turn 1 of session s1: C (client)"}
    prediction = client["predictions"][0]
    assert prediction["model_version"] == MODEL and prediction["score"] == pytest.approx(0.4)
    results = {r["from_name"]: r for r in prediction["result"]}
    assert set(results) == {"speaker", "rupture", "markers"}
    assert results["markers"] == {"from_name": "markers", "to_name": "text", "type": "choices",
                                  "value": {"choices": ["withdrawal.minimal_response"]}}
    therapist = {r["from_name"]: r["value"]["choices"] for r in tasks["s1:2"]["predictions"][0]["result"]}
    assert therapist == {"speaker": ["therapist"], "repair": ["repair"], "strategies": ["repair.validate_defense"]}
    assert "&lt;b&gt;Nothing&lt;/b&gt;" in tasks["s1:2"]["data"]["context_html"]  # escaped
    assert tasks["s2:2"]["predictions"][0]["score"] is None  # no uncertainty recorded


def test_review_export_config_xml_is_valid_and_lists_every_code(run_dir, tmp_path):
    export_batch(run_dir, "label-studio", tmp_path / "batch.json")
    root = ET.fromstring((tmp_path / "batch.config.xml").read_text(encoding="utf-8"))
    raw = yaml.safe_load(resource("annotation_guides", "rupture_v1.labels.yaml").read_text(encoding="utf-8"))
    groups = {c.get("name"): c for c in root.iter("Choices")}
    for layer, spec in raw["layers"].items():
        values = [c.get("value") for c in groups[layer].iter("Choice")]
        assert values == [c["code"] for c in spec["codes"]], layer
        hints = [c.get("hint") for c in groups[layer].iter("Choice")]
        assert all(h.startswith(c["display"]) for h, c in zip(hints, spec["codes"]))
        assert groups[layer].get("choice") == ("multiple" if spec["kind"] == "multi" else "single-radio")
    assert groups["markers"].get("visibleWhen") == "choice-selected"
    assert groups["markers"].get("whenTagName") == "rupture"
    assert groups["markers"].get("whenChoiceValue") == "withdrawal,confrontation"
    assert groups["strategies"].get("whenChoiceValue") == "repair"
    blocks = {v.get("whenChoiceValue"): v for v in root.iter("View") if v.get("whenTagName") == "speaker"}
    assert {c.get("name") for c in blocks["client"].iter("Choices")} == {"rupture", "markers"}
    assert {c.get("name") for c in blocks["therapist"].iter("Choices")} == {"repair", "strategies"}
    assert [t.get("name") for t in root.iter("TextArea")] == ["note"]
    order = [el.get("name") for el in root.iter() if el.get("name") in ("context", "text")]
    assert order == ["context", "text"]  # the context stands above the turn being coded


def test_review_export_csv_sheet_and_codes_sheet(run_dir, tmp_path):
    items, paths = export_batch(run_dir, "csv", tmp_path / "batch.csv", n=3)
    assert paths == [tmp_path / "batch.csv", tmp_path / "batch.codes.csv"]
    with open(paths[0], newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == CSV_FIELDS
    assert [r["item_id"] for r in rows] == ["s1:1", "s1:4", "s2:1"]
    assert all(r[c] == "" for r in rows for c in ("rupture", "markers", "repair", "strategies", "note"))
    first = rows[0]
    assert (first["model_rupture"], first["model_markers"], first["model_uncertainty"]) == (
        "withdrawal", "withdrawal.minimal_response", "0.6")
    assert rows[1]["context"].splitlines()[-1] == "I: [the interpreter repeats the question]"
    raw = yaml.safe_load(resource("annotation_guides", "rupture_v1.labels.yaml").read_text(encoding="utf-8"))
    with open(paths[1], newline="", encoding="utf-8") as fh:
        sheet = {(r["layer"], r["code"]): r for r in csv.DictReader(fh)}
    expected = {(layer, c["code"]) for layer, spec in raw["layers"].items() for c in spec["codes"]}
    assert set(sheet) == expected
    assert sheet[("markers", "withdrawal.denial")]["display"] == "Denial"


def test_review_export_csv_injection_neutralised(run_dir, tmp_path):
    export_batch(run_dir, "csv", tmp_path / "batch.csv", strategy="all")
    with open(tmp_path / "batch.csv", newline="", encoding="utf-8") as fh:
        rows = {r["item_id"]: r for r in csv.DictReader(fh)}
    assert rows["s1:4"]["text"] == "'=HYPERLINK(\"x\") This is pointless."
    assert rows["s2:1"]["text"].startswith("'+")
    assert rows["s2:2"]["text"].startswith("'-")
    assert rows["s2:3"]["text"].startswith("'@")
    formula = ("=", "+", "-", "@", "\t", "\r")
    assert not any(cell.startswith(formula) for r in rows.values() for cell in r.values())


@pytest.mark.parametrize("to, name", [("csv", "b.csv"), ("label-studio", "b.json")])
def test_review_export_is_deterministic(run_dir, tmp_path, to, name):
    first = [p.read_bytes() for p in export_batch(run_dir, to, tmp_path / "a" / name, strategy="stratified", seed=3)[1]]
    second = [p.read_bytes() for p in export_batch(run_dir, to, tmp_path / "b" / name, strategy="stratified", seed=3)[1]]
    assert first == second


def test_review_export_refuses_to_overwrite_the_run(run_dir):
    with pytest.raises(ConfigError, match=r"overwrite the run's turns.jsonl"):
        export_batch(run_dir, "csv", run_dir / "turns.jsonl")


def test_review_export_cli(run_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["review", "export", str(run_dir), "--to", "label-studio", "--out",
                                 str(tmp_path / "b.json"), "--n", "4"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "exported 4 turn(s) (3 client, 1 therapist; strategy uncertainty)" in result.output
    assert "labeling config:" in result.output and (tmp_path / "b.config.xml").exists()
    bad = runner.invoke(app, ["review", "export", str(run_dir), "--to", "xlsx", "--out", str(tmp_path / "b.x")])
    assert bad.exit_code == 2
    assert "error: unknown --to 'xlsx'; expected label-studio, csv" in bad.output
    assert "Traceback" not in bad.output


def test_review_export_whole_sessions_drawn_at_random(run_dir, tmp_path):
    """--sessions: every turn of k sessions drawn with --seed (for `adapt`), not turns near the threshold."""
    from pipeline.review.batch import sample_sessions

    items, _ = export_batch(run_dir, "csv", tmp_path / "one.csv", strategy="all", sessions=1, seed=0)
    [session] = {item.session_id for item in items}
    everything, _ = export_batch(run_dir, "csv", tmp_path / "all.csv", strategy="all")
    assert [i.item_id for i in items] == [i.item_id for i in everything if i.session_id == session]
    drawn = {s for seed in range(20) for s in {i.session_id for i in sample_sessions(everything, 1, seed)}}
    assert drawn == {"s1", "s2"}  # the seed decides which session
    assert sample_sessions(everything, 5) == everything  # more than there are: all of them
    with pytest.raises(ConfigError, match="--sessions must be at least 1"):
        sample_sessions(everything, 0)
    result = CliRunner().invoke(app, ["review", "export", str(run_dir), "--to", "csv", "--out", str(tmp_path / "c.csv"),
                                      "--sessions", "1", "--strategy", "all"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"exported {len(items)} turn(s) of 1 session(s) drawn at random" in result.output
