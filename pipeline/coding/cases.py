"""A case across sessions: the coded sessions of one client (a sessions manifest groups and orders
them), their rupture and repair counts and 3RS-style ratings in order, and a summary per therapist.

Input: the run's session rows (``sessions.jsonl``) and the manifest rows
(:mod:`pipeline.io.manifest`). Output: JSON-ready dicts; written by :mod:`pipeline.run.cases`.
"""

from __future__ import annotations

from statistics import mean

from pipeline.io.manifest import ManifestRow

SESSION_COLUMNS = ("case_id", "position", "session_number", "date", "therapist_id", "session_id", "turns",
                   "client_turns", "withdrawal_turns", "confrontation_turns", "rupture_turns_per_100_client_turns",
                   "repair_attempts", "episodes", "resolved_episodes", "resolved_share", "rating_withdrawal",
                   "rating_confrontation", "rating_resolution")
RATINGS = ("rating_withdrawal", "rating_confrontation", "rating_resolution")


def _r(x, digits: int = 3):
    return None if x is None else round(float(x), digits)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return _r(mean(values)) if values else None


def session_entry(row: dict, m: ManifestRow, position: int) -> dict:
    client = int(row.get("client_turns") or 0)
    ruptures = int(row.get("withdrawal_turns") or 0) + int(row.get("confrontation_turns") or 0)
    episodes = int(row.get("episodes") or 0)
    resolved = int(row.get("resolved_episodes") or 0)
    return {
        "case_id": m.case_id, "position": position, "session_number": m.number, "date": m.date,
        "therapist_id": m.therapist_id, "session_id": m.session_id, "turns": int(row.get("turns") or 0),
        "client_turns": client, "withdrawal_turns": int(row.get("withdrawal_turns") or 0),
        "confrontation_turns": int(row.get("confrontation_turns") or 0),
        "rupture_turns_per_100_client_turns": _r(100.0 * ruptures / client, 1) if client else None,
        "repair_attempts": int(row.get("repair_attempts") or 0), "episodes": episodes, "resolved_episodes": resolved,
        "resolved_share": _r(resolved / episodes) if episodes else None,
        **{k: row.get(k) for k in RATINGS},
    }


def build_cases(sessions: list[dict], manifest: list[ManifestRow]) -> dict:
    """``{"cases": [...], "therapists": [...], "unmatched_manifest_rows": n, "sessions_without_case": n}``.
    A case's sessions are ordered by session number, else date, else id; a manifest row naming no
    coded session is counted, not guessed."""
    by_id = {str(s["session_id"]): s for s in sessions}
    grouped: dict[str, list[ManifestRow]] = {}
    unmatched = 0
    for m in manifest:
        if m.session_id not in by_id:
            unmatched += 1
            continue
        grouped.setdefault(m.case_id, []).append(m)
    cases = []
    for case_id in sorted(grouped):
        rows = sorted(grouped[case_id], key=lambda m: m.order)
        entries = [session_entry(by_id[m.session_id], m, k) for k, m in enumerate(rows, start=1)]
        episodes = sum(e["episodes"] for e in entries)
        resolved = sum(e["resolved_episodes"] for e in entries)
        cases.append({
            "case_id": case_id, "therapists": sorted({e["therapist_id"] for e in entries if e["therapist_id"]}),
            "n_sessions": len(entries), "episodes": episodes, "resolved_episodes": resolved,
            "resolved_share": _r(resolved / episodes) if episodes else None,
            "repair_attempts": sum(e["repair_attempts"] for e in entries),
            "rupture_turns": sum(e["withdrawal_turns"] + e["confrontation_turns"] for e in entries),
            **{f"mean_{k}": _mean(e[k] for e in entries) for k in RATINGS},
            "sessions": entries,
        })
    in_cases = {e["session_id"] for c in cases for e in c["sessions"]}
    return {"cases": cases, "therapists": therapist_summary(cases), "unmatched_manifest_rows": unmatched,
            "sessions_without_case": sum(1 for s in sessions if str(s["session_id"]) not in in_cases)}


def therapist_summary(cases: list[dict]) -> list[dict]:
    """Per therapist, over the sessions they held (a case may have several therapists)."""
    by: dict[str, list[dict]] = {}
    for c in cases:
        for e in c["sessions"]:
            by.setdefault(e["therapist_id"] or "(not given)", []).append(e)
    out = []
    for tid in sorted(by):
        entries = by[tid]
        episodes = sum(e["episodes"] for e in entries)
        resolved = sum(e["resolved_episodes"] for e in entries)
        out.append({"therapist_id": tid, "cases": len({e["case_id"] for e in entries}), "sessions": len(entries),
                    "episodes": episodes, "resolved_episodes": resolved,
                    "resolved_share": _r(resolved / episodes) if episodes else None,
                    "repair_attempts": sum(e["repair_attempts"] for e in entries),
                    **{f"mean_{k}": _mean(e[k] for e in entries) for k in RATINGS}})
    return out
