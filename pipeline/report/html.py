"""The supervisor report: one self-contained HTML page per coded session, and an index page.

Rendering is pure (:func:`render_session_report`, :func:`render_index` return strings); only
:func:`write_report` and :func:`atomic_write` touch the disk. Pages are fully self-contained
(inline CSS and JS, no network, a Content-Security-Policy that forbids loading anything), all
text is HTML-escaped (Jinja2 autoescape), data for the script is embedded as JSON with ``<``,
``>`` and ``&`` escaped, and the same inputs give byte-identical files (no timestamps, stable
ordering). Display names and colours come from the codebook.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup

from pipeline.codebook import Codebook, load_codebook
from pipeline.records import TurnRecord
from pipeline.errors import RuptureCoderError
from pipeline.io.files import REVIEW_SHEET_FIELDS as REVIEW_SHEET_COLUMNS, atomic_write, safe_filename
from pipeline.report.plots import (coded_as, colour, display, fmt_time, repair_value, rupture_probability,
                    svg_geometry, timeline_series)

SHORT_TEXT = 110  # characters of a turn shown in the timeline tooltip
RULES_DOC = "annotation_guides/segment_ratings.md"


def page_name(session_id: str) -> str:
    return f"{safe_filename(session_id)}.html"


# --- rendering ------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.report", "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["time"] = fmt_time
    return env


@lru_cache(maxsize=None)
def _asset(name: str) -> str:
    """A static asset of the templates folder (CSS or JS), inlined into the pages."""
    return _env().loader.get_source(_env(), name)[0]


def warm_up() -> None:
    """Compile the session page's templates and read its assets now (about 50 ms), e.g. in the
    writer process while the first chunk is being coded."""
    _env().get_template("session.html.j2")
    for name in ("report.css", "session.js", "review.js"):
        _asset(name)


def _csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
            f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")


def json_for_script(data) -> Markup:
    """JSON safe to embed in ``<script type="application/json">`` (no ``</``, ``<!--``)."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                     ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return Markup(text)


def _page(template: str, script: str | tuple[str, ...], **context) -> str:
    js = "\n".join(_asset(name) for name in ((script,) if isinstance(script, str) else script))
    return _env().get_template(template).render(
        css=Markup(_asset("report.css")), js=Markup(js), csp=_csp(js), **context)


def render_session_report(session: dict, turns: list[dict], timeline: dict,
                          codebook: Codebook | None = None) -> str:
    """The HTML page of one coded session (a ``sessions.jsonl`` row, its turn records and its
    timeline), self-contained and deterministic."""
    book = codebook or load_codebook()
    turns = sorted(turns, key=lambda t: int(t["turn"]))
    series = timeline_series(turns, book)
    geo = svg_geometry(series, timeline, book)
    x_by_turn = {m["turn"]: (m["cx"], m["lane"]) for m in geo["marks"]}
    views = [_turn_view(t, book) for t in turns]
    data = {"geo": {k: geo[k] for k in ("lane_top", "mid", "lane_bot", "left", "right")},
            "turns": [_tip(v, *x_by_turn[v["n"]]) for v in views],
            "review": review_data(session, turns, book)}
    return _page(
        "session.html.j2", ("session.js", "review.js"), s=_summary_view(session, timeline, book), geo=geo,
        turns=views, episodes=[_episode_view(e, book) for e in timeline.get("episodes") or []],
        segments=[_segment_view(sg, book) for sg in timeline.get("segments") or []],
        seg_heads=[display(book, "rupture", t) for t in book.rupture_types],
        legend=_legend(book), unit=series.unit, data=json_for_script(data), rules_doc=RULES_DOC,
    )


