"""The supervisor report (pipeline/report.py): escaping, self-containment, determinism, content."""

from __future__ import annotations

import dataclasses
import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.codebook import load_codebook
from pipeline.episodes import CodedTurn, timeline
from pipeline.errors import RuptureCoderError
from pipeline.report.html import (json_for_script, render_index, render_session_report, safe_filename,
                             write_report)

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'


def turn(n, speaker, text="words", start=None, rupture=None, p=0.0, markers=(), repair=None, r=0.0,
         strategies=(), sid="s1", speaker_id=None, nonverbal=()):
    """One turn record shaped like pipeline.coding.apply.turn_records."""
    coded_client = speaker == "client"
    scores = {"none": round(1 - p, 4), "withdrawal": round(p, 4) if rupture == "withdrawal" else 0.0,
              "confrontation": round(p, 4) if rupture == "confrontation" else 0.0} if coded_client else None
    return {
        "session_id": sid, "turn": n, "source_turns": [str(n + 1)], "speaker": speaker,
        "speaker_id": speaker_id or speaker[0].upper(), "start": start,
        "end": None if start is None else start + 5.0, "text": text, "clean_text": text,
        "nonverbal": list(nonverbal),
        "rupture": (rupture or "none") if coded_client else None, "rupture_scores": scores,
        "markers": [{"code": c, "score": 0.8} for c in markers],
        "repair": (repair or "none") if speaker == "therapist" else None,
        "repair_score": r if speaker == "therapist" else None,
        "strategies": [{"code": c, "score": 0.7} for c in strategies], "uncertainty": 0.1, "model": "m@1",
    }


def inputs(turns, sid="s1"):
    """(session row, turns, timeline) for turn records, with the real episode rules."""
    coded = [CodedTurn(t["turn"], t["speaker"], t["start"], t["end"], t["rupture"],
                       1 - t["rupture_scores"]["none"] if t["rupture_scores"] else 0.0,
                       tuple(m["code"] for m in t["markers"]), t["repair"], t["repair_score"] or 0.0,
                       tuple(s["code"] for s in t["strategies"])) for t in turns]
    tl = {"session_id": sid, "model": "m@1", **timeline(coded)}
    ratings = tl["ratings"]
    session = {
        "session_id": sid, "source_file": f"{sid}.csv", "format": "csv", "turns": len(turns),
        "client_turns": sum(t["speaker"] == "client" for t in turns),
        "therapist_turns": sum(t["speaker"] == "therapist" for t in turns),
        "other_turns": sum(t["speaker"] == "other" for t in turns), "duration_s": None,
        "withdrawal_turns": sum(t["rupture"] == "withdrawal" for t in turns),
        "confrontation_turns": sum(t["rupture"] == "confrontation" for t in turns),
        "repair_attempts": sum(t["repair"] == "repair" for t in turns),
        "episodes": ratings["episodes"], "resolved_episodes": ratings["resolved_episodes"],
        "rating_withdrawal": ratings["withdrawal"], "rating_confrontation": ratings["confrontation"],
        "rating_resolution": ratings["resolution"],
        "markers": {"withdrawal.denial": 1, "confrontation.complaint_progress": 1},
        "strategies": {"repair.invite_exploration": 1}, "model": "m@1",
    }
    return session, turns, tl


def small_session(sid="s1", timed=True, text="I don't know."):
    t = (lambda k: 10.0 * k) if timed else (lambda k: None)
    return inputs([
        turn(0, "therapist", "How was the week?", t(0), sid=sid),
        turn(1, "client", text, t(1), "withdrawal", 0.9, ["withdrawal.denial"], sid=sid,
             nonverbal=["[sighs]"]),
        turn(2, "therapist", "It sounds hard to talk about.", t(2), repair="repair", r=0.8,
             strategies=["repair.validate_defense"], sid=sid),
        turn(3, "client", "This is pointless.", t(3), "confrontation", 0.6,
             ["confrontation.complaint_progress"], sid=sid),
        turn(4, "therapist", "Can we look at what just happened?", t(4), repair="repair", r=0.9,
             strategies=["repair.invite_exploration"], sid=sid),
        turn(5, "client", "Okay. Yes.", t(5), sid=sid),
        turn(6, "other", "[phone rings]", t(6), sid=sid),
    ], sid)


def render(*parts, **kw):
    return render_session_report(*parts, **kw)


def data_json(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]


