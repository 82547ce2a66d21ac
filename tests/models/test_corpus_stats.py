"""Corpus statistics of the shipped data, printed by `rupture-coder corpus-stats` and asserted here:
the constructed corpus (size, code coverage, modalities) and the team's real-data label tables
(coverage, double coding, no transcript text)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score
from typer.testing import CliRunner

from pipeline.cli._app import app
from pipeline.codebook import load_codebook
from pipeline.io.labels import COLUMNS, read_label_table
from pipeline.io.readers import FORMATS
from pipeline.records import ROLES
from pipeline.resources import project_home
from pipeline.modeling.training import real_label_paths

BOOK = load_codebook()
CONSTRUCTED = project_home() / "corpus" / "constructed"
REAL_LABELS = project_home() / "corpus" / "real_labels"
MANUAL = project_home() / "annotation_guides" / "rupture_v1_coding_manual.md"
ID = re.compile(r"[A-Za-z0-9_.-]{1,40}")


@pytest.fixture(scope="module")
def stats() -> dict:
    result = CliRunner().invoke(app, ["corpus-stats", "--json", "--real-labels"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def session_meta() -> list[dict]:
    return [json.loads(line) for path in sorted(CONSTRUCTED.glob("*.sessions.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def coder_a() -> dict:
    table: dict = {}
    for path in real_label_paths():
        table.update(read_label_table(path))
    return table


# --- the constructed corpus -------------------------------------------------------------------


def test_corpus_stats_size(stats):
    corpus = stats["corpus"]
    assert corpus["sessions"] >= 80
    assert corpus["turns"] >= 6000
    assert corpus["turns"] == corpus["client_turns"] + corpus["therapist_turns"] + corpus["other_turns"]


@pytest.mark.parametrize("marker", BOOK.markers)
def test_corpus_stats_every_marker_has_30_examples(stats, marker):
    assert stats["corpus"]["markers"][marker] >= 30


@pytest.mark.parametrize("strategy", BOOK.strategies)
def test_corpus_stats_every_strategy_has_25_examples(stats, strategy):
    assert stats["corpus"]["strategies"][strategy] >= 25


def test_corpus_stats_rupture_rate(stats):
    rupture = stats["corpus"]["rupture"]
    assert set(rupture) == {"none", "withdrawal", "confrontation"}
    rate = (rupture["withdrawal"] + rupture["confrontation"]) / sum(rupture.values())
    assert 0.05 <= rate <= 0.20, rate
    assert stats["corpus"]["repair"]["repair"] > 0


def test_corpus_stats_every_session_has_meta(stats, session_meta):
    ids = {json.loads(line)["session_id"] for path in CONSTRUCTED.glob("*.jsonl")
           if not path.name.endswith(".sessions.jsonl") for line in path.read_text(encoding="utf-8").splitlines()
           if line.strip()}
    assert {m["session_id"] for m in session_meta} == ids
    assert len(ids) == stats["corpus"]["sessions"]


@pytest.mark.parametrize("field, pattern", [
    ("modality", r"\bCBT\b"),
    ("modality", r"psychodynamic"),
    ("modality", r"person-centred"),
    ("modality", r"motivational interviewing"),
    ("modality", r"\bcouples?\b"),
    ("setting", r"^telehealth$"),
    ("setting", r"^in-person$"),
    ("style", r"^asr_like$"),
    ("style", r"^clean$"),
])
def test_corpus_stats_modalities_and_settings(session_meta, field, pattern):
    hits = [m["session_id"] for m in session_meta if re.search(pattern, m.get(field, ""), re.I)]
    assert len(hits) >= 3, (field, pattern, hits)


# --- the team's real-data labels ---------------------------------------------------------------


def test_corpus_stats_real_label_tables_are_counted(stats):
    real = stats["real_labels"]
    assert set(real) == {p.name for p in real_label_paths()} == set(["primary_annomi_a.csv", "primary_annomi_b.csv", "primary_hlqc_high_a.csv", "primary_hlqc_high_b.csv", "primary_hlqc_low_hope_rogers.csv"])
    for table in real.values():
        assert table["sessions"] > 0 and table["turns"] > 0


def test_corpus_stats_real_labels_cover_the_sessions(coder_a):
    sessions = {(k[0], k[1]) for k in coder_a}
    low = {s for d, s in sessions if d == "hlqc" and s.startswith("low_")}
    high = {(d, s) for d, s in sessions if (d == "hlqc" and s.startswith("high_")) or d == "annomi"}
    rogers = {s for d, s in sessions if d == "rogers"}
    assert len(low) >= 69
    assert len(high) >= 69  # high quality: HLQC high_* and AnnoMI (all high quality in ../shared/data)
    assert rogers == {"sylvia_4", "sylvia_5", "kathy", "dione_1", "dione_2"}


def _double_coded(coder_a) -> tuple[list[str], list[str]]:
    coder_b = read_label_table(REAL_LABELS / "v2" / "second_coder_reliability.csv")
    keys = [k for k, v in coder_b.items() if k in coder_a and v.speaker == coder_a[k].speaker == "client"]
    return [coder_a[k].codes["rupture"][0] for k in keys], [coder_b[k].codes["rupture"][0] for k in keys]


def test_corpus_stats_double_coded_subset(coder_a):
    a, b = _double_coded(coder_a)
    assert len(a) >= 300
    assert {"withdrawal", "confrontation"} <= set(a) | set(b)
    assert cohen_kappa_score(a, b) > 0.4  # double coding that agrees better than chance


def test_corpus_stats_reliability_matches_the_manual(coder_a):
    section = MANUAL.read_text(encoding="utf-8").split("## Reliability of the team's real-data coding", 1)[1]
    section = section.split("\n## ", 1)[0]
    if "<!-- RELIABILITY-TABLE -->" in section:
        pytest.skip("the manual's reliability table is still a placeholder")
    a, b = _double_coded(coder_a)
    kappa = cohen_kappa_score(a, b)
    reported = _reported_rupture_kappa(section)
    decimals = len(reported.split(".")[1])
    assert float(reported) == pytest.approx(round(kappa, decimals), abs=10 ** -decimals / 2), (reported, kappa)


def _reported_rupture_kappa(section: str) -> str:
    """The rupture kappa in the manual's reliability table: the "kappa" column of the row
    about the rupture layer, else the first number on a line naming rupture and kappa."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
            if line.strip().startswith("|")]
    header = next((r for r in rows if any("kappa" in c.lower() for c in r)), None)
    if header:
        col = next(i for i, c in enumerate(header) if "kappa" in c.lower())
        for r in rows:
            if r is not header and r and re.search(r"\brupture\b", r[0], re.I) and len(r) > col:
                number = re.search(r"-?\d*\.\d+", r[col])
                if number:
                    return number.group(0)
    for line in section.splitlines():
        if re.search(r"\brupture\b", line, re.I) and re.search(r"kappa|κ", line, re.I):
            number = re.search(r"(?:kappa|κ)\D{0,20}?(-?\d*\.\d+)", line, re.I)
            if number:
                return number.group(1)
    raise AssertionError("no rupture kappa found in the manual's reliability section")


