"""pipeline.io.labels: label tables keyed by (dataset, session, input turn id) and attaching them."""

from __future__ import annotations

import pytest

from pipeline.errors import LabelError
from pipeline.io.labels import COLUMNS, attach_labels, read_label_table

HEADER = ",".join(COLUMNS) + "\n"
GOOD = HEADER + ("csv,s1,0,therapist,,,none,\n"
                 "csv,s1,1,client,withdrawal,withdrawal.denial;withdrawal.topic_shift,,\n"
                 "csv,s1,2,therapist,,,repair,repair.link_pattern\n")


def test_labels_read_label_table(write_file):
    table = read_label_table(write_file("labels.csv", GOOD))
    assert list(table) == [("csv", "s1", "0"), ("csv", "s1", "1"), ("csv", "s1", "2")]
    label = table[("csv", "s1", "1")]
    assert label.speaker == "client" and label.key == ("csv", "s1", "1")
    assert label.codes == {"rupture": ("withdrawal",), "markers": ("withdrawal.denial", "withdrawal.topic_shift"),
                           "repair": (), "strategies": ()}


def test_labels_read_label_table_with_byte_order_mark(write_file):
    table = read_label_table(write_file("bom.csv", "\ufeff" + GOOD))
    assert len(table) == 3


@pytest.mark.parametrize("row, pattern", [
    ("csv,s1,3,client,rupt,,,", r"labels\.csv:5: invalid rupture code\(s\) 'rupt'; expected codes of "
                               r"rupture_v1 layer 'rupture': confrontation, none, withdrawal"),
    ("csv,s1,3,client,withdrawal,withdrawal.sulk,,", r"labels\.csv:5: invalid markers code\(s\) 'withdrawal\.sulk'"),
    ("csv,s1,3,therapist,,,repair,repair.hug", r"labels\.csv:5: invalid strategies code\(s\) 'repair\.hug'"),
    ("csv,s1,3,client,none;withdrawal,,,", r"labels\.csv:5: layer 'rupture' takes one code, got 2"),
])
def test_labels_read_label_table_bad_code_names_file_and_line(write_file, row, pattern):
    path = write_file("labels.csv", GOOD + row + "\n")
    with pytest.raises(LabelError, match=pattern):
        read_label_table(path)


def test_labels_read_label_table_duplicate_row(write_file):
    path = write_file("labels.csv", GOOD + "csv,s1,1,client,none,,,\n")
    with pytest.raises(LabelError, match=r"labels\.csv:5: duplicate label row; found \('csv', 's1', '1'\) "
                                         r"twice; fix: keep one row per turn"):
        read_label_table(path)


def test_labels_read_label_table_missing_columns(write_file):
    path = write_file("labels.csv", "dataset,session_id,turn_id,speaker,rupture,repair\ncsv,s1,0,client,none,\n")
    with pytest.raises(LabelError, match=r"labels\.csv:1: label table lacks columns; expected dataset, "
                                         r".*; found markers, strategies"):
        read_label_table(path)


def test_labels_read_label_table_missing_file(tmp_path):
    with pytest.raises(LabelError, match=r"nope\.csv: cannot read label table; found No such file"):
        read_label_table(tmp_path / "nope.csv")


def test_labels_attach_to_merged_turns(build, write_file):
    # input turns 1-3 are one client turn after segmentation, 5-6 one therapist turn
    session = build("s1", [("T", "How was it?"), ("C", "Fine."), ("C", "It was"), ("C", "whatever."),
                           ("T", "Hm."), ("T", "Sorry,"), ("T", "I pushed."), ("C", "Okay.")])
    assert [t.source.turn_ids for t in session.turns] == [("0",), ("1", "2", "3"), ("4", "5", "6"), ("7",)]
    table = read_label_table(write_file("labels.csv", HEADER + (
        "csv,s1,1,client,none,,,\n"
        "csv,s1,2,client,withdrawal,withdrawal.denial,,\n"
        "csv,s1,3,client,confrontation,withdrawal.denial;confrontation.defends_self,,\n"
        "csv,s1,5,therapist,,,repair,repair.acknowledge_contribution\n"
        "csv,s1,6,therapist,,,none,\n"
        "csv,other,7,client,confrontation,confrontation.complaint_therapist,,\n")))
    labelled, n = attach_labels(session, table, "ana")
    assert n == 2
    got = sorted((a.turn, a.layer, a.code, a.source) for a in labelled.annotations)
    assert got == [
        (1, "markers", "confrontation.defends_self", "human:ana"),
        (1, "markers", "withdrawal.denial", "human:ana"),
        (1, "rupture", "withdrawal", "human:ana"),  # the first code that is not none
        (2, "repair", "repair", "human:ana"),
        (2, "strategies", "repair.acknowledge_contribution", "human:ana"),
    ]
    assert session.annotations == ()  # a new session; the input is unchanged


def test_labels_attach_all_none_stays_none(build, write_file):
    session = build("s1", [("T", "Hi."), ("C", "Hi."), ("C", "Yes.")])
    table = read_label_table(write_file("labels.csv", HEADER + "csv,s1,1,client,none,,,\ncsv,s1,2,client,none,,,\n"))
    labelled, n = attach_labels(session, table, "b")
    assert n == 1
    assert [(a.turn, a.layer, a.code) for a in labelled.annotations] == [(1, "rupture", "none")]


def test_labels_attach_ignores_other_datasets(build, write_file):
    session = build("s1", [("T", "Hi."), ("C", "Hi.")])
    table = read_label_table(write_file("labels.csv", HEADER + "hlqc,s1,1,client,withdrawal,withdrawal.denial,,\n"))
    labelled, n = attach_labels(session, table, "b")
    assert n == 0 and labelled.annotations == ()