def review_data(session: dict, turns: list[dict], book: Codebook) -> dict:
    """What the page's review mode needs: the codebook's layers (codes, names, definitions) and,
    per coded turn, its role, uncertainty and the model's codes. The review file the page saves
    is a CSV review sheet (the columns of ``rupture-coder review export --format csv``), which
    ``rupture-coder review import`` reads."""
    layers = [{"name": name, "kind": layer.kind, "role": layer.applies_to, "default": layer.default,
               "codes": [{"code": c.code, "display": c.display, "family": c.family, "description": c.description}
                         for c in layer.codes]}
              for name, layer in book.layers.items()]
    roles = {layer.applies_to for layer in book.layers.values()}
    items = []
    for t in turns:
        if t.get("speaker") not in roles:
            continue
        record = TurnRecord.from_dict(t)
        model = {name: list(record.codes(name)) for name, layer in book.layers.items()
                 if layer.applies_to == record.speaker}
        items.append({"n": record.turn, "role": record.speaker, "sid": record.speaker_id,
                      "unc": record.uncertainty, "model": model})
    return {"session_id": str(session.get("session_id")), "model": str(session.get("model") or ""),
            "scheme": f"{book.scheme}@{book.version}", "layers": layers, "items": items,
            "columns": list(REVIEW_SHEET_COLUMNS)}


def render_index(sessions: list[dict], run_info: dict, codebook: Codebook | None = None, cases: bool = False) -> str:
    """The index page: every session in a table sortable by clicking its column headers."""
    book = codebook or load_codebook()
    rows = [_index_row(s, book) for s in sorted(sessions, key=lambda s: str(s["session_id"]))]
    totals = {k: sum(r[k] or 0 for r in rows) for k in ("turns", "episodes", "resolved")}
    return _page("index.html.j2", "index.js", rows=rows, totals=totals, n=len(rows),
                 run_info=_run_info(run_info), rules_doc=RULES_DOC, cases=cases,
                 types=[display(book, "rupture", t) for t in book.rupture_types])


# --- view models ----------------------------------------------------------------------------

def _ink(hex_colour: str) -> str:
    """Black or white text, whichever reads better on the colour."""
    r, g, b = _rgb(hex_colour)
    return "#111111" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#ffffff"


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    h = "".join(c * 2 for c in h) if len(h) == 3 else h
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _rgba(hex_colour: str, alpha: float) -> str:
    return "rgba({}, {}, {}, {:.2f})".format(*_rgb(hex_colour), alpha)


def _badge(book: Codebook, layer: str, code: str, score: float | None = None, n: int | None = None) -> dict:
    c = colour(book, layer, code)
    title = code if score is None else f"{code} · score {score:.2f}"
    return {"text": display(book, layer, code), "title": title, "bg": c, "fg": _ink(c), "n": n}


def _repair_colour(book: Codebook) -> str:
    repair = book.layer("repair")
    return colour(book, "repair", next((c for c in repair.values if c != repair.default), None))


def _speaker(t: dict) -> str:
    role = str(t.get("speaker") or "other")
    sid = str(t.get("speaker_id") or "")
    return f"{role.capitalize()} · {sid}" if sid and sid.lower() != role.lower() else role.capitalize()


def _turn_view(t: dict, book: Codebook) -> dict:
    code = coded_as(t, book)
    is_client = t.get("speaker") == book.layer("rupture").applies_to
    layer = "rupture" if is_client else "repair"
    score = rupture_probability(t, book) if is_client else repair_value(t, book)
    highlight = None
    compare = t.get("compare")  # a human coding beside the model's (pipeline/review/side_by_side.py)
    if code is not None:
        c, s = colour(book, layer, code), 1.0 if score is None or compare else score
        label = "human" if compare else f"{round(100 * s)}%"
        highlight = {"colour": c, "bg": _rgba(c, 0.05 + 0.2 * s), "pct": label,
                     "badge": {**_badge(book, layer, code, None if compare else s), "n": label}, "weak": s < 0.75}
    codes = [_badge(book, "markers", m["code"], m.get("score")) for m in t.get("markers") or []]
    codes += [_badge(book, "strategies", m["code"], m.get("score")) for m in t.get("strategies") or []]
    label = "rupture probability" if is_client else "repair score"
    return {"n": int(t["turn"]), "role": str(t.get("speaker") or "other"), "speaker": _speaker(t),
            "time": fmt_time(t.get("start")), "end": fmt_time(t.get("end")),
            "text": t.get("clean_text") or t.get("text") or "", "notes": list(t.get("nonverbal") or []),
            "hl": highlight, "codes": codes,
            "score": None if score is None or t.get("speaker") == "other" else f"{label} {score:.2f}",
            "uncertainty": t.get("uncertainty"),
            "compare": {"who": ", ".join(compare["sources"]), "model": compare["model"], "agree": compare["agree"]}
            if compare else None}


