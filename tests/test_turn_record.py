"""The typed turn record: round trip, validation without quoting values, the writers' schema and
the documentation table all come from one type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, InputFormatError
from pipeline.io.run_folder import RunFolder
from pipeline.records import TURN_RECORD_FIELDS, CodeScore, TurnRecord, turn_record_schema

DOCS = Path(__file__).resolve().parents[1] / "docs" / "formats-and-outputs.md"

CLIENT = {"session_id": "s1", "turn": 1, "source_turns": ["7", "8"], "source_lines": [9, 10], "speaker": "client",
          "speaker_id": "C", "start": 1.5, "end": None, "text": "I guess.", "clean_text": "I guess.", "nonverbal": [],
          "rupture": "withdrawal", "rupture_scores": {"none": 0.3, "withdrawal": 0.6, "confrontation": 0.1},
          "markers": [{"code": "withdrawal.minimal_response", "score": 0.8}], "repair": None, "repair_score": None,
          "strategies": [], "uncertainty": 0.4, "model": "m@1"}


def test_turn_record_round_trips_in_field_order():
    record = TurnRecord.from_dict(CLIENT)
    assert record.to_dict() == CLIENT and list(record.to_dict()) == [f.name for f in TURN_RECORD_FIELDS]
    assert record.key == ("s1", 1)
    assert record.markers == (CodeScore("withdrawal.minimal_response", 0.8),)
    assert record.codes("markers") == ("withdrawal.minimal_response",)
    assert record.codes("rupture") == ("withdrawal",) and record.codes("repair") == ()


@pytest.mark.parametrize("field, value", [("turn", "two"), ("turn", None), ("speaker", 3), ("start", "late"),
                                          ("markers", "withdrawal"), ("rupture_scores", [0.1]), ("session_id", None)])
def test_turn_record_bad_field_is_named_not_quoted(field, value):
    with pytest.raises(ValueError, match=f"field '{field}'") as err:
        TurnRecord.from_dict({**CLIENT, field: value})
    assert "two" not in str(err.value) and "late" not in str(err.value)


def test_turn_record_optional_fields_may_be_missing():
    record = TurnRecord.from_dict({"session_id": "s", "turn": 0, "speaker": "other"})
    assert (record.text, record.source_turns, record.markers, record.rupture, record.uncertainty) == ("", (), (), None, None)


def test_run_folder_reads_records_and_names_the_bad_line(tmp_path):
    with pytest.raises(ConfigError, match="run folder has no turns.jsonl"):
        RunFolder(tmp_path)
    lines = [json.dumps(CLIENT), json.dumps({**CLIENT, "turn": 2, "text": "secret words", "start": "soon"})]
    (tmp_path / "turns.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    folder = RunFolder(tmp_path)
    with pytest.raises(InputFormatError, match=r"turns.jsonl:2: not a turn record") as err:
        folder.turns()
    assert "field 'start'" in str(err.value) and "soon" not in str(err.value) and "secret" not in str(err.value)
    (tmp_path / "turns.jsonl").write_text(lines[0] + "\n", encoding="utf-8")
    (tmp_path / "sessions.jsonl").write_text('{"session_id": "s1", "source_file": "a.csv", "format": "csv"}\nnot json\n')
    assert folder.turns() == [TurnRecord.from_dict(CLIENT)]
    assert folder.session_sources()["s1"].source_file == "a.csv"


def test_writers_schema_comes_from_the_type():
    from pipeline.io.files import _turn_schema
    from pipeline.io.turn_table import dataset_features

    names = [f.name for f in TURN_RECORD_FIELDS]
    assert _turn_schema().names == names and list(dataset_features()) == names


def test_docs_hold_the_schema_table_generated_from_the_type():
    assert turn_record_schema() in DOCS.read_text(encoding="utf-8"), \
        "docs/formats-and-outputs.md: paste pipeline.records.turn_record_schema() into 'The turn record'"
