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


# --- the reused figure (issue 15): deterministic whatever came before, from any thread --------

def quiet(n=12, sid="quiet"):
    """A session without a rupture, a repair, an episode or a segment boundary but the first."""
    turns = [record(k, "client" if k % 2 else "therapist", 10.0 * k, p=0.1, r=0.05) for k in range(n)]
    turns, tl = with_timeline(turns)
    for t in turns:
        t["session_id"] = sid
    return turns, {**tl, "session_id": sid}


def fresh_render(monkeypatch, turns, tl):
    """A render on a new figure, as in a new process."""
    from pipeline.report import plots

    monkeypatch.setattr(plots, "_FIGURE", None)
    return plots.render_png(turns, tl)


def test_plots_png_reused_figure_gives_the_same_bytes_a_b_a():
    from pipeline.report.plots import render_png

    a, b = session(timed=True), session(timed=False, n=50)
    first, other, again = render_png(*a), render_png(*b), render_png(*a)
    assert first == again and first != other


def test_plots_png_reused_figure_leaks_nothing_from_the_session_before(monkeypatch):
    from pipeline.report.plots import render_png

    calm = quiet()
    expected = fresh_render(monkeypatch, *calm)
    busy = session(timed=True, n=60)
    assert busy[1]["episodes"] and len(busy[1]["segments"]) > 1  # bands, segment lines, marks
    render_png(*busy)
    assert render_png(*calm) == expected
    render_png(*session(timed=False, n=80))  # more x ticks than the quiet session
    assert render_png(*calm) == expected


def test_plots_png_long_session_id_has_the_whole_title_and_leaks_nothing(monkeypatch):
    from pipeline.report.plots import SHORT_ID, render_png

    calm = quiet()
    long_id = quiet(sid="x" * (SHORT_ID + 1))
    expected_calm, expected_long = fresh_render(monkeypatch, *calm), fresh_render(monkeypatch, *long_id)
    assert render_png(*calm) == expected_calm and render_png(*long_id) == expected_long
    assert render_png(*calm) == expected_calm


def test_plots_warm_up_draws_the_background_ahead_and_changes_no_bytes(monkeypatch):
    """The writer process warms the figure up while the first chunk is coded (issue 15)."""
    from pipeline.report import plots

    calm, long_id = quiet(), quiet(sid="x" * (plots.SHORT_ID + 1))
    expected_calm, expected_long = fresh_render(monkeypatch, *calm), fresh_render(monkeypatch, *long_id)
    monkeypatch.setattr(plots, "_FIGURE", None)
    plots.warm_up()
    assert len(plots._FIGURE.backgrounds) == 1  # the short-id background, made now
    figure = plots._FIGURE
    plots.warm_up()  # a second call reuses it
    assert plots._FIGURE is figure and len(figure.backgrounds) == 1
    assert plots.render_png(*calm) == expected_calm and plots.render_png(*long_id) == expected_long


def test_plots_png_is_a_plain_rgba_png_of_the_figure_size():
    import io

    from PIL import Image

    from pipeline.report.plots import render_png

    data = render_png(*session())
    image = Image.open(io.BytesIO(data))
    image.load()  # checks every chunk's CRC and the compressed data
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (1200, 420)
    assert image.getextrema()[3] == (255, 255)  # opaque
    assert b"tEXt" not in data and b"tIME" not in data and b"iTXt" not in data


def test_plots_png_ignores_the_callers_matplotlib_settings_and_restores_them():
    import matplotlib

    from pipeline.report.plots import render_png

    turns, tl = session()
    expected = render_png(turns, tl)
    with matplotlib.rc_context({"font.size": 21, "lines.linewidth": 7, "axes.facecolor": "#ffee00"}):
        assert render_png(turns, tl) == expected
        assert matplotlib.rcParams["font.size"] == 21 and matplotlib.rcParams["lines.linewidth"] == 7


def test_plots_png_from_threads_at_once_equals_sequential():
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.report.plots import render_png

    sessions = [session(timed=k % 2 == 0, n=20 + 7 * k) for k in range(6)] + [quiet(), quiet(sid="y" * 60)]
    sequential = [render_png(*s) for s in sessions]
    work = sessions * 3
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda s: render_png(*s), work))
    assert parallel == sequential * 3
