"""The report pages in a real browser: headless Chromium renders them, runs their scripts
without console errors, and draws them (Debian package ``chromium``; CI installs it via apt)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pipeline.episodes import CodedTurn, timeline
from pipeline.report.html import safe_filename, write_report

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr",
         "--v=0", "--hide-scrollbars"]
PAGE_ERRORS = re.compile(r"Uncaught|CONSOLE")  # the pages log nothing: any console line is a fault

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (Debian package "
                       "chromium: apt-get install -y chromium); CI installs it"),
]


def _turn(n, speaker, text, start, rupture=None, p=0.1, repair=None, r=0.1):
    client = speaker == "client"
    return {
        "session_id": "s 1", "turn": n, "source_turns": [str(n)], "speaker": speaker,
        "speaker_id": speaker[0].upper(),
        "start": start, "end": start + 6.0, "text": text, "clean_text": text, "nonverbal": [],
        "rupture": (rupture or "none") if client else None,
        "rupture_scores": {"none": 1 - p, "withdrawal": p if rupture != "confrontation" else 0.0,
                           "confrontation": p if rupture == "confrontation" else 0.0} if client else None,
        "markers": [{"code": "withdrawal.minimal_response", "score": 0.8}] if rupture == "withdrawal" else [],
        "repair": (repair or "none") if speaker == "therapist" else None,
        "repair_score": r if speaker == "therapist" else None,
        "strategies": [{"code": "repair.invite_exploration", "score": 0.7}] if repair else [],
        "uncertainty": 0.2, "model": "m@1",
    }


def _session(sid: str, n: int = 40):
    turns = []
    for k in range(n):
        if k % 2:
            kind = "withdrawal" if k % 6 == 1 else ("confrontation" if k % 10 == 3 else None)
            text = f"Client words {k} <b>not bold</b>"
            turns.append(_turn(k, "client", text, 9.0 * k, kind, 0.85 if kind else 0.2))
        else:
            hit = k % 4 == 2
            turns.append(_turn(k, "therapist", f"Therapist words {k}", 9.0 * k, "repair" if hit else None,
                               0.8 if hit else 0.1))
    coded = [CodedTurn(t["turn"], t["speaker"], t["start"], t["end"], t["rupture"],
                       1 - t["rupture_scores"]["none"] if t["rupture_scores"] else 0.0,
                       tuple(m["code"] for m in t["markers"]), t["repair"], t["repair_score"] or 0.0,
                       tuple(s["code"] for s in t["strategies"])) for t in turns]
    tl = {"session_id": sid, "model": "m@1", **timeline(coded)}
    r = tl["ratings"]
    row = {"session_id": sid, "source_file": "x.vtt", "format": "vtt", "turns": n, "client_turns": n // 2,
           "therapist_turns": n - n // 2, "other_turns": 0, "duration_s": 9.0 * n, "withdrawal_turns": 3,
           "confrontation_turns": 2, "repair_attempts": 5, "episodes": r["episodes"],
           "resolved_episodes": r["resolved_episodes"], "rating_withdrawal": r["withdrawal"],
           "rating_confrontation": r["confrontation"], "rating_resolution": r["resolution"],
           "markers": {"withdrawal.minimal_response": 3}, "strategies": {"repair.invite_exploration": 5},
           "model": "m@1"}
    return row, turns, tl


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out")
    items = [_session("s 1"), _session("<script>alert(1)</script>", 12)]
    write_report(out, [i[0] for i in items], {i[0]["session_id"]: i[1] for i in items},
                 {i[0]["session_id"]: i[2] for i in items}, {"model": "m@1"})
    return out / "report"


def chromium(page: Path, tmp_path: Path, *extra: str, fragment: str = "") -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri() + fragment]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def assert_no_page_errors(proc: subprocess.CompletedProcess) -> None:
    errors = [line for line in proc.stderr.splitlines() if PAGE_ERRORS.search(line)]
    assert not errors, "\n".join(errors)


def test_report_browser_session_page_renders_and_runs(report: Path, tmp_path: Path):
    proc = chromium(report / f"{safe_filename('s 1')}.html", tmp_path, "--dump-dom", fragment="#turn-7")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert_no_page_errors(proc)
    assert re.search(r'<body[^>]*data-ready="1"', dom), "the page script did not finish"
    assert re.search(r'<article id="turn-7" class="[^"]*\bsel\b', dom), "the script did not select the turn"
    assert re.search(r'<rect class="[^"]*\bsel\b[^"]*" data-t="7"', dom)
    assert all(f'id="turn-{k}"' in dom for k in range(40))
    assert len(re.findall(r'<rect class="m m-[ct]', dom)) == 40
    assert 'id="episode-1"' in dom and '<tr class="segment"' in dom
    assert "<b>" not in dom and "&lt;b&gt;not bold&lt;/b&gt;" in dom


def test_report_browser_index_is_sortable_and_escaped(report: Path, tmp_path: Path):
    proc = chromium(report / "index.html", tmp_path, "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_no_page_errors(proc)
    dom = proc.stdout
    assert re.search(r'<body[^>]*data-ready="1"', dom)
    assert '<table id="sessions" class="sortable">' in dom
    assert "<script>alert(1)</script>" not in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert f'href="{safe_filename("<script>alert(1)</script>")}.html"' in dom


@pytest.mark.parametrize("page", ["session", "index"])
def test_report_browser_screenshot_is_drawn(report: Path, tmp_path: Path, page: str):
    name = "index.html" if page == "index" else f"{safe_filename('s 1')}.html"
    shot = tmp_path / "shot.png"
    proc = chromium(report / name, tmp_path, f"--screenshot={shot}", "--window-size=1280,900")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_no_page_errors(proc)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000


def test_report_browser_index_of_thousands_is_paged_and_filterable(tmp_path: Path):
    from pipeline.report.html import render_index

    rows = [_session(f"s{k:04d}", 4)[0] for k in range(1500)]
    page = tmp_path / "index.html"
    page.write_text(render_index(rows, {"model": "m@1"}), encoding="utf-8")
    proc = chromium(page, tmp_path, "--dump-dom")
    assert_no_page_errors(proc)
    dom = proc.stdout
    assert re.search(r'<body[^>]*data-ready="1"', dom)
    assert 'data-shown="100"' in dom and "1500 of 1500 rows · page 1 of 15" in dom
    assert len(re.findall(r'<tr data-i="\d+">', dom)) == 100  # the others are hidden
    assert len(re.findall(r'<tr data-i="\d+" hidden="">', dom)) == 1400


def test_report_browser_case_pages_render(tmp_path: Path):
    from pipeline.coding.cases import build_cases
    from pipeline.io.manifest import ManifestRow
    from pipeline.report.cases import write_case_pages

    items = [_session(f"s{k}", 20) for k in range(4)]
    manifest = [ManifestRow(f"s{k}", "client 1", "t1" if k % 2 else "t2", k + 1, None, k + 2) for k in range(4)]
    result = build_cases([i[0] for i in items], manifest)
    write_case_pages(tmp_path, result, {i[0]["session_id"]: i[2] for i in items})
    for name in ("cases.html", "case-client_1.html"):
        page = next(tmp_path.glob(name.replace("client_1", "client*")))
        proc = chromium(page, tmp_path, "--dump-dom")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert_no_page_errors(proc)
        assert re.search(r'<body[^>]*data-ready="1"', proc.stdout)
    case_dom = chromium(next(tmp_path.glob("case-client*.html")), tmp_path, "--dump-dom").stdout
    assert case_dom.count('<svg class="strip"') == 4 and "<polyline" in case_dom
