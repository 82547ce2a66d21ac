"""Rupture episodes, repair, resolution and 3RS-style segment ratings, derived from turn codes.

Implements exactly the rules of ``annotation_guides/segment_ratings.md``:

* segments: 5-minute windows from time 0 when every turn has a start time, else 20-turn windows;
* salience per segment and type: 1 (n=0), 2 (n=1, score < 0.75), 3 (n=1 with score >= 0.75,
  or n=2), 4 (n in 3..4), 5 (n >= 5);
* episodes: rupture turns with fewer than 4 turns between them; type of the highest-scoring turn;
* repair attempts: therapist repair turns from the first rupture turn to 3 turns after the last;
* resolved: >= 1 repair attempt, >= 1 client turn after the last attempt, and no rupture in the
  (up to) 3 client turns after it;
* session ratings: max segment salience per type; resolution 1 + round(4 * resolved / episodes).

Pure functions over :class:`CodedTurn` records; they work for model and human layers alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

SEGMENT_SECONDS = 300.0
SEGMENT_TURNS = 20
EPISODE_GAP = 4  # a new episode starts when this many turns (or more) lie between rupture turns
REPAIR_AFTER = 3
FOLLOW_CLIENT_TURNS = 3
TYPES = ("withdrawal", "confrontation")


@dataclass(frozen=True)
class CodedTurn:
    """The minimum the rules need about one coded turn."""

    index: int
    speaker_role: str
    start_s: float | None = None
    end_s: float | None = None
    rupture: str | None = None  # client turns
    rupture_score: float = 1.0  # 1 - P(none) for model codes; 1.0 for human codes
    markers: tuple[str, ...] = ()
    repair: str | None = None  # therapist turns
    repair_score: float = 1.0
    strategies: tuple[str, ...] = ()

    @property
    def is_rupture(self) -> bool:
        return self.rupture in TYPES


@dataclass
class Episode:
    id: int
    type: str
    start_turn: int
    end_turn: int
    start_s: float | None
    end_s: float | None
    rupture_turns: list[int]
    markers: list[str]
    peak_score: float
    repair_attempts: list[dict] = field(default_factory=list)
    resolved: bool = False


@dataclass
class Segment:
    index: int
    unit: str  # "time" | "turns"
    start_turn: int
    end_turn: int
    start_s: float | None
    end_s: float | None
    counts: dict
    salience: dict


def salience(n: int, peak: float) -> int:
    if n == 0:
        return 1
    if n == 1:
        return 3 if peak >= 0.75 else 2
    if n == 2:
        return 3
    return 4 if n <= 4 else 5


def segments(turns: list[CodedTurn]) -> list[Segment]:
    timed = bool(turns) and all(t.start_s is not None for t in turns)
    groups: dict[int, list[CodedTurn]] = {}
    for t in turns:
        key = int(t.start_s // SEGMENT_SECONDS) if timed else t.index // SEGMENT_TURNS
        groups.setdefault(key, []).append(t)
    out = []
    for key in sorted(groups):
        members = groups[key]
        counts, sal = {}, {}
        for kind in TYPES:
            hits = [t for t in members if t.speaker_role == "client" and t.rupture == kind]
            counts[kind] = len(hits)
            sal[kind] = salience(len(hits), max((t.rupture_score for t in hits), default=0.0))
        out.append(Segment(
            index=key, unit="time" if timed else "turns",
            start_turn=members[0].index, end_turn=members[-1].index,
            start_s=key * SEGMENT_SECONDS if timed else members[0].start_s,
            end_s=(key + 1) * SEGMENT_SECONDS if timed else members[-1].end_s,
            counts=counts, salience=sal,
        ))
    return out


def episodes(turns: list[CodedTurn]) -> list[Episode]:
    ruptures = [t for t in turns if t.speaker_role == "client" and t.is_rupture]
    groups: list[list[CodedTurn]] = []
    for t in ruptures:
        if groups and t.index - groups[-1][-1].index - 1 < EPISODE_GAP:
            groups[-1].append(t)
        else:
            groups.append([t])
    by_index = {t.index: t for t in turns}
    out = []
    for k, group in enumerate(groups, start=1):
        peak = max(group, key=lambda t: t.rupture_score)
        first, last = group[0], group[-1]
        markers = list(dict.fromkeys(m for t in group for m in t.markers))
        ep = Episode(k, peak.rupture, first.index, last.index, first.start_s,
                     last.end_s if last.end_s is not None else last.start_s,
                     [t.index for t in group], markers, float(peak.rupture_score))
        ep.repair_attempts = [
            {"turn": i, "score": float(by_index[i].repair_score), "strategies": list(by_index[i].strategies)}
            for i in range(first.index, last.index + REPAIR_AFTER + 1)
            if i in by_index and by_index[i].speaker_role == "therapist" and by_index[i].repair == "repair"
        ]
        ep.resolved = _resolved(ep, turns)
        out.append(ep)
    return out


def _resolved(ep: Episode, turns: list[CodedTurn]) -> bool:
    if not ep.repair_attempts:
        return False
    last_repair = ep.repair_attempts[-1]["turn"]
    following = [t for t in turns if t.index > last_repair and t.speaker_role == "client"][:FOLLOW_CLIENT_TURNS]
    return bool(following) and not any(t.is_rupture for t in following)


def session_ratings(segs: list[Segment], eps: list[Episode]) -> dict:
    resolved = sum(e.resolved for e in eps)
    return {
        "withdrawal": max((s.salience["withdrawal"] for s in segs), default=1),
        "confrontation": max((s.salience["confrontation"] for s in segs), default=1),
        "resolution": (1 + math.floor(4 * resolved / len(eps) + 0.5)) if eps else None,
        "episodes": len(eps),
        "resolved_episodes": resolved,
    }


def timeline(turns: list[CodedTurn]) -> dict:
    """Episodes, segments and session ratings as plain data (JSON-ready)."""
    segs = segments(turns)
    eps = episodes(turns)
    return {
        "episodes": [asdict(e) for e in eps],
        "segments": [asdict(s) for s in segs],
        "ratings": session_ratings(segs, eps),
        "rules": "annotation_guides/segment_ratings.md (segment.v1)",
    }
