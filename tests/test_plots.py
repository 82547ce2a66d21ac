"""Timeline plots (pipeline/plots.py): the per-turn series, the SVG geometry and the PNG."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.codebook import load_codebook
from pipeline.episodes import CodedTurn, timeline
from pipeline.report.plots import (fmt_time, plot_timeline, rupture_probability, svg_geometry, ticks,
                            timeline_series)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def record(n, speaker, start=None, rupture=None, p=0.0, repair=None, r=0.0):
    client, therapist = speaker == "client", speaker == "therapist"
    return {
        "session_id": "s$1", "turn": n, "speaker": speaker, "speaker_id": speaker[0].upper(),
        "start": start, "end": None if start is None else start + 4.0, "text": "x", "clean_text": "x",
        "nonverbal": [], "rupture": (rupture or "none") if client else None,
        "rupture_scores": {"none": 1 - p, "withdrawal": p, "confrontation": 0.0} if client else None,
        "markers": [], "repair": (repair or "none") if therapist else None,
        "repair_score": r if therapist else None, "strategies": [],
    }


def with_timeline(turns):
    coded = [CodedTurn(t["turn"], t["speaker"], t["start"], t["end"], t["rupture"],
                       1 - t["rupture_scores"]["none"] if t["rupture_scores"] else 0.0, (),
                       t["repair"], t["repair_score"] or 0.0, ()) for t in turns]
    return turns, {"session_id": "s$1", "model": "m@1", **timeline(coded)}


def session(timed=True, n=30):
    turns = []
    for k in range(n):
        start = 20.0 * k if timed else None
        if k % 2:
            hit = k % 7 == 1
            turns.append(record(k, "client", start, "withdrawal" if hit else None, 0.8 if hit else 0.2))
        else:
            hit = k % 8 == 2
            turns.append(record(k, "therapist", start, "repair" if hit else None, 0.9 if hit else 0.1))
    return with_timeline(turns)


def test_plots_series_uses_time_when_every_turn_has_one():
    turns, _ = session(timed=True)
    series = timeline_series(turns)
    assert series.unit == "time" and series.lo == 0.0
    assert [p.x for p in series.points[:3]] == [0.0, 20.0, 40.0]
    turns[3]["start"] = None
    assert timeline_series(turns).unit == "turns"


def test_plots_rupture_probability_is_one_minus_p_none():
    book = load_codebook()
    assert rupture_probability(record(1, "client", p=0.75), book) == pytest.approx(0.75)
    human = {**record(1, "client"), "rupture_scores": None, "rupture": "withdrawal"}
    assert rupture_probability(human, book) == 1.0
    assert rupture_probability({"speaker": "client", "rupture": None}, book) is None


def test_plots_svg_geometry_has_one_mark_per_turn_and_a_band_per_episode():
    turns, tl = session()
    geo = svg_geometry(timeline_series(turns), tl)
    assert [m["turn"] for m in geo["marks"]] == [t["turn"] for t in turns]
    assert len(geo["bands"]) == len(tl["episodes"]) >= 1
    assert all(geo["left"] <= m["cx"] <= geo["right"] for m in geo["marks"])
    client = [m for m in geo["marks"] if m["lane"] == "c"]
    assert all(m["y"] + m["h"] == pytest.approx(geo["mid"], abs=0.11) for m in client)


def test_plots_ticks_and_time_format():
    assert fmt_time(None) == "" and fmt_time(65) == "1:05" and fmt_time(3725) == "1:02:05"
    turns, _ = session(timed=True)
    labels = [label for _, label in ticks(timeline_series(turns))]
    assert labels[0] == "0:00" and 2 <= len(labels) <= 9


@pytest.mark.parametrize("timed", [True, False])
def test_plots_png_is_written_and_byte_identical(tmp_path: Path, timed):
    turns, tl = session(timed=timed)
    a, b = plot_timeline(turns, tl, tmp_path / "a.png"), plot_timeline(turns, tl, tmp_path / "b.png")
    data = a.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000
    assert data == b.read_bytes()
    assert b"tEXt" not in data and b"tIME" not in data  # no software version, no timestamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]


@pytest.mark.parametrize("turns", [
    [],
    [record(0, "client", 0.0, "withdrawal", 0.9)],
    [record(k, "client", None) for k in range(4)],
    [record(0, "other", 3.0), record(1, "therapist", 8.0, "repair", 0.7)],
])
def test_plots_png_for_edge_sessions(tmp_path: Path, turns):
    turns, tl = with_timeline(turns)
    path = plot_timeline(turns, tl, tmp_path / "t.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("hi", [1e7, 1e12, 1e16, 1.7e12 + 3600])
def test_plots_ticks_stay_few_for_extreme_times(hi):
    """Issue 16: one turn ending at 1e16 s (or epoch milliseconds) made billions of ticks."""
    from pipeline.report.plots import Series, ticks

    out = ticks(Series("time", 0.0, hi, ()))
    assert 1 <= len(out) <= 10 and all(v <= hi for v, _ in out)
    assert ticks(Series("time", 0.0, float("inf"), ())) == []