def _tip(v: dict, x: float, lane: str) -> dict:
    text = v["text"] if len(v["text"]) <= SHORT_TEXT else v["text"][: SHORT_TEXT - 1].rstrip() + "…"
    codes = ([f"{v['hl']['badge']['text']} ({v['hl']['pct']})"] if v["hl"] else [])
    return {"n": v["n"], "px": x, "lane": lane, "sp": v["speaker"], "tm": v["time"], "tx": text,
            "cd": codes + [c["text"] for c in v["codes"]], "sc": v["score"] or ""}


def _episode_view(e: dict, book: Codebook) -> dict:
    attempts = [{"turn": a["turn"], "score": f"{float(a.get('score') or 0):.2f}",
                 "strategies": [_badge(book, "strategies", c) for c in a.get("strategies") or []]}
                for a in e.get("repair_attempts") or []]
    times = [fmt_time(e.get("start_s")), fmt_time(e.get("end_s"))]
    return {"id": e["id"], "type": _badge(book, "rupture", e["type"]), "start": e["start_turn"],
            "end": e["end_turn"], "turns": list(e.get("rupture_turns") or []),
            "time": "–".join(times) if all(times) else "", "peak": f"{float(e.get('peak_score') or 0):.2f}",
            "markers": [_badge(book, "markers", m) for m in e.get("markers") or []],
            "attempts": attempts, "resolved": bool(e.get("resolved"))}


def _segment_view(sg: dict, book: Codebook) -> dict:
    cells = []
    for kind in book.rupture_types:
        sal = int((sg.get("salience") or {}).get(kind, 1))
        cells.append({"count": (sg.get("counts") or {}).get(kind, 0), "salience": sal,
                      "bg": _rating_cell(sal, colour(book, "rupture", kind))[1]})
    times = [fmt_time(sg.get("start_s")), fmt_time(sg.get("end_s"))]
    return {"n": int(sg["index"]) + 1, "turns": f"{sg['start_turn']}–{sg['end_turn']}",
            "start": sg["start_turn"], "time": "–".join(times) if all(times) else "",
            "unit": sg.get("unit"), "cells": cells}


