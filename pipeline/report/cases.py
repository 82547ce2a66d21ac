"""Case pages of the report: one page per case (a client's sessions in order) and a cases page
with the per-therapist summary. Self-contained like the session pages; the trend chart and the
session strips are inline SVG drawn here, the PNG for papers is :func:`plot_case_trend`."""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup, escape

from pipeline.codebook import Codebook, load_codebook
from pipeline.io.files import atomic_write, safe_filename
from pipeline.report.html import _page, page_name
from pipeline.report.plots import colour, display

RATING_KEYS = (("rating_withdrawal", "rupture", "withdrawal"), ("rating_confrontation", "rupture", "confrontation"),
               ("rating_resolution", "repair", "repair"))


def case_page_name(case_id: str) -> str:
    return f"case-{safe_filename(case_id)}.html"


def _series(book: Codebook) -> list[tuple[str, str, str]]:
    """(session-row key, label, colour) of the three ratings."""
    return [(key, "resolution" if key.endswith("resolution") else display(book, layer, code), colour(book, layer, code))
            for key, layer, code in RATING_KEYS]


def trend_svg(case: dict, book: Codebook, width: int = 720, height: int = 220) -> Markup:
    """The three 1-5 ratings over the case's sessions as an inline SVG line chart."""
    left, right, top, bottom = 40, width - 16, 14, height - 30
    n = len(case["sessions"])
    x = (lambda k: (left + right) / 2) if n == 1 else (lambda k: left + (right - left) * k / (n - 1))
    y = lambda v: bottom - (bottom - top) * (float(v) - 1) / 4  # noqa: E731
    parts = [f'<svg class="trend" viewBox="0 0 {width} {height}" role="img" aria-label="Session ratings over the case">']
    for v in range(1, 6):
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
                     f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end" class="ax">{v}</text>')
    for k, e in enumerate(case["sessions"]):
        label = e["session_number"] if e["session_number"] is not None else k + 1
        parts.append(f'<text x="{x(k):.1f}" y="{height - 10}" text-anchor="middle" class="ax">{escape(str(label))}</text>')
    for key, label, c in _series(book):
        points = [(x(k), y(e[key])) for k, e in enumerate(case["sessions"]) if e[key] is not None]
        if len(points) > 1:
            parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="'
                         + " ".join(f"{px:.1f},{py:.1f}" for px, py in points) + '"/>')
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{c}"><title>{escape(label)}</title></circle>'
                  for px, py in points]
    parts.append("</svg>")
    return Markup("".join(parts))


def strip_svg(timeline: dict | None, n_turns: int, book: Codebook, width: int = 240, height: int = 18) -> Markup:
    """A session's rupture episodes as a thin strip (its timeline thumbnail)."""
    parts = [f'<svg class="strip" viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-hidden="true">'
             f'<rect x="0" y="{height / 2 - 1}" width="{width}" height="2" fill="#ccc"/>']
    total = max(n_turns, 1)
    for e in (timeline or {}).get("episodes") or []:
        x0 = width * int(e["start_turn"]) / total
        w = max(3.0, width * (int(e["end_turn"]) - int(e["start_turn"]) + 1) / total)
        parts.append(f'<rect x="{x0:.1f}" y="2" width="{w:.1f}" height="{height - 4}" rx="2" '
                     f'fill="{colour(book, "rupture", e["type"])}" opacity="{0.95 if e.get("resolved") else 0.55}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def render_case_page(case: dict, timelines: dict, book: Codebook | None = None) -> str:
    book = book or load_codebook()
    rows = [{**e, "href": page_name(e["session_id"]),
             "strip": strip_svg(timelines.get(e["session_id"]), e["turns"], book)} for e in case["sessions"]]
    return _page("case.html.j2", "index.js", case=case, rows=rows, trend=trend_svg(case, book),
                 series=_series(book), png=f"cases/{safe_filename(case['case_id'])}.png")


def render_cases_index(result: dict, book: Codebook | None = None) -> str:
    book = book or load_codebook()
    cases = [{**c, "href": case_page_name(c["case_id"])} for c in result["cases"]]
    return _page("cases.html.j2", "index.js", cases=cases, therapists=result["therapists"],
                 unmatched=result["unmatched_manifest_rows"], without=result["sessions_without_case"],
                 series=_series(book))


def write_case_pages(report_dir: Path, result: dict, timelines: dict, book: Codebook | None = None) -> list[Path]:
    book = book or load_codebook()
    written = []
    for case in result["cases"]:
        path = report_dir / case_page_name(case["case_id"])
        atomic_write(path, render_case_page(case, timelines, book))
        written.append(path)
    atomic_write(report_dir / "cases.html", render_cases_index(result, book))
    return written + [report_dir / "cases.html"]
