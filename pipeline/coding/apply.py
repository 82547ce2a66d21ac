"""Coding sessions with a model bundle, and the records written for each coded turn/session.

Scoring (``RuptureCoder.predict_proba``) and deciding are the model's; this module only shapes
results into the output records documented in docs/formats-and-outputs.md (turns.jsonl, sessions.jsonl).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pipeline.modeling.bundle import Bundle
from pipeline.modeling.estimator import TurnDecision
from pipeline.episodes import CodedTurn, timeline
from pipeline.records import Annotation, CodeScore, Session, TurnRecord

ROUND = 4


@dataclass(frozen=True)
class CodedSession:
    session: Session
    decisions: tuple[TurnDecision, ...]
    model: str  # name@version

    @property
    def source(self) -> str:
        return f"model:{self.model}"


def code_sessions(sessions: list[Session], bundle: Bundle) -> list[CodedSession]:
    """Score and decide every turn of the sessions (one embedding batch for all of them)."""
    if not sessions:
        return []
    model_name = f"{bundle.config['name']}@{bundle.config['version']}"
    scores = bundle.model.predict_proba(sessions)
    return [CodedSession(s, tuple(bundle.model.decide(s, sc)), model_name) for s, sc in zip(sessions, scores)]


def _r(x):
    return None if x is None else round(float(x), ROUND)


def coded_turns(coded: CodedSession) -> list[CodedTurn]:
    out = []
    for t, d in zip(coded.session.turns, coded.decisions):
        p_rupture = 1 - d.rupture_scores["none"] if d.rupture_scores else 0.0
        out.append(CodedTurn(t.index, t.speaker_role, t.start_s, t.end_s, d.rupture, p_rupture,
                             tuple(m for m, _ in d.markers), d.repair,
                             d.repair_score if d.repair_score is not None else 0.0,
                             tuple(s for s, _ in d.strategies)))
    return out


def turn_records(coded: CodedSession) -> list[TurnRecord]:
    """One record per turn (fields: :class:`pipeline.records.TurnRecord`), scores and times rounded."""
    out = []
    for t, d in zip(coded.session.turns, coded.decisions):
        out.append(TurnRecord(
            session_id=coded.session.session_id, turn=t.index, source_turns=tuple(t.source.turn_ids),
            source_lines=tuple(t.source.lines), speaker=t.speaker_role, speaker_id=t.speaker_id,
            start=_r(t.start_s), end=_r(t.end_s), text=t.text, clean_text=t.clean_text, nonverbal=tuple(t.nonverbal),
            rupture=d.rupture,
            rupture_scores={k: _r(v) for k, v in d.rupture_scores.items()} if d.rupture_scores else None,
            markers=tuple(CodeScore(c, _r(s)) for c, s in d.markers),
            repair=d.repair, repair_score=_r(d.repair_score),
            strategies=tuple(CodeScore(c, _r(s)) for c, s in d.strategies),
            uncertainty=_r(d.uncertainty), model=coded.model,
        ))
    return out


def session_timeline(coded: CodedSession) -> dict:
    return {"session_id": coded.session.session_id, "model": coded.model, **timeline(coded_turns(coded))}


def session_record(coded: CodedSession, tl: dict) -> dict:
    """One row per session: counts, episodes and 3RS-style whole-session ratings."""
    s = coded.session
    decisions = coded.decisions
    rupture = Counter(d.rupture for d in decisions if d.rupture)
    markers = Counter(m for d in decisions for m, _ in d.markers)
    strategies = Counter(c for d in decisions for c, _ in d.strategies)
    roles = s.role_counts()
    ratings = tl["ratings"]
    return {
        "session_id": s.session_id, "source_file": s.source_path, "format": s.source_format,
        "turns": len(s.turns), "client_turns": roles["client"], "therapist_turns": roles["therapist"],
        "other_turns": roles["other"], "duration_s": _r(s.duration_s),
        "withdrawal_turns": rupture.get("withdrawal", 0), "confrontation_turns": rupture.get("confrontation", 0),
        "repair_attempts": sum(d.repair == "repair" for d in decisions),
        "episodes": ratings["episodes"], "resolved_episodes": ratings["resolved_episodes"],
        "rating_withdrawal": ratings["withdrawal"], "rating_confrontation": ratings["confrontation"],
        "rating_resolution": ratings["resolution"],
        "markers": dict(sorted(markers.items())), "strategies": dict(sorted(strategies.items())),
        "model": coded.model,
    }


def model_annotations(coded: CodedSession) -> list[Annotation]:
    """The model layer as Annotation records (kept apart from any human layer)."""
    sid, src = coded.session.session_id, coded.source
    out = []
    for d in coded.decisions:
        if d.rupture is not None:
            out.append(Annotation(sid, d.turn, "rupture", d.rupture, 1 - d.rupture_scores["none"], src))
            out += [Annotation(sid, d.turn, "markers", c, s, src) for c, s in d.markers]
        if d.repair is not None:
            out.append(Annotation(sid, d.turn, "repair", d.repair, d.repair_score, src))
            out += [Annotation(sid, d.turn, "strategies", c, s, src) for c, s in d.strategies]
    return out