def _counted(book: Codebook, layer: str, counts: Mapping | None) -> list[dict]:
    items = sorted((counts or {}).items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return [_badge(book, layer, code, n=int(n)) for code, n in items]


def _summary_view(s: dict, timeline: dict, book: Codebook) -> dict:
    ratings = timeline.get("ratings") or {}
    rate = [{"label": display(book, "rupture", t), "colour": colour(book, "rupture", t),
             "value": s.get(f"rating_{t}", ratings.get(t))} for t in book.rupture_types]
    rate.append({"label": "Resolution", "colour": _repair_colour(book),
                 "value": s.get("rating_resolution", ratings.get("resolution"))})
    stats = [("Turns", s.get("turns"), f"{s.get('client_turns', 0)} client · "
              f"{s.get('therapist_turns', 0)} therapist · {s.get('other_turns', 0)} other"),
             ("Duration", fmt_time(s.get("duration_s")) or "unknown",
              "from turn times" if s.get("duration_s") is not None else "no turn times in the source")]
    stats += [(display(book, "rupture", t), s.get(f"{t}_turns", 0), "client turns")
              for t in book.rupture_types]
    stats += [("Repair attempts", s.get("repair_attempts", 0), "therapist turns"),
              ("Episodes", s.get("episodes", 0), f"{s.get('resolved_episodes', 0)} resolved")]
    for layer, a in (s.get("human_agreement") or {}).items():  # a report with human layers beside the model
        kappa = "–" if a.get("kappa") is None else f"{a['kappa']:.2f}"
        stats.append((f"Human vs model: {layer}", f"{a['percent']}%", f"agreement on {a['turns']} turns · kappa {kappa}"))
    return {"id": str(s.get("session_id", timeline.get("session_id", ""))),
            "source": s.get("source_file") or "", "format": s.get("format") or "",
            "model": s.get("model") or timeline.get("model") or "", "stats": stats, "ratings": rate,
            "markers": _counted(book, "markers", s.get("markers")),
            "strategies": _counted(book, "strategies", s.get("strategies"))}


def _legend(book: Codebook) -> list[dict]:
    rupture, repair = book.layer("rupture"), book.layer("repair")
    items = [{"label": f"Client: {c.display}", "colour": colour(book, "rupture", c.code), "kind": "bar"}
             for c in rupture.codes]
    items += [{"label": f"Therapist: {c.display}", "colour": colour(book, "repair", c.code), "kind": "bar"}
              for c in repair.codes]
    items += [{"label": f"{display(book, 'rupture', t)} episode", "colour": colour(book, "rupture", t),
               "kind": "band"} for t in book.rupture_types]
    return items + [{"label": "Segment boundary", "colour": "", "kind": "seg"}]


def _index_row(s: dict, book: Codebook) -> dict:
    sid = str(s["session_id"])
    types = book.rupture_types
    return {"id": sid, "href": page_name(sid), "turns": s.get("turns"), "duration": s.get("duration_s"),
            "counts": [s.get(f"{t}_turns") for t in types], "repairs": s.get("repair_attempts"),
            "episodes": s.get("episodes"), "resolved": s.get("resolved_episodes"),
            "ratings": [_rating_cell(s.get(f"rating_{t}"), colour(book, "rupture", t)) for t in types]
            + [_rating_cell(s.get("rating_resolution"), _repair_colour(book))],
            "model": s.get("model") or ""}


def _rating_cell(value, hex_colour: str) -> tuple:
    """A 1-5 rating and its cell shading (none for 1 or a missing rating)."""
    return value, _rgba(hex_colour, 0.6 * (int(value) - 1) / 4) if value is not None else ""


def _run_info(run_info: Mapping | None) -> list[tuple[str, str]]:
    out = []
    for key, value in (run_info or {}).items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
        out.append((str(key), text))
    return out


# --- writing --------------------------------------------------------------------------------

def _by_session(timelines: Mapping[str, dict] | Iterable[dict]) -> dict[str, dict]:
    if isinstance(timelines, Mapping):
        return {str(k): v for k, v in timelines.items()}
    return {str(tl["session_id"]): tl for tl in timelines}


def write_report(out_dir: Path, sessions: list[dict], turns_by_session: Mapping[str, list[dict]],
                 timelines: Mapping[str, dict] | Iterable[dict], run_info: dict,
                 codebook: Codebook | None = None) -> list[Path]:
    """Write ``<out_dir>/report/index.html`` and one page per session (atomically).

    ``turns_by_session`` maps session ids to turn records; ``timelines`` maps them to timelines
    (or lists timelines, which carry their ``session_id``). Every page is rendered before the
    first is written. Returns the written paths, index last.
    """
    book = codebook or load_codebook()
    turns_by_id = {str(k): v for k, v in turns_by_session.items()}
    timelines_by_id = _by_session(timelines)
    pages: dict[str, str] = {}
    for s in sessions:
        sid = str(s["session_id"])
        if sid not in turns_by_id or sid not in timelines_by_id:
            missing = "turn records are" if sid not in turns_by_id else "timeline is"
            raise RuptureCoderError(f"cannot write the report: the session's {missing} missing",
                                    session_id=sid, expected="turns and a timeline for every session",
                                    fix="pass the outputs of one coding run together")
        name = page_name(sid)
        if name in pages:
            raise RuptureCoderError("cannot write the report: duplicate session id", session_id=sid,
                                    fix="give every session a unique id")
        pages[name] = render_session_report(s, turns_by_id[sid], timelines_by_id[sid], book)
    pages["index.html"] = render_index(sessions, run_info, book)
    folder = Path(out_dir) / "report"
    return [atomic_write(folder / name, html) for name, html in pages.items()]