def _short_note(note: str) -> bool:
    """A coder's note is a short reason in their own words: never a quotation of the transcript."""
    return len(note) <= 120 and not any(q in note for q in ('"', "\u201c", "\u201d"))


@pytest.mark.parametrize("path", sorted(REAL_LABELS.glob("**/*.csv")), ids=lambda p: str(p.relative_to(REAL_LABELS)))
def test_corpus_stats_label_tables_hold_no_transcript_text(path: Path):
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) in (COLUMNS, COLUMNS + ("note", "flag"))  # v2 tables: note, flag
        rows = list(reader)
    assert rows
    for line, row in enumerate(rows, start=2):
        assert _short_note(row.get("note") or ""), line
        assert set(filter(None, (row.get("flag") or "").split(";"))) <= {"new", "recoded", "speaker", "merged"}, line
        assert row["dataset"] in FORMATS, line
        assert ID.fullmatch(row["session_id"]) and ID.fullmatch(row["turn_id"]), line
        assert row["speaker"] in ROLES, line
        for layer in ("rupture", "markers", "repair", "strategies"):
            codes = [c for c in row[layer].split(";") if c]
            assert set(codes) <= set(BOOK.layer(layer).values), (line, layer)
    read_label_table(path)  # and the reader accepts every row


@pytest.mark.parametrize("path", sorted((REAL_LABELS.parent / "speaker_corrections").glob("*.csv")), ids=lambda p: p.name)
def test_corpus_stats_speaker_corrections_hold_no_transcript_text(path: Path):
    from pipeline.io.speakers import COLUMNS as FIX_COLUMNS, read_speaker_corrections

    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == FIX_COLUMNS
        rows = list(reader)
    assert rows and all(_short_note(r["note"]) and ID.fullmatch(r["turn_id"]) for r in rows)
    assert len(read_speaker_corrections([path])) == len(rows)
