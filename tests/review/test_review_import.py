"""Importing reviewed codes: CSV round trips, Label Studio exports, validation, label tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli._app import app
from pipeline.errors import ConfigError, LabelError
from pipeline.io.labels import attach_labels, read_label_table
from pipeline.review.batch import CSV_FIELDS, export_batch
from pipeline.review.importing import (import_files, label_table, read_human_layer, write_human_layer,
                                    write_label_table)
from test_review_export import MODEL, TURNS, rec, write_run  # the shared run fixture data

CLIENT, THERAPIST = "client", "therapist"


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return write_run(tmp_path / "run")


@pytest.fixture
def sheet(run_dir, tmp_path) -> Path:
    """The exported review sheet of every turn of the run."""
    export_batch(run_dir, "csv", tmp_path / "batch.csv", strategy="all")
    return tmp_path / "batch.csv"


def fill(path: Path, edits: dict[str, dict[str, str]], out: Path | None = None, reverse: bool = False) -> Path:
    """Write a copy of a review sheet with some cells changed (rows picked by item_id)."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    for row in rows:
        row.update(edits.get(row["item_id"], {}))
    out = out or path
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows[::-1] if reverse else rows)
    return out


def triples(records, source=None):
    return sorted((r["session_id"], r["turn"], r["layer"], r["code"]) for r in records
                  if source is None or r["source"] == source)


FILLED = {
    # s1:0 left empty: agrees with the model (repair none)
    "s1:1": {"rupture": "none", "markers": "none", "note": "back-channel mid-summary"},
    "s1:2": {"strategies": "repair.validate_defense;repair.invite_exploration"},  # keeps repair, full list
    "s1:4": {"rupture": "withdrawal", "markers": "withdrawal.denial;confrontation.complaint_progress"},
    "s2:0": {"repair": "none", "strategies": "none"},
    "s2:1": {"rupture": "withdrawal", "markers": "withdrawal.topic_shift"},
    # s2:2 and s2:3 empty: agree
}
EXPECTED = sorted([
    ("s1", 0, "repair", "none"),
    ("s1", 1, "rupture", "none"),
    ("s1", 2, "repair", "repair"), ("s1", 2, "strategies", "repair.invite_exploration"),
    ("s1", 2, "strategies", "repair.validate_defense"),
    ("s1", 4, "rupture", "withdrawal"), ("s1", 4, "markers", "confrontation.complaint_progress"),
    ("s1", 4, "markers", "withdrawal.denial"),
    ("s2", 0, "repair", "none"),
    ("s2", 1, "rupture", "withdrawal"), ("s2", 1, "markers", "withdrawal.topic_shift"),
    ("s2", 2, "repair", "none"),
    ("s2", 3, "rupture", "none"),
])


@pytest.mark.parametrize("with_run", [False, True])
def test_review_import_csv_round_trip(sheet, run_dir, tmp_path, with_run):
    fill(sheet, FILLED, reverse=True)  # rows are matched by item_id, not position
    result = import_files([sheet], annotator="coder_b", run_dir=run_dir if with_run else None)
    assert triples(result.records) == EXPECTED
    assert {r["source"] for r in result.records} == {"human:coder_b"}
    assert all(r["score"] == 1.0 and r["scheme"] == "rupture_v1" for r in result.records)
    assert result.notes == ({"session_id": "s1", "turn": 1, "source": "human:coder_b", "note": "back-channel mid-summary"},)
    counts = write_human_layer(tmp_path / "labels" / "human.jsonl", result)
    assert counts["records"] == len(EXPECTED) and counts["notes"] == 1
    assert triples(read_human_layer(tmp_path / "labels" / "human.jsonl")) == EXPECTED
    assert (tmp_path / "labels" / "human.notes.jsonl").exists()


def test_review_import_csv_model_codes_come_from_the_run(sheet, run_dir):
    fill(sheet, {"s1:1": {"model_rupture": "none", "model_markers": ""}})  # edited by mistake
    from_run = import_files([sheet], annotator="a", run_dir=run_dir)
    assert ("s1", 1, "markers", "withdrawal.minimal_response") in triples(from_run.records)
    from_sheet = import_files([sheet], annotator="a")
    assert ("s1", 1, "rupture", "none") in triples(from_sheet.records)


