"""Regenerate the bundled example corpus from the project's constructed corpus (original text
written for the project), in four real-world formats. Run from the repository root:

    python examples/make_examples.py
"""

from __future__ import annotations

import csv
from datetime import datetime
import json
from pathlib import Path

import docx

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "corpus" / "constructed"


def session(part: str, session_id: str) -> list[dict]:
    """The session's turns with names and other identifiers replaced by typed placeholders,
    as a properly de-identified transcript would have them (the fictional names of the
    constructed corpus would otherwise, rightly, stop the de-identification gate)."""
    from pipeline.preprocess.deid import DeidConfig, redact_session, scan_session
    from pipeline.io.readers import read_file

    rows = [json.loads(line) for line in (SRC / f"{part}.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["session_id"] == session_id]
    parsed = next(s for s in read_file(SRC / f"{part}.jsonl").sessions if s.session_id == session_id)
    redacted = redact_session(parsed, scan_session(parsed, DeidConfig(mode="redact")))
    assert len(redacted.turns) == len(rows)
    return [{**r, "text": t.text} for r, t in zip(rows, redacted.turns)]


def vtt_time(seconds: float) -> str:
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:06.3f}"


def write_vtt(turns: list[dict], path: Path) -> None:
    lines = ["WEBVTT", ""]
    for t in turns:
        lines += [f"{vtt_time(t['start'])} --> {vtt_time(t['end'])}", f"<v {t['speaker_id']}>{t['text']}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_text(turns: list[dict], path: Path) -> None:
    prefix = {"therapist": "T", "client": "C", "other": "I"}
    lines = ["Session transcript (constructed example for rupture-coder)", ""]
    for t in turns:
        lines += [f"{prefix[t['speaker']]}{t['turn'] + 1}: {t['text']}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_docx(turns: list[dict], path: Path) -> None:
    document = docx.Document()
    document.add_heading("Couple session (constructed example)", level=1)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Speaker", "Text"
    for t in turns:
        row = table.add_row()
        row.cells[0].text, row.cells[1].text = t["speaker_id"], t["text"]
    document.core_properties.created = datetime(2026, 1, 1)
    document.core_properties.modified = datetime(2026, 1, 1)
    document.save(str(path))


def write_csv(sessions: list[list[dict]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["session_id", "turn", "speaker", "start", "end", "text"])
        for turns in sessions:
            for t in turns:
                writer.writerow([t["session_id"], t["turn"], t["speaker_id"], t["start"] or "", t["end"] or "", t["text"]])


def first_with(part: str, predicate) -> str:
    meta = [json.loads(line) for line in (SRC / f"{part}.sessions.jsonl").read_text(encoding="utf-8").splitlines()]
    for m in meta:
        turns = session(part, m["session_id"])
        if predicate(m, turns):
            return m["session_id"]
    raise SystemExit(f"no session in {part} matches")


def main() -> None:
    out = ROOT / "examples"
    timed = first_with("cbt", lambda m, t: m["setting"] == "telehealth" and t[0]["start"] is not None
                       and m["difficulty"] == "difficult")
    write_vtt(session("cbt", timed), out / "telehealth_cbt_session.vtt")
    untimed = first_with("dyn", lambda m, t: t[0]["start"] is None and m["difficulty"] == "difficult"
                         and {x["speaker"] for x in t} == {"therapist", "client"}
                         and len({x["speaker_id"] for x in t}) == 2)
    write_text(session("dyn", untimed), out / "psychodynamic_session.txt")
    couple = first_with("cpl", lambda m, t: len({x["speaker_id"] for x in t if x["speaker"] == "client"}) == 2
                        and "Interpreter" not in {x["speaker_id"] for x in t})
    write_docx(session("cpl", couple), out / "couple_session.docx")
    mi = [first_with("mi", lambda m, t: m["style"] == "asr_like" and m["difficulty"] == "difficult"),
          first_with("mi", lambda m, t: m["difficulty"] == "good")]
    write_csv([session("mi", s) for s in mi], out / "mi_sessions.csv")
    print("examples written:", timed, untimed, couple, *mi)


if __name__ == "__main__":
    main()