def parse(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    return p


# --- escaping -------------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [XSS_SCRIPT, XSS_ATTR])
def test_report_escapes_transcript_text_and_session_ids(payload):
    session, turns, tl = small_session(sid=f"s{payload}", text=f"before {payload} after")
    turns[0]["speaker_id"] = payload
    turns[1]["nonverbal"] = [payload]
    html = render(session, turns, tl)
    assert payload not in html
    assert "&lt;" in html
    tags = parse(html)
    assert "img" not in tags.tags
    assert tags.tags.count("script") == 2  # the JSON data block and the page script
    assert not any(k.startswith("on") for _, k, _ in tags.attrs)
    assert data_json(html)["turns"][1]["tx"] == f"before {payload} after"


@pytest.mark.parametrize("payload", [XSS_SCRIPT, XSS_ATTR])
def test_report_index_escapes_session_ids_and_run_info(payload):
    session, _, _ = small_session(sid=payload)
    html = render_index([session], {"note": payload, "nested": {"k": payload}})
    assert payload not in html
    tags = parse(html)
    assert "img" not in tags.tags and tags.tags.count("script") == 1


def test_report_json_for_script_escapes_closing_tags_and_comments():
    text = str(json_for_script({"a": "</script><!-- & \u2028"}))
    assert "</" not in text and "<!--" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"a": "</script><!-- & \u2028"}


# --- self-contained, deterministic ----------------------------------------------------------

def test_report_has_no_external_urls():
    session, turns, tl = small_session()
    for html in (render(session, turns, tl), render_index([session], {"model": "m@1"})):
        assert "http://" not in html and "https://" not in html
        assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?://|[a-z]+:)""", html, re.I)
        assert "@import" not in html and "url(" not in html
        assert "default-src 'none'" in unescape(html)


def test_report_output_is_deterministic():
    session, turns, tl = small_session()
    shuffled = {**session, "markers": dict(reversed(list(session["markers"].items())))}
    first = render(session, turns, tl)
    assert first == render(shuffled, list(reversed(turns)), tl)
    assert render_index([session, {**session, "session_id": "b"}], {"k": 1}) == \
        render_index([{**session, "session_id": "b"}, session], {"k": 1})


# --- content --------------------------------------------------------------------------------

def test_report_has_turn_ids_episode_and_segment_rows():
    session, turns, tl = small_session()
    html = render(session, turns, tl)
    for t in turns:
        assert f'id="turn-{t["turn"]}"' in html
        assert f'data-t="{t["turn"]}"' in html  # one timeline mark per turn
    assert html.count('class="m ') == len(turns)
    assert len(tl["episodes"]) >= 1
    for e in tl["episodes"]:
        assert f'id="episode-{e["id"]}"' in html and f'href="#episode-{e["id"]}"' in html
    assert html.count('<tr class="segment"') == len(tl["segments"])
    assert "<svg" in html and 'class="tl"' in html


def test_report_uses_codebook_display_names_and_colours():
    book = load_codebook()
    session, turns, tl = small_session()
    html = render(session, turns, tl)
    for code in ("withdrawal.denial", "repair.validate_defense", "withdrawal"):
        c = book.code(code)
        assert c.display in html and c.colour in html
    assert "Model suggestions" in html and "3RS-style" in html
    assert "[sighs]" in html  # non-verbal notes shown


def test_report_honours_a_given_codebook():
    book = load_codebook()
    layer = book.layer("markers")
    codes = tuple(dataclasses.replace(c, display="Flat denial", colour="#123456")
                  if c.code == "withdrawal.denial" else c for c in layer.codes)
    custom = dataclasses.replace(
        book, layers={**book.layers, "markers": dataclasses.replace(layer, codes=codes)})
    session, turns, tl = small_session()
    html = render(session, turns, tl, codebook=custom)
    assert "Flat denial" in html and "#123456" in html


def test_report_ignores_malformed_codebook_colours():
    book = load_codebook()
    layer = book.layer("rupture")
    codes = tuple(dataclasses.replace(c, colour="red;background:url(x)") for c in layer.codes)
    custom = dataclasses.replace(
        book, layers={**book.layers, "rupture": dataclasses.replace(layer, codes=codes)})
    session, turns, tl = small_session()
    assert "url(" not in render(session, turns, tl, codebook=custom)


