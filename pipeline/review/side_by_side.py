"""The report with human layers beside the model's codes (``rupture-coder report RUN --human ...``).

Each session page shows, on every turn a human coded, the human codes (they drive the highlight,
the episodes and the 3RS-style ratings, which are recomputed from them) and the model's codes
beside them; a turn where they differ is marked. The page header adds per-session agreement
(percent and Cohen's kappa of the rupture and repair layers over the turns the humans coded).
Turns no human coded keep the model's codes. Where several annotators coded a turn, the majority
code of each layer counts (ties: the first annotator by id). The model's own report is left as it
is: this report goes to its own folder.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.codebook import Codebook, load_codebook
from pipeline.episodes import CodedTurn, timeline
from pipeline.errors import ConfigError
from pipeline.io.files import atomic_write, dumps, safe_filename, write_json
from pipeline.io.run_folder import RunFolder
from pipeline.review.agreement import pair_stats
from pipeline.review.importing import read_human_layer

SINGLE = {"client": ("rupture", "markers"), "therapist": ("repair", "strategies")}


def human_codes(paths: list[str | Path], book: Codebook) -> dict[tuple[str, int], dict]:
    """``{(session_id, turn): {"sources": [...], layer: codes}}``: per layer the majority coding
    of the annotators who coded the turn (ties to the first by id)."""
    by_turn: dict[tuple[str, int], dict[str, dict[str, list[str]]]] = {}
    for path in paths:
        for r in read_human_layer(path, book):
            coder = by_turn.setdefault((r["session_id"], int(r["turn"])), {}).setdefault(r["source"], {})
            coder.setdefault(r["layer"], []).append(r["code"])
    out = {}
    for key, coders in by_turn.items():
        sources = sorted(coders)
        entry = {"sources": sources}
        for layer in book.layers:
            votes = Counter(tuple(sorted(coders[s].get(layer, ()))) for s in sources)
            best = max(votes.values())
            entry[layer] = next(tuple(sorted(coders[s].get(layer, ()))) for s in sources
                                if votes[tuple(sorted(coders[s].get(layer, ())))] == best)
        out[key] = entry
    return out


def merged_session(turns: list[dict], human: dict, sid: str, book: Codebook) -> tuple[list[dict], dict]:
    """The turn records with human codes where they exist (and the model's beside them), and the
    per-session agreement on the single-code layers."""
    out, pairs = [], {"rupture": [], "repair": []}
    for t in turns:
        h = human.get((sid, int(t["turn"])))
        role = t.get("speaker")
        if not h or role not in SINGLE:
            out.append(t)
            continue
        single, multi = SINGLE[role]
        hs, hm = (h.get(single) or (None,))[0], list(h.get(multi) or ())
        if hs is None:
            out.append(t)
            continue
        ms, mm = t.get(single), [m["code"] for m in t.get(multi) or []]
        pairs[single].append((hs, ms))  # a turn the model left uncoded (None) is not compared
        agree = hs == ms and sorted(hm) == sorted(mm)
        new = dict(t)
        new[single] = hs
        new[multi] = [{"code": c, "score": None} for c in hm]
        new["compare"] = {"sources": [s.split(":", 1)[1] for s in h["sources"]], "agree": agree,
                          "model": " · ".join([ms or "–", *mm])}
        out.append(new)
    agreement = {}
    for layer, p in pairs.items():
        if p:  # the agreement report's own pairwise figures (review/agreement.py)
            stats = pair_stats([h for h, _ in p], [m for _, m in p], list(book.layer(layer).values))
            agreement[layer] = {"turns": stats["n_items"], "percent": round(stats["percent_agreement"], 1),
                                "kappa": stats["cohen_kappa"]}
    return out, agreement


def _coded(t: dict, human: bool) -> CodedTurn:
    scores = t.get("rupture_scores") or {}
    p = 1.0 if human else (1.0 - float(scores.get("none") or 0.0) if scores else 0.0)
    return CodedTurn(int(t["turn"]), str(t.get("speaker")), t.get("start"), t.get("end"), t.get("rupture"),
                     p if t.get("speaker") == "client" else 1.0, tuple(m["code"] for m in t.get("markers") or []),
                     t.get("repair"), 1.0 if human else float(t.get("repair_score") or 0.0),
                     tuple(s["code"] for s in t.get("strategies") or []))


def session_row(row: dict, turns: list[dict], tl: dict, agreement: dict) -> dict:
    ratings = tl["ratings"]
    counts = Counter(t.get("rupture") for t in turns if t.get("speaker") == "client")
    return {**row, "withdrawal_turns": counts.get("withdrawal", 0), "confrontation_turns": counts.get("confrontation", 0),
            "repair_attempts": sum(t.get("repair") == "repair" for t in turns),
            "episodes": ratings["episodes"], "resolved_episodes": ratings["resolved_episodes"],
            "rating_withdrawal": ratings["withdrawal"], "rating_confrontation": ratings["confrontation"],
            "rating_resolution": ratings["resolution"], "human_agreement": agreement,
            "markers": dict(Counter(m["code"] for t in turns for m in t.get("markers") or [])),
            "strategies": dict(Counter(s["code"] for t in turns for s in t.get("strategies") or []))}


def write_side_by_side(run_dir: str | Path, layers: list[str | Path], out: str | Path,
                       book: Codebook | None = None) -> dict:
    """Render the report of ``run_dir`` with the human ``layers`` into ``out``; returns counts."""
    from pipeline.report.html import page_name, render_index, render_session_report

    book = book or load_codebook()
    run = RunFolder(run_dir)
    out = Path(out)
    if out.resolve() in (Path(run_dir).resolve(), (Path(run_dir) / "report").resolve()):
        raise ConfigError("--out would overwrite the run's own report", path=str(out),
                          fix="choose another folder, e.g. RUN/report-human")
    human = human_codes(layers, book)
    by_session: dict[str, list[dict]] = {}
    for r in run.iter_turns():
        by_session.setdefault(r.session_id, []).append(r.to_dict())
    rows = run.session_rows()
    new_rows, totals = [], Counter()
    for row in rows:
        sid = str(row["session_id"])
        turns, agreement = merged_session(by_session.get(sid, []), human, sid, book)
        coded = [_coded(t, "compare" in t) for t in turns]
        tl = {"session_id": sid, "model": row.get("model"), **timeline(coded)}
        new = session_row(row, turns, tl, agreement)
        new_rows.append(new)
        totals["sessions_with_human_codes"] += bool(agreement)
        totals["turns_compared"] += sum(a["turns"] for a in agreement.values())
        totals["turns_disagreeing"] += sum(1 for t in turns if "compare" in t and not t["compare"]["agree"])
        atomic_write(out / page_name(sid), render_session_report(new, turns, tl, book))
        write_json(out / "timelines" / f"{safe_filename(sid)}.json", tl)
    info = {"human layers": ", ".join(str(p) for p in layers), "run": str(run_dir),
            **{k.replace("_", " "): v for k, v in sorted(totals.items())}}
    atomic_write(out / "index.html", render_index(new_rows, info, book))
    atomic_write(out / "sessions.jsonl", "".join(dumps(r) + "\n" for r in new_rows))
    return dict(totals)
