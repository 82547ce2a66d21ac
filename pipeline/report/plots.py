"""Timeline plots of one coded session.

Three layers, all pure except :func:`plot_timeline`, which writes the PNG:

* :func:`timeline_series`: one :class:`Point` per turn (client: rupture probability
  ``1 - P(none)``; therapist: repair score) on a time axis when every turn has a start time,
  else on the turn index;
* :func:`svg_geometry`: the marks, episode bands, segment boundaries and ticks of the report's
  inline SVG timeline (``pipeline/report/templates/_timeline.svg.j2``), in viewBox units;
* :func:`plot_timeline`: the same picture as a static, byte-reproducible PNG (matplotlib, Agg),
  drawn on one figure reused for every session (:class:`_TimelineFigure`; about 5x cheaper than a
  new figure a session, ``benchmarks/profile_render.py``).

Display names and colours come from the codebook; nothing here lists codes.
"""

from __future__ import annotations

import io
import math
import re
import struct
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.io.files import atomic_write
from pipeline.codebook import Codebook, load_codebook

NEUTRAL = "#8c8c8c"  # codes missing from the codebook (or with a malformed colour), "other" speakers
HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
TIME_STEPS = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 14400)
TURN_STEPS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
# SVG layout (viewBox units): label rows on top, client lane above MID, therapist lane below.
SVG_W, SVG_H, LEFT, RIGHT = 1000, 262, 58, 14
SEG_ROW, EP_ROW, LANE_TOP, MID, LANE_BOT, AXIS_Y = 10, 23, 30, 120, 210, 226
LANE_H = MID - LANE_TOP


@dataclass(frozen=True)
class Point:
    turn: int
    role: str
    x: float  # start on the axis (seconds or turn index)
    x_end: float  # end on the axis (x when unknown)
    value: float | None  # client: 1 - P(none); therapist: repair score; else None
    code: str | None  # coded rupture type or repair code, None when not coded as such