def test_review_import_csv_injection_cells_round_trip(tmp_path):
    run = write_run(tmp_path / "run", [rec("=cmd", 0, "client", "-1 is my score", rupture="none", unc=0.5)])
    export_batch(run, "csv", tmp_path / "b.csv")
    with open(tmp_path / "b.csv", newline="", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    assert (row["item_id"], row["session_id"], row["text"]) == ("'=cmd:0", "'=cmd", "'-1 is my score")
    result = import_files([tmp_path / "b.csv"], annotator="a", run_dir=run)
    assert triples(result.records) == [("=cmd", 0, "rupture", "none")]


def test_review_import_appends_annotators_and_keeps_conflicts(sheet, tmp_path):
    out = tmp_path / "human.jsonl"
    first = fill(sheet, {"s1:1": {"rupture": "none", "markers": "none"}}, out=tmp_path / "a.csv")
    second = fill(sheet, {"s1:1": {"rupture": "confrontation", "markers": "confrontation.defends_self"}},
                  out=tmp_path / "b.csv")
    write_human_layer(out, import_files([first], annotator="coder_a"))
    counts = write_human_layer(out, import_files([second], annotator="coder_b"))
    records = read_human_layer(out)
    assert counts["replaced_records"] == 0
    assert ("s1", 1, "rupture", "none") in triples(records, "human:coder_a")
    assert ("s1", 1, "rupture", "confrontation") in triples(records, "human:coder_b")
    # a coder's new coding of a turn replaces that coder's old coding of it, nobody else's
    again = fill(sheet, {"s1:1": {"rupture": "withdrawal", "markers": "withdrawal.denial"}}, out=tmp_path / "a2.csv")
    old_a = len(triples(records, "human:coder_a"))
    counts = write_human_layer(out, import_files([again], annotator="coder_a"))
    records = read_human_layer(out)
    assert counts["replaced_records"] == old_a  # the sheet covers every turn coder_a coded before
    assert len(triples(records, "human:coder_b")) == len(triples(import_files([second], annotator="b").records))
    assert ("s1", 1, "rupture", "withdrawal") in triples(records, "human:coder_a")
    assert ("s1", 1, "rupture", "none") not in triples(records, "human:coder_a")
    assert ("s1", 1, "rupture", "confrontation") in triples(records, "human:coder_b")


# ---------------------------------------------------------------- Label Studio exports

def ls_export(run_dir: Path, tmp_path: Path, annotations: dict[str, list[dict]]) -> Path:
    """A Label Studio JSON export built from our tasks: item id -> annotations."""
    export_batch(run_dir, "label-studio", tmp_path / "tasks.json", strategy="all")
    tasks = json.loads((tmp_path / "tasks.json").read_text(encoding="utf-8"))
    out = []
    for task_id, task in enumerate(tasks, start=1):
        anns = annotations.get(task["data"]["item_id"], [])
        out.append({"id": task_id, "data": task["data"], "predictions": [task_id], "annotations": anns})
    path = tmp_path / "export.json"
    path.write_text(json.dumps(out), encoding="utf-8")
    return path


def choice(name, *values):
    return {"from_name": name, "to_name": "text", "type": "choices", "value": {"choices": list(values)}}


def ann(user, *result, cancelled=False):
    return {"id": user * 100, "completed_by": user, "result": list(result), "was_cancelled": cancelled}


def test_review_import_label_studio_two_annotators_conflicts_kept(run_dir, tmp_path):
    path = ls_export(run_dir, tmp_path, {
        "s1:1": [ann(1, choice("speaker", CLIENT), choice("rupture", "withdrawal"),
                     choice("markers", "withdrawal.minimal_response"),
                     {"from_name": "note", "to_name": "text", "type": "textarea", "value": {"text": ["pulls back"]}}),
                 ann(2, choice("rupture", "confrontation"), choice("markers", "confrontation.rejects_intervention",
                                                                   "withdrawal.minimal_response"))],
        "s1:2": [ann(1, choice("repair", "none")), ann(2, choice("repair", "repair"),
                                                        choice("strategies", "repair.validate_defense"))],
        "s2:1": [ann(2, choice("rupture", "none"), cancelled=True)],  # skipped: not a coding
    })
    result = import_files([path], run_dir=run_dir)
    assert triples(result.records, "human:ls-1") == [
        ("s1", 1, "markers", "withdrawal.minimal_response"), ("s1", 1, "rupture", "withdrawal"),
        ("s1", 2, "repair", "none")]
    assert triples(result.records, "human:ls-2") == [
        ("s1", 1, "markers", "confrontation.rejects_intervention"), ("s1", 1, "markers", "withdrawal.minimal_response"),
        ("s1", 1, "rupture", "confrontation"), ("s1", 2, "repair", "repair"),
        ("s1", 2, "strategies", "repair.validate_defense")]
    assert result.notes == ({"session_id": "s1", "turn": 1, "source": "human:ls-1", "note": "pulls back"},)
    out = tmp_path / "human.jsonl"
    write_human_layer(out, result)
    assert {r["source"] for r in read_human_layer(out)} == {"human:ls-1", "human:ls-2"}


def test_review_import_label_studio_single_annotator_named(run_dir, tmp_path):
    path = ls_export(run_dir, tmp_path, {"s2:1": [ann(5, choice("rupture", "none"))]})
    result = import_files([path], annotator="coder_c")
    assert [(r["source"], r["code"]) for r in result.records] == [("human:coder_c", "none")]


LS_ERRORS = [
    ({"s1:1": [ann(1, choice("markers", "withdrawal.denial"))]},
     r"export.json: task 2 \(item s1:1\), choices rupture: no rupture code chosen"),
    ({"s1:1": [ann(1, choice("rupture", "withdrawal"), choice("markers", "withdrawal.nope"))]},
     r"task 2 \(item s1:1\), choices markers: unknown markers code 'withdrawal.nope'"),
    ({"s1:1": [ann(1, choice("rupture", "withdrawal"))]},
     r"task 2 \(item s1:1\), choices markers: rupture 'withdrawal' needs at least one withdrawal markers code"),
    ({"s1:1": [ann(1, choice("rupture", "none"), choice("repair", "none"))]},
     r"task 2 \(item s1:1\), choices repair: client turns get no repair codes"),
    ({"s1:2": [ann(1, choice("repair", "repair"))]},
     r"task 3 \(item s1:2\), choices strategies: repair 'repair' needs at least one repair strategies code"),
    ({"s1:1": [ann(1, choice("sentiment", "positive"))]},
     r"task 2 \(item s1:1\): result from 'sentiment' is not one of the configuration's choice groups"),
    ({"s1:1": [ann(1, choice("rupture", "none")), ann(1, choice("rupture", "none"))]},
     r"task 2 \(item s1:1\): human:ls-1 annotated this task twice"),
    ({"s1:1": [{"id": 9, "result": [choice("rupture", "none")]}]},
     r"task 2 \(item s1:1\): annotation 9 has no completed_by"),
]


@pytest.mark.parametrize("annotations, message", LS_ERRORS)
def test_review_import_label_studio_validation_errors(run_dir, tmp_path, annotations, message):
    path = ls_export(run_dir, tmp_path, annotations)
    with pytest.raises(LabelError, match=message):
        import_files([path])


def test_review_import_label_studio_bad_files(run_dir, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(LabelError, match=r"bad.json: Label Studio export is not valid JSON"):
        import_files([bad])
    bad.write_text('{"tasks": []}', encoding="utf-8")
    with pytest.raises(LabelError, match=r"bad.json: Label Studio export is not a list of tasks; found dict"):
        import_files([bad])
    bad.write_text('[{"id": 5, "data": {"text": "x"}, "annotations": []}]', encoding="utf-8")
    with pytest.raises(LabelError, match=r"task 5: data.item_id is not a rupture-coder item id"):
        import_files([bad])
    two = ls_export(run_dir, tmp_path, {"s2:1": [ann(1, choice("rupture", "none")), ann(2, choice("rupture", "none"))]})
    with pytest.raises(LabelError, match=r"--annotator given, but the export holds annotations by 2 users; found completed_by 1, 2"):
        import_files([two], annotator="coder_a")
    bad.write_text(json.dumps([{"id": 1, "data": {"item_id": "s9:0", "speaker": "client"},
                                "annotations": [ann(1, choice("rupture", "none"))]}]), encoding="utf-8")
    with pytest.raises(LabelError, match=r"task 1 \(item s9:0\): item is not a turn of the run"):
        import_files([bad], run_dir=run_dir)


# ---------------------------------------------------------------- CSV validation errors

CSV_ERRORS = [
    ({"s1:1": {"markers": "withdrawal.denail"}},
     r"batch.csv: row 3 \(item s1:1\), column markers: unknown markers code 'withdrawal.denail'; expected codes of rupture_v1"),
    ({"s1:1": {"rupture": "Withdrawal"}}, r"row 3 \(item s1:1\), column rupture: unknown rupture code 'Withdrawal'"),
    ({"s1:1": {"rupture": "withdrawal;confrontation"}},
     r"row 3 \(item s1:1\), column rupture: layer rupture takes one code, got 'withdrawal;confrontation'"),
    ({"s1:1": {"rupture": "withdrawal", "markers": "confrontation.defends_self"}},
     r"row 3 \(item s1:1\), column markers: rupture 'withdrawal' needs at least one withdrawal markers code; "
     r"found 'confrontation.defends_self'"),
    ({"s1:1": {"rupture": "none"}},  # markers left empty: would accept the model's markers
     r"row 3 \(item s1:1\), column markers: rupture 'none' takes no markers; found 'withdrawal.minimal_response'; "
     r"fix: write 'none' in markers"),
    ({"s1:1": {"repair": "repair"}}, r"row 3 \(item s1:1\), column repair: client turns get no repair codes"),
    ({"s1:2": {"markers": "withdrawal.denial"}}, r"row 4 \(item s1:2\), column markers: therapist turns get no markers codes"),
    ({"s1:2": {"strategies": "none"}},
     r"row 4 \(item s1:2\), column strategies: repair 'repair' needs at least one repair strategies code; found none"),
    ({"s1:2": {"strategies": "repair.sorry"}}, r"row 4 \(item s1:2\), column strategies: unknown strategies code 'repair.sorry'"),
    ({"s1:1": {"model_rupture": ""}},
     r"row 3 \(item s1:1\), column rupture: empty cell accepts the model's code, but the model has none"),
    ({"s1:1": {"model_markers": "withdrawal.nope"}},
     r"row 3 \(item s1:1\), column model_markers: unknown markers code 'withdrawal.nope'"),
    ({"s1:1": {"item_id": "s1-1"}}, r"row 3, column item_id: not an item id; expected '<session_id>:<turn>' as exported; found 's1-1'"),
    ({"s1:4": {"item_id": "s1:1"}}, r"row 5, column item_id: item 's1:1' appears twice \(also row 3\)"),
]


@pytest.mark.parametrize("edits, message", CSV_ERRORS)
def test_review_import_csv_validation_errors(sheet, edits, message):
    fill(sheet, edits)
    with pytest.raises(LabelError, match=message):
        import_files([sheet], annotator="coder_b")


def test_review_import_csv_errors_against_the_run(sheet, run_dir):
    fill(sheet, {"s1:1": {"item_id": "s9:1"}})
    with pytest.raises(LabelError, match=r"row 3 \(item s9:1\): item is not a turn of the run"):
        import_files([sheet], annotator="a", run_dir=run_dir)
    fill(sheet, {"s9:1": {"item_id": "s1:1", "speaker": "therapist"}})
    with pytest.raises(LabelError, match=r"row 3 \(item s1:1\), column speaker: sheet says 'therapist', the run says 'client'"):
        import_files([sheet], annotator="a", run_dir=run_dir)


def test_review_import_csv_bad_files(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("item_id,rupture\ns1:1,none\n", encoding="utf-8")
    with pytest.raises(LabelError, match=r"bad.csv:1: review sheet lacks columns session_id, turn, speaker, .*; expected item_id, session_id"):
        import_files([bad], annotator="a")
    bad.write_bytes(",".join(["item_id", "x"]).encode() + b"\n\xff\xfe\xfa\n")
    with pytest.raises(LabelError, match=r"bad.csv: review sheet is not UTF-8"):
        import_files([bad], annotator="a")


@pytest.mark.parametrize("name, content, message", [
    ("missing.csv", None, r"missing.csv: cannot read review sheet; found No such file"),
    ("broken.csv", ",".join(CSV_FIELDS) + '\n"s1:1"oops,1\n', r"broken.csv: review sheet is not valid CSV; found ',' expected"),
    ("missing.json", None, r"missing.json: cannot read Label Studio export"),
    ("nodata.json", '[{"id": 1, "annotations": []}]', r"nodata.json: task #1 has no data object"),
])
def test_review_import_unreadable_files(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(LabelError, match=message):
        import_files([path], annotator="a")


def test_review_import_speaker_without_codes(sheet):
    fill(sheet, {"s1:1": {"speaker": "other"}})
    with pytest.raises(LabelError, match=r"row 3 \(item s1:1\), column speaker: 'other' turns are not coded; "
                                         r"expected one of client, therapist"):
        import_files([sheet], annotator="a")


@pytest.mark.parametrize("content, message", [
    (None, r"cannot read label layer"),
    ('{"session_id": "s1", "turn": 1}\n', r"layer.jsonl:1: not a label record; expected keys session_id, turn, layer"),
    ('{"session_id": "s1", "turn": 1, "layer": "mood", "code": "x", "source": "human:a"}\n',
     r"layer.jsonl:1: unknown mood code 'x'"),
])
def test_review_import_bad_layer_files(tmp_path, content, message):
    path = tmp_path / "layer.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(LabelError, match=message):
        read_human_layer(path)


def test_review_import_option_errors(sheet, run_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"a CSV review sheet needs --annotator"):
        import_files([sheet])
    with pytest.raises(ConfigError, match=r"bad --annotator 'coder b'"):
        import_files([sheet], annotator="coder b")
    with pytest.raises(ConfigError, match=r"notes.txt: unknown review file type"):
        import_files([tmp_path / "notes.txt"], annotator="a")
    result = import_files([sheet], annotator="a")
    with pytest.raises(ConfigError, match=r"overwrite an input or a run's model layer"):
        write_human_layer(run_dir / "turns.jsonl", result)
    with pytest.raises(ConfigError, match=r"overwrite an input"):
        write_human_layer(sheet, result, protect=[sheet])
    model_layer = tmp_path / "model.jsonl"
    model_layer.write_text(json.dumps({"session_id": "s1", "turn": 1, "layer": "rupture", "code": "none",
                                       "source": f"model:{MODEL}"}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"--out holds non-human \(model\) records"):
        write_human_layer(model_layer, result)
    twice = fill(sheet, {}, out=tmp_path / "copy.csv")
    with pytest.raises(LabelError, match=r"human:a coded item s1:0 twice"):
        import_files([sheet, twice], annotator="a")


# ---------------------------------------------------------------- label tables for training

def test_review_import_label_table_trains_like_a_label_table(sheet, run_dir, tmp_path, make_session):
    fill(sheet, FILLED)
    records = import_files([sheet], annotator="coder_b", run_dir=run_dir).records
    table = label_table(records, run_turns=TURNS, datasets={"s1": "csv", "s2": "csv"})
    # keyed by (dataset, session id, input turn id); the fixture's input ids are turn + 1
    assert table[("csv", "s1", "5")].codes == {
        "rupture": ("withdrawal",), "markers": ("withdrawal.denial", "confrontation.complaint_progress"),
        "repair": (), "strategies": ()}
    assert table[("csv", "s1", "5")].speaker == "client"
    write_label_table(tmp_path / "corrected.csv", table)
    assert read_label_table(tmp_path / "corrected.csv") == table
    session = make_session([("T", "a"), ("C", "b"), ("T", "c"), ("X", "d"), ("C", "e")], session_id="s1")
    labelled, n = attach_labels(session, table, "coder_b")
    assert n == 4  # the turns with labels (make_session's input ids are "1".."5"; "4" is not labelled)
    assert [(a.turn, a.layer, a.code) for a in labelled.annotations if a.turn == 4] == [
        (4, "rupture", "withdrawal"), (4, "markers", "withdrawal.denial"),
        (4, "markers", "confrontation.complaint_progress")]


def test_review_import_label_table_needs_one_source(sheet):
    records = list(import_files([sheet], annotator="a").records) + list(import_files([sheet], annotator="b").records)
    with pytest.raises(LabelError, match=r"session s1 turn 0 was coded by 2 sources; found human:a, human:b"):
        label_table(records)
    table = label_table(records, source="human:b")
    assert table[("", "s1", "1")].codes["rupture"] == ("withdrawal",)  # turn index as turn id without a run


# ---------------------------------------------------------------- CLI

def test_review_import_cli(sheet, run_dir, tmp_path):
    fill(sheet, FILLED)
    runner = CliRunner()
    out = tmp_path / "human.jsonl"
    result = runner.invoke(app, ["review", "import", str(sheet), "--annotator", "coder_b", "--run", str(run_dir),
                                 "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "human:coder_b" in result.output
    assert f"wrote {len(EXPECTED)} record(s) to {out} ({len(EXPECTED)} from this import, 0 replaced); 1 note(s)" in result.output
    fill(sheet, {"s1:1": {"markers": "withdrawal.denail"}})
    bad = runner.invoke(app, ["review", "import", str(sheet), "--annotator", "coder_b", "--out", str(out)],
                        env={"COLUMNS": "300"})
    assert bad.exit_code == 2
    assert bad.output.startswith("error: ") and "column markers: unknown markers code 'withdrawal.denail'" in bad.output
    assert "Traceback" not in bad.output
