"""pipeline.io.speakers and the readers' speaker corrections: swapped labels fixed, merged rows
flagged and kept out of training labels, bad tables rejected with file and line."""

from __future__ import annotations

import pytest

from pipeline.errors import LabelError
from pipeline.io.labels import COLUMNS as LABEL_COLUMNS, attach_labels, read_label_table
from pipeline.io.readers import ReadOptions, read_file
from pipeline.io.speakers import COLUMNS, read_speaker_corrections
from pipeline.preprocess.segment import segment_session

HLQC = ("\ufeffcorp_vol_idx,conv_id,speaker,vol_text\n"
        "10,low_001,counsellor,so how are things going\n"
        "11,low_001,client,well i do not know\n"
        "12,low_001,client,you need to stop that now it is bad for you\n"
        "13,low_001,counsellor,fine i guess\n"
        "14,low_001,client,ok so you said we would talk about that\n")
HEADER = ",".join(COLUMNS) + "\n"
FIXES = HEADER + ("hlqc,low_001,12,client,therapist,swap,counsellor lecture labelled client\n"
                  "hlqc,low_001,13,therapist,client,swap,client reply labelled counsellor\n"
                  "hlqc,low_001,14,client,merged,merged,both speakers in one row\n")


def read(write_file, fixes=None):
    path = write_file("hlqc.csv", HLQC)
    table = read_speaker_corrections([write_file("fix.csv", fixes)]) if fixes else None
    return read_file(path, ReadOptions(fmt="hlqc", speaker_corrections=table)).sessions[0]


def test_readers_speaker_corrections_swap_and_flag(write_file):
    plain, fixed = read(write_file), read(write_file, FIXES)
    assert [t.speaker_role for t in plain.turns] == ["therapist", "client", "client", "therapist", "client"]
    assert [t.speaker_role for t in fixed.turns] == ["therapist", "client", "therapist", "client", "client"]
    assert [t.speaker_id for t in fixed.turns] == ["counsellor", "client", "counsellor", "client", "client"]
    assert fixed.turns[2].meta == {"speaker_corrected_from": "client"}
    assert fixed.turns[4].meta == {"merged_speakers": True} and fixed.turns[4].speaker_role == "client"
    assert [t.text for t in fixed.turns] == [t.text for t in plain.turns]  # text is never changed


def test_readers_speaker_corrections_other_dataset_or_session_untouched(write_file):
    fixes = HEADER + "annomi,low_001,12,client,therapist,swap,x\nhlqc,low_002,12,client,therapist,swap,x\n"
    assert [t.speaker_role for t in read(write_file, fixes).turns] == [t.speaker_role for t in read(write_file).turns]


def test_readers_speaker_corrections_merged_turn_gets_no_labels(write_file):
    session = segment_session(read(write_file, FIXES))
    labels = read_label_table(write_file("labels.csv", ",".join(LABEL_COLUMNS) + "\n" + (
        "hlqc,low_001,13,client,withdrawal,withdrawal.minimal_response,,\n"
        "hlqc,low_001,14,client,confrontation,confrontation.complaint_activities,,\n")))
    labelled, n = attach_labels(session, labels, "team")
    # turns 13 (corrected to client) and 14 (merged) are consecutive client turns: one segment,
    # flagged merged, so neither row's codes are attached
    assert n == 0 and labelled.annotations == ()
    assert session.turns[-1].meta.get("merged_speakers") is True


@pytest.mark.parametrize("row, pattern", [
    ("hlqc,s,1,client,other,swap,x", "speaker_true one of client, therapist"),
    ("hlqc,s,1,client,client,merged,x", "speaker_true 'merged'"),
    ("hlqc,s,1,client,therapist,moved,x", "kind one of swap, merged"),
    ("hlqc,,1,client,therapist,swap,x", "dataset, session_id and turn_id"),
])
def test_readers_speaker_corrections_bad_row_names_file_and_line(write_file, row, pattern):
    path = write_file("fix.csv", HEADER + "hlqc,s,0,client,therapist,swap,ok\n" + row + "\n")
    with pytest.raises(LabelError, match=pattern) as info:
        read_speaker_corrections([path])
    assert info.value.line == 3 and str(path) in str(info.value.path)


def test_readers_speaker_corrections_duplicate_and_missing_columns(write_file):
    dup = write_file("dup.csv", HEADER + "hlqc,s,1,client,therapist,swap,x\nhlqc,s,1,client,therapist,swap,y\n")
    with pytest.raises(LabelError, match="turn corrected twice"):
        read_speaker_corrections([dup])
    with pytest.raises(LabelError, match="lack columns"):
        read_speaker_corrections([write_file("cols.csv", "dataset,session_id\nhlqc,s\n")])
    with pytest.raises(LabelError, match="cannot read"):
        read_speaker_corrections([write_file("x.csv", "") .with_name("absent.csv")])


def test_readers_speaker_corrections_shipped_table_is_valid():
    from pipeline.modeling.training import speaker_correction_paths

    table = read_speaker_corrections(speaker_correction_paths())
    assert len(table) > 700 and {k[0] for k in table} <= {"hlqc", "annomi", "hope", "rogers"}
