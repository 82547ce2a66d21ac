"""pipeline.modeling.training: labelled transcripts, real transcripts joined with label tables, manifests."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.errors import LabelError
from pipeline.io.labels import COLUMNS
from pipeline.modeling.training import (TrainingData, constructed_paths, data_manifest, load_labelled_transcripts,
                               load_real, real_label_paths)

LABELLED = ("session_id,turn,speaker,text,rupture,markers,repair,strategies\n"
            "a,0,therapist,How was the week?,,,none,\n"
            "a,1,client,Whatever.,withdrawal,withdrawal.minimal_response,,\n"
            "a,2,therapist,I pushed too hard there.,,,repair,repair.acknowledge_contribution\n"
            "a,3,client,Maybe.,none,,,\n"
            "b,0,therapist,Welcome back.,,,none,\n"
            "b,1,client,Thanks.,none,,,\n")
HLQC = ("\ufeffcorp_vol_idx,conv_id,speaker,vol_text\n"
        "10,low_900,counsellor,so how have you been\n"
        "11,low_900,client,fine i guess\n"
        "12,low_900,client,whatever\n"
        "13,low_900,counsellor,sounds like you don't want to be here\n"
        "20,low_901,counsellor,hello\n"
        "21,low_901,client,hi\n")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A project home in tmp_path, so manifest paths are relative to it."""
    monkeypatch.setattr("pipeline.modeling.training.project_home", lambda: tmp_path)
    return tmp_path


def test_training_load_labelled_transcripts(write_file, home):
    path = write_file("data/train.csv", LABELLED)
    data = load_labelled_transcripts([path], tag="alice")
    assert [s.session_id for s in data.sessions] == ["a", "b"]
    a = data.sessions[0]
    assert all(t.clean_text for t in a.turns)  # segmented, as coding sees turns
    got = sorted((x.turn, x.layer, x.code) for x in a.annotations)
    assert (1, "rupture", "withdrawal") in got and (2, "strategies", "repair.acknowledge_contribution") in got
    assert {x.source for x in a.annotations} == {"human:alice"}
    assert data.problems == []


def test_training_manifest_hashes_files_with_repo_relative_paths(write_file, home):
    path = write_file("data/train.csv", LABELLED)
    data = load_labelled_transcripts([path])
    manifest = data_manifest(data, "rupture_v1@1.0.0", "test recipe")
    assert manifest["counts"] == {"sessions": 2, "turns": 6}
    assert manifest["scheme"] == "rupture_v1@1.0.0" and manifest["recipe"] == "test recipe"
    (entry,) = manifest["files"]
    assert entry["path"] == "data/train.csv"
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry["bytes"] == len(path.read_bytes())
    assert (entry["sessions"], entry["turns"], entry["role"], entry["source"]) == (2, 6, "transcripts+labels", "user")
    assert manifest["warnings"] == 0


def test_training_manifest_counts_warnings(write_file, home):
    path = write_file("data/train.csv", LABELLED + "b,2,client,,none,,,\n")  # an empty turn: a warning
    manifest = data_manifest(load_labelled_transcripts([path]), "s", "r")
    assert manifest["warnings"] == 1


def test_training_shipped_paths_are_repo_relative():
    from pipeline.modeling.training import _file_entry

    names = [p.name for p in constructed_paths()]
    assert names and not [n for n in names if n.endswith(".sessions.jsonl")]
    entry = _file_entry(constructed_paths()[0], "transcripts+labels")
    assert entry["path"] == f"corpus/constructed/{names[0]}"
    assert [p.name for p in real_label_paths()] == ["primary_annomi_a.csv", "primary_annomi_b.csv", "primary_hlqc_high_a.csv", "primary_hlqc_high_b.csv", "primary_hlqc_low_hope_rogers.csv"]


def test_training_data_extend_returns_a_new_object():
    a, b = TrainingData(files=[{"name": "a"}]), TrainingData(files=[{"name": "b"}])
    c = a.extend(b)
    assert c.files == [{"name": "a"}, {"name": "b"}] and a.files == [{"name": "a"}]


def test_training_load_real_joins_labels(write_file, home):
    write_file("shared/hlqc/hlqc_dev.csv", HLQC)
    labels = write_file("labels.csv", ",".join(COLUMNS) + "\n" + (
        "hlqc,low_900,10,therapist,,,none,\n"
        "hlqc,low_900,11,client,none,,,\n"
        "hlqc,low_900,12,client,withdrawal,withdrawal.minimal_response,,\n"
        "hlqc,low_900,13,therapist,,,repair,repair.validate_defense\n"
        "hlqc,low_999,1,client,none,,,\n"))
    data = load_real(home / "shared", [labels], coder="team", speaker_corrections=[])
    (session,) = data.sessions  # low_901 has no labels and is left out
    assert session.session_id == "low_900" and session.source_format == "hlqc"
    got = sorted((a.turn, a.layer, a.code, a.source) for a in session.annotations)
    assert got == [(0, "repair", "none", "human:team"), (1, "markers", "withdrawal.minimal_response", "human:team"),
                   (1, "rupture", "withdrawal", "human:team"), (2, "repair", "repair", "human:team"),
                   (2, "strategies", "repair.validate_defense", "human:team")]
    roles = {f["role"]: f for f in data.files}
    assert roles["labels"]["path"] == "labels.csv"
    assert roles["transcripts"]["path"] == "shared/hlqc/hlqc_dev.csv" and roles["transcripts"]["sessions"] == 1
    (warning,) = [p for p in data.problems if p.code == "labels.unmatched"]
    assert warning.message == "1 label row(s) matched no input turn"


def test_training_load_real_without_matching_sessions(write_file, home):
    write_file("shared/hlqc/hlqc_dev.csv", HLQC)
    labels = write_file("labels.csv", ",".join(COLUMNS) + "\nhlqc,high_1,1,client,none,,,\n")
    with pytest.raises(LabelError, match=r"shared: no labelled real sessions found; fix: point --real-data"):
        load_real(home / "shared", [labels], speaker_corrections=[])