@dataclass(frozen=True)
class Series:
    unit: str  # "time" | "turns"
    lo: float
    hi: float
    points: tuple[Point, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_turn", {p.turn: p for p in self.points})

    def position(self, turn: int, end: bool = False) -> float:
        """Axis position of a turn's start (or end); the turn number for unknown turns."""
        p = self._by_turn.get(turn)
        if p is None:
            return float(turn)
        return p.x_end if end else p.x


def fmt_time(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``; empty for unknown times."""
    if seconds is None:
        return ""
    total = int(round(float(seconds)))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def rupture_probability(turn: dict, book: Codebook) -> float | None:
    """``1 - P(none)`` from the turn's scores, else 1/0 from a coded (e.g. human) rupture."""
    default = book.layer("rupture").default
    scores = turn.get("rupture_scores")
    if scores and scores.get(default) is not None:
        return min(1.0, max(0.0, 1.0 - float(scores[default])))
    if turn.get("rupture") is None:
        return None
    return 1.0 if turn["rupture"] in book.rupture_types else 0.0


def repair_value(turn: dict, book: Codebook) -> float | None:
    if turn.get("repair_score") is not None:
        return min(1.0, max(0.0, float(turn["repair_score"])))
    if turn.get("repair") is None:
        return None
    return 0.0 if turn["repair"] == book.layer("repair").default else 1.0


def coded_as(turn: dict, book: Codebook) -> str | None:
    """The rupture type of a client turn or the repair code of a therapist turn, if coded."""
    if turn.get("speaker") == book.layer("rupture").applies_to and turn.get("rupture") in book.rupture_types:
        return turn["rupture"]
    repair = book.layer("repair")
    if turn.get("speaker") == repair.applies_to and turn.get("repair") not in (None, repair.default):
        return turn["repair"]
    return None


def timeline_series(turns: list[dict], book: Codebook | None = None) -> Series:
    book = book or load_codebook()
    timed = bool(turns) and all(t.get("start") is not None for t in turns)
    points = []
    for t in turns:
        x = float(t["start"]) if timed else float(t["turn"])
        end = t.get("end") if timed else None
        value = {book.layer("rupture").applies_to: rupture_probability,
                 book.layer("repair").applies_to: repair_value}.get(t.get("speaker"))
        points.append(Point(int(t["turn"]), str(t.get("speaker")), x,
                            max(x, float(end)) if end is not None else x,
                            value(t, book) if value else None, coded_as(t, book)))
    if not points:
        return Series("turns", 0.0, 1.0, ())
    if timed:
        lo, hi = 0.0, max(p.x_end for p in points)
    else:
        lo, hi = min(p.x for p in points) - 0.5, max(p.x for p in points) + 0.5
    return Series("time" if timed else "turns", lo, max(hi, lo + 1.0), tuple(points))


def ticks(series: Series, most: int = 9) -> list[tuple[float, str]]:
    """At most ``most + 1`` axis ticks at round steps, whatever the span (an epoch-millisecond
    time or a 1e16 s end time gives a few ticks, never billions)."""
    if not (math.isfinite(series.lo) and math.isfinite(series.hi)) or series.hi < series.lo:
        return []
    steps = TIME_STEPS if series.unit == "time" else TURN_STEPS
    span = series.hi - series.lo
    step = next((s for s in steps if span / s <= most), None) or _round_step(span / most)
    first = -(-series.lo // step) * step
    values = [first + k * step for k in range(min(int((series.hi - first) // step) + 1, most + 1))]
    label = fmt_time if series.unit == "time" else (lambda v: str(int(v)))
    return [(float(v), label(v)) for v in values]


def _round_step(raw: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``raw``."""
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def colour(book: Codebook, layer: str, code: str | None) -> str:
    """The codebook colour of a code (only ``#rgb``/``#rrggbb`` values are used)."""
    for c in book.layer(layer).codes:
        if c.code == code and HEX_COLOUR.fullmatch(c.colour):
            return c.colour
    return NEUTRAL


def display(book: Codebook, layer: str, code: str | None) -> str:
    for c in book.layer(layer).codes:
        if c.code == code:
            return c.display
    return str(code)


def mark_colour(p: Point, book: Codebook) -> str:
    rupture, repair = book.layer("rupture"), book.layer("repair")
    if p.role == rupture.applies_to:
        return colour(book, "rupture", p.code or rupture.default)
    if p.role == repair.applies_to:
        return colour(book, "repair", p.code or repair.default)
    return NEUTRAL


def _r(v: float) -> float:
    return round(float(v), 1)


def svg_geometry(series: Series, timeline: dict, book: Codebook | None = None) -> dict:
    """Everything the SVG template draws, in viewBox units (rounded: stable and compact)."""
    book = book or load_codebook()
    width = SVG_W - LEFT - RIGHT

    def sx(v: float) -> float:
        return LEFT + (v - series.lo) / (series.hi - series.lo) * width

    bar = min(8.0, max(0.6, width / max(1, len(series.points)) * 0.7))
    geo = {"width": SVG_W, "height": SVG_H, "left": LEFT, "right": SVG_W - RIGHT, "mid": MID,
           "lane_top": LANE_TOP, "lane_bot": LANE_BOT, "axis_y": AXIS_Y, "seg_row": SEG_ROW,
           "ep_row": EP_ROW, "unit": series.unit}
    geo["marks"] = [_mark(p, sx(p.x), bar, book) for p in series.points]
    geo["bands"] = _bands(series, timeline.get("episodes") or [], sx, bar, book)
    geo["segments"] = _segment_lines(series, timeline.get("segments") or [], sx)
    geo["xticks"] = [{"x": _r(sx(v)), "label": s} for v, s in ticks(series)]
    geo["yticks"] = [{"y": _r(MID - f * LANE_H), "label": f"{f:g}"} for f in (1.0, 0.5)]
    geo["yticks"] += [{"y": _r(MID + f * LANE_H), "label": f"{f:g}"} for f in (0.5, 1.0)]
    return geo


def _mark(p: Point, x: float, bar: float, book: Codebook) -> dict:
    lanes = {book.layer("rupture").applies_to: -1, book.layer("repair").applies_to: 1}
    sign = lanes.get(p.role, 0)
    h = max(1.5, (p.value or 0.0) * LANE_H) if sign else 4.0
    y = MID - h if sign < 0 else (MID if sign > 0 else MID - 2.0)
    return {"turn": p.turn, "x": _r(x - bar / 2), "cx": _r(x), "y": _r(y), "w": _r(bar), "h": _r(h),
            "fill": mark_colour(p, book), "coded": p.code is not None,
            "lane": {-1: "c", 1: "t"}.get(sign, "o")}


def _bands(series: Series, episodes: list[dict], sx, bar: float, book: Codebook) -> list[dict]:
    out, last_label = [], -1e9
    for e in episodes:
        x0 = sx(series.position(e["start_turn"])) - bar / 2 - 1
        x1 = sx(series.position(e["end_turn"], end=True)) + bar / 2 + 1
        show = x0 - last_label >= 30
        last_label = x0 if show else last_label
        out.append({"id": e["id"], "x": _r(x0), "w": _r(max(2.0, x1 - x0)), "type": e["type"],
                    "fill": colour(book, "rupture", e["type"]), "resolved": bool(e.get("resolved")),
                    "show_label": show})
    return out


def _segment_lines(series: Series, segments: list[dict], sx) -> list[dict]:
    out, last = [], -1e9
    for s in segments:
        if s.get("unit") == "time" and series.unit == "time" and s.get("start_s") is not None:
            v = float(s["start_s"])
        else:
            v = series.position(s["start_turn"]) - (0.5 if series.unit == "turns" else 0.0)
        x = sx(v)
        if x <= LEFT + 0.5:
            continue
        show = x - last >= 26
        last = x if show else last
        out.append({"x": _r(x), "label": f"S{int(s['index']) + 1}", "show_label": show})
    return out


def plot_timeline(turns: list[dict], timeline: dict, path: Path, codebook: Codebook | None = None) -> Path:
    """Write the session timeline as a PNG; identical inputs give byte-identical files."""

    atomic_write(Path(path), render_png(turns, timeline, codebook))
    return Path(path)


def render_png(turns: list[dict], timeline: dict, codebook: Codebook | None = None) -> bytes:
    """The session timeline as PNG bytes: the same inputs give the same bytes, whichever
    sessions were rendered before and from whichever thread."""
    global _FIGURE
    book = codebook or load_codebook()
    series = timeline_series(turns, book)
    with _RENDER_LOCK, _style(8):
        if _FIGURE is None:
            _FIGURE = _TimelineFigure()
        rows = _FIGURE.render(series, timeline, book)
        width, height = _FIGURE.width, _FIGURE.height
    return _encode_png(rows, width, height, 100)  # outside the lock (zlib lets go of the GIL)


def warm_up(codebook: Codebook | None = None) -> None:
    """Make the reused figure and its background for a short session id now (matplotlib's fonts,
    the figure, the legend and y axis: about 0.4 s, against about 20 ms for each timeline after
    it), e.g. in the writer process while the first chunk is being coded. Changes no output: the
    background is the one the first timeline would draw."""
    global _FIGURE
    book = codebook or load_codebook()
    with _RENDER_LOCK, _style(8):
        if _FIGURE is None:
            _FIGURE = _TimelineFigure()
        key = (_legend_entries(book), True)
        if key not in _FIGURE.backgrounds:
            _FIGURE.backgrounds[key] = _FIGURE._draw_background(*key)


# matplotlib's settings (rcParams) are process-wide and its fonts and text caches are shared:
# one timeline is drawn at a time, under this lock, on one reused figure.
_RENDER_LOCK = threading.RLock()
_FIGURE: _TimelineFigure | None = None
_STYLES: dict[int, dict] = {}
TITLE_NOTE = "client rupture probability (up), therapist repair score (down)"
SHORT_ID = 40  # longer session ids get the note in the title itself, after the id


@contextmanager
def _style(font_size: int):
    """matplotlib's default style (whatever a matplotlibrc or the caller set) with this report's
    font size, for the duration of a ``with``.

    The settings are swapped in and out as they are (``rc_context`` would validate each of its
    ~300 values on the way in: about 1 ms a timeline); they were validated once, when first
    made. The backend setting is left alone."""
    import matplotlib
    import matplotlib.style

    if font_size not in _STYLES:
        with matplotlib.style.context(["default", {"font.size": font_size, "svg.hashsalt": "rupture-coder"}]):
            _STYLES[font_size] = {k: v for k, v in dict.items(matplotlib.rcParams) if k != "backend"}
    params = matplotlib.rcParams
    saved = {k: v for k, v in dict.items(params) if k != "backend"}
    _set_raw(params, _STYLES[font_size])
    try:
        yield
    finally:
        _set_raw(params, saved)


def _set_raw(params, values: dict) -> None:
    """Write already validated settings into matplotlib's ``rcParams`` (its own way where it has
    one: ``_update_raw``, matplotlib 3.11)."""
    update = getattr(params, "_update_raw", None)
    if update is not None:
        update(values)
    else:
        dict.update(params, values)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode_png(rows, width: int, height: int, dpi: int) -> bytes:
    """An 8-bit RGBA PNG (what matplotlib writes) of rows that each start with their filter byte
    (0: none); no text chunk (no software version) and no time chunk. Filter "none" and zlib
    level 3: on these mostly white plots about 10 % larger than matplotlib's PNGs (Pillow's
    adaptive filters, level 6) and several times faster to compress."""
    ppm = int(dpi / 0.0254 + 0.5)
    return b"".join((b"\x89PNG\r\n\x1a\n",
                     _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)),
                     _png_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)),
                     _png_chunk(b"IDAT", zlib.compress(rows, 3)),
                     _png_chunk(b"IEND", b"")))


class _TimelineFigure:
    """One figure reused for every timeline (a new figure a session cost most of the time).

    What is the same for every session (the y axis with its ticks and label, the legend, the
    title's note on the right) is drawn once into a background image, per codebook legend; a
    session restores that image, adds its own artists (episode bands, segment lines, score
    stems, coded-turn marks), sets its x axis and title, draws the axes' artists that are not
    in the background, and removes its artists again. Only ever used under ``_RENDER_LOCK``."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(12, 4.2), dpi=100)
        self.canvas = FigureCanvasAgg(self.fig)
        ax = self.ax = self.fig.add_axes((0.06, 0.2, 0.92, 0.72))
        ax.set_ylim(-1.05, 1.05)
        ax.set_yticks([-1, -0.5, 0, 0.5, 1], ["1", "0.5", "0", "0.5", "1"])
        ax.set_ylabel("repair score (therapist)  |  rupture probability (client)")
        ax.spines[["top", "right"]].set_visible(False)
        ax.axhline(0, color="#333333", lw=0.6, zorder=2.05)  # over the stems, as when it was added after them
        self.note = ax.set_title("", loc="right", y=1.0)
        # background artists are "animated": Axes.draw (not saving) leaves them out
        for artist in (ax.yaxis, self.note):
            artist.set_animated(True)
        ax.patch.set_visible(False)  # white on the white figure: nothing to draw
        self.width, self.height = (int(v) for v in self.canvas.get_width_height(physical=True))
        self.backgrounds: dict[tuple, object] = {}
        self.session_artists: list = []

    def render(self, series: Series, timeline: dict, book: Codebook):
        """The session's picture as PNG rows (a filter byte, then RGBA pixels), a numpy array."""
        import numpy as np

        sid = str(timeline.get("session_id", ""))
        key = (_legend_entries(book), len(sid) <= SHORT_ID)
        if key not in self.backgrounds:
            self.backgrounds[key] = self._draw_background(*key)
        try:
            _draw(self.ax, series, timeline, book, self.session_artists)
            title = f"Session {sid}" if key[1] else f"Session {sid}: {TITLE_NOTE}"
            self.ax.set_title(title.replace("$", r"\$"), loc="left", y=1.0)  # y: no measuring the axes
            renderer = self.canvas.get_renderer()
            renderer.restore_region(self.backgrounds[key])
            self.ax.draw(renderer)
            rows = np.zeros((self.height, 1 + 4 * self.width), dtype=np.uint8)
            rows[:, 1:] = np.asarray(renderer.buffer_rgba()).reshape(self.height, 4 * self.width)
            return rows
        finally:
            for artist in self.session_artists:
                artist.remove()
            self.session_artists = []

    def _draw_background(self, entries: tuple, note: bool):
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        ax = self.ax
        if ax.legend_ is not None:
            ax.legend_.remove()
        handles = [Patch(color=c, alpha=0.35, label=label) if kind == "band" else
                   Line2D([], [], color=c, marker=kind, lw=1.4, label=label) for kind, c, label in entries]
        legend = ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12),
                           ncol=max(1, len(handles)), frameon=False)
        legend.set_animated(True)
        self.note.set_text(TITLE_NOTE if note else "")
        renderer = self.canvas.get_renderer()
        renderer.clear()
        for artist in (self.fig.patch, ax.yaxis, self.note, legend):
            artist.draw(renderer)
        return renderer.copy_from_bbox(self.fig.bbox)


def _legend_entries(book: Codebook) -> tuple:
    """(kind, colour, label) per legend entry: a band per episode type, then the marks."""
    repair = book.layer("repair")
    return (tuple(("band", colour(book, "rupture", t), f"{display(book, 'rupture', t)} episode")
                  for t in book.rupture_types)
            + tuple(("o", colour(book, "rupture", t), display(book, "rupture", t)) for t in book.rupture_types)
            + tuple(("v", colour(book, "repair", c), display(book, "repair", c))
                    for c in repair.values if c != repair.default))


def _draw(ax, series: Series, timeline: dict, book: Codebook, added: list) -> None:
    """Add one session's artists to the axes, and to ``added`` (removed after drawing); set the
    x axis."""
    from matplotlib.collections import LineCollection

    for e in timeline.get("episodes") or []:
        lo, hi = series.position(e["start_turn"]), series.position(e["end_turn"], end=True)
        pad = 0.5 if series.unit == "turns" else 0.0
        added.append(ax.axvspan(lo - pad, hi + pad, color=colour(book, "rupture", e["type"]), alpha=0.15, lw=0))
    for s in (timeline.get("segments") or [])[1:]:
        x = s["start_s"] if series.unit == "time" and s.get("start_s") is not None else s["start_turn"] - 0.5
        added.append(ax.axvline(x, color=NEUTRAL, lw=0.6, ls=":"))
    rupture_role, repair_role = book.layer("rupture").applies_to, book.layer("repair").applies_to
    for role, sign, shape in ((rupture_role, 1, "o"), (repair_role, -1, "v")):
        pts = [p for p in series.points if p.role == role and p.value is not None]
        if pts:  # the stems, as ax.vlines draws them, without its unit and limit bookkeeping
            stems = LineCollection([((p.x, 0.0), (p.x, sign * p.value)) for p in pts],
                                   colors=[mark_colour(p, book) for p in pts], linestyles="solid", lw=1.4)
            added.append(ax.add_collection(stems, autolim=False))
        coded = [p for p in pts if p.code]
        if coded:
            added.append(ax.scatter([p.x for p in coded], [sign * p.value for p in coded], s=18, marker=shape,
                                    c=[mark_colour(p, book) for p in coded], zorder=3, linewidths=0))
    ax.set_xlim(series.lo, series.hi)
    values = ticks(series)
    ax.set_xticks([v for v, _ in values], [s for _, s in values])
    ax.set_xlabel("time" if series.unit == "time" else "turn")


def case_trend_png(case: dict, codebook: Codebook | None = None) -> bytes:
    """The three 3RS-style session ratings over a case's sessions, as a PNG for papers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    book = codebook or load_codebook()
    sessions = case["sessions"]
    xs = [s["session_number"] if s["session_number"] is not None else k + 1 for k, s in enumerate(sessions)]
    series = (("rating_withdrawal", display(book, "rupture", "withdrawal"), colour(book, "rupture", "withdrawal"), "o"),
              ("rating_confrontation", display(book, "rupture", "confrontation"), colour(book, "rupture", "confrontation"), "s"),
              ("rating_resolution", "Resolution", colour(book, "repair", "repair"), "^"))
    with _RENDER_LOCK, _style(9):  # rcParams are process-wide: not while a timeline is drawn
        fig = Figure(figsize=(7, 3.4), dpi=150)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.09, 0.16, 0.88, 0.72))
        for key, label, c, marker in series:
            pts = [(x, s[key]) for x, s in zip(xs, sessions) if s[key] is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=c, marker=marker, lw=1.6, label=label)
        ax.set_ylim(0.7, 5.3)
        ax.set_yticks([1, 2, 3, 4, 5])
        ax.set_xticks(xs, [str(x) for x in xs] if len(xs) <= 30 else None)
        ax.set_xlabel("session")
        ax.set_ylabel("session rating (1-5)")
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 1.16), ncol=3, frameon=False)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=150, metadata={"Software": None})
    return buf.getvalue()
