"""Counts of sessions, turns and codes in labelled data (for the codebook issue's checks)."""

from __future__ import annotations

from collections import Counter

from pipeline.modeling.estimator import gold_arrays
from pipeline.codebook import load_codebook
from pipeline.io.labels import read_label_table
from pipeline.records import Session


def session_stats(sessions: list[Session]) -> dict:
    book = load_codebook()
    rupture, repair = Counter(), Counter()
    markers = Counter({m: 0 for m in book.markers})
    strategies = Counter({s: 0 for s in book.strategies})
    roles = Counter()
    for s in sessions:
        gold = gold_arrays(s, book)
        for t in s.turns:
            roles[t.speaker_role] += 1
            if gold["rupture"][t.index] is not None:
                rupture[gold["rupture"][t.index]] += 1
            if gold["repair"][t.index] is not None:
                repair[gold["repair"][t.index]] += 1
            markers.update(gold["markers"][t.index])
            strategies.update(gold["strategies"][t.index])
    return {"sessions": len(sessions), "turns": sum(roles.values()),
            "client_turns": roles["client"], "therapist_turns": roles["therapist"], "other_turns": roles["other"],
            "rupture": dict(rupture), "repair": dict(repair), "markers": dict(markers), "strategies": dict(strategies)}


def label_table_stats(path) -> dict:
    table = read_label_table(path)
    sessions = {(k[0], k[1]) for k in table}
    rupture = Counter(v.codes["rupture"][0] for v in table.values() if v.codes["rupture"])
    repair = Counter(v.codes["repair"][0] for v in table.values() if v.codes["repair"])
    return {"sessions": len(sessions), "turns": len(table), "rupture": dict(rupture), "repair": dict(repair)}