@pytest.mark.parametrize("case", ["no_episodes", "no_times", "one_role", "one_turn", "no_turns"])
def test_report_renders_edge_sessions(case):
    turns = {
        "no_episodes": [turn(0, "therapist", "Hi", 0.0), turn(1, "client", "Hello", 5.0)],
        "no_times": [turn(k, "client" if k % 2 else "therapist") for k in range(5)],
        "one_role": [turn(k, "client", rupture="withdrawal", p=0.8) for k in range(3)],
        "one_turn": [turn(0, "client", "Only words")],
        "no_turns": [],
    }[case]
    session, turns, tl = inputs(turns)
    html = render(session, turns, tl)
    assert all(f'id="turn-{t["turn"]}"' in html for t in turns)
    assert len(data_json(html)["turns"]) == len(turns)
    if not tl["episodes"]:
        assert "No rupture episodes were coded" in html


def test_report_long_session_stays_reasonable():
    turns = [turn(k, "client" if k % 2 else "therapist", f"turn {k}", 7.0 * k,
                  "withdrawal" if k % 10 == 1 else None, 0.8 if k % 10 == 1 else 0.1) for k in range(2000)]
    session, turns, tl = inputs(turns)
    html = render(session, turns, tl)
    svg = html[html.index("<svg"):html.index("</svg>")]
    assert svg.count('class="m ') == 2000
    assert len(svg) < 400_000
    assert len(html) < 3_000_000


# --- index ----------------------------------------------------------------------------------

def test_report_index_has_sortable_table_and_links():
    a, _, _ = small_session("Alpha Session")
    b, _, _ = small_session("b")
    html = render_index([b, a], {"model": "m@1"})
    assert '<table id="sessions" class="sortable">' in html
    assert html.count('data-sort="num"') >= 8 and 'data-sort="text"' in html
    assert f'href="{safe_filename("Alpha Session")}.html"' in html and 'href="b.html"' in html
    assert html.index("Alpha Session") < html.index('href="b.html"')  # sorted by id
    assert 'data-ready' in html and "aria-sort" in html


def test_report_index_with_no_sessions():
    assert "No sessions were coded" in render_index([], {})


# --- safe_filename and writing --------------------------------------------------------------

def test_report_safe_filename_is_safe_and_collision_free():
    ids = ["a b", "a_b", "a-b", "A-B", "a-b--5d41402abc4b", "a/b", "a\\b", "a--b", "index", "INDEX",
           "con", "", "..", ".hidden", "é", "e", "x" * 300, "x" * 301, "s1", "S1", "a.b", "a..b"]
    names = [safe_filename(i) for i in ids]
    assert len({n.lower() for n in names}) == len(ids)
    for n in names:
        assert re.fullmatch(r"[a-z0-9_][a-z0-9._-]*", n) and len(n) <= 100
        assert n != "index"
    assert safe_filename("s1") == "s1" and safe_filename("a-b") == "a-b"
    assert safe_filename("A-B") == safe_filename("A-B")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_report_safe_filename_distinct_ids_give_distinct_names(a, b):
    if a != b:
        assert safe_filename(a).lower() != safe_filename(b).lower()


def test_report_write_report_writes_pages_atomically(tmp_path: Path):
    one, two = small_session("s1"), small_session("Client B / 2")
    sessions = [one[0], two[0]]
    paths = write_report(tmp_path, sessions, {"s1": one[1], "Client B / 2": two[1]},
                         [one[2], two[2]], {"model": "m@1"})
    folder = tmp_path / "report"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["index.html", "s1.html", f"{safe_filename('Client B / 2')}.html"])
    assert paths[-1] == folder / "index.html"
    assert (folder / "s1.html").read_text(encoding="utf-8") == render(*one)
    write_report(tmp_path, sessions, {"s1": one[1], "Client B / 2": two[1]},
                 {"s1": one[2], "Client B / 2": two[2]}, {"model": "m@1"})
    assert len(list(folder.iterdir())) == 3  # replaced in place, no temporary files left


def test_report_write_report_rejects_missing_timeline(tmp_path: Path):
    session, turns, _ = small_session("s1")
    with pytest.raises(RuptureCoderError, match=r"session s1.*timeline is missing"):
        write_report(tmp_path, [session], {"s1": turns}, {}, {})
    assert not (tmp_path / "report").exists()


def test_report_write_report_rejects_duplicate_ids(tmp_path: Path):
    session, turns, tl = small_session("s1")
    with pytest.raises(RuptureCoderError, match="duplicate session id"):
        write_report(tmp_path, [session, session], {"s1": turns}, {"s1": tl}, {})
