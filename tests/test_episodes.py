"""The segment-rating rules of annotation_guides/segment_ratings.md, including its worked example."""

import pytest

from pipeline.episodes import CodedTurn, episodes, salience, segments, session_ratings, timeline


def _c(i, code="none", score=0.9, markers=(), start=None):
    return CodedTurn(i, "client", start, None, code, score if code != "none" else 0.1, tuple(markers))


def _t(i, repair="none", start=None, strategies=()):
    return CodedTurn(i, "therapist", start, None, repair=repair, repair_score=0.8 if repair == "repair" else 0.1,
                     strategies=tuple(strategies))


def worked_example():
    """The guide's worked example (turns renumbered from 0)."""
    spec = [("t",), ("c",), ("t",), ("c", "withdrawal", 0.82, ["withdrawal.minimal_response"]), ("t", "repair"),
            ("c", "withdrawal", 0.64, ["withdrawal.abstract_communication"]), ("t", "repair"), ("c",), ("t",),
            ("c",), ("t",), ("c",), ("t",), ("c", "confrontation", 0.91, ["confrontation.complaint_parameters"]),
            ("t",)]
    out = []
    for i, s in enumerate(spec):
        if s[0] == "t":
            out.append(_t(i, *(s[1:])))
        else:
            out.append(_c(i, *(s[1:])))
    return out


def test_episodes_worked_example_from_guide():
    turns = worked_example()
    segs = segments(turns)
    assert len(segs) == 1 and segs[0].unit == "turns"
    assert segs[0].salience == {"withdrawal": 3, "confrontation": 3}
    eps = episodes(turns)
    assert [(e.type, e.rupture_turns, e.resolved) for e in eps] == [
        ("withdrawal", [3, 5], True), ("confrontation", [13], False)]
    assert [r["turn"] for r in eps[0].repair_attempts] == [4, 6]
    assert eps[0].markers == ["withdrawal.minimal_response", "withdrawal.abstract_communication"]
    ratings = session_ratings(segs, eps)
    assert ratings == {"withdrawal": 3, "confrontation": 3, "resolution": 3, "episodes": 2, "resolved_episodes": 1}


@pytest.mark.parametrize("n,peak,expected", [(0, 0, 1), (1, 0.5, 2), (1, 0.75, 3), (2, 0.1, 3), (3, 1, 4),
                                             (4, 1, 4), (5, 1, 5), (9, 1, 5)])
def test_episodes_salience_table(n, peak, expected):
    assert salience(n, peak) == expected


def test_episodes_gap_of_four_turns_starts_new_episode():
    turns = [_c(0)] + [_t(i) if i % 2 else _c(i) for i in range(1, 20)]
    turns[10] = _c(10, "withdrawal")
    turns[14] = _c(14, "withdrawal")  # three turns between -> same episode
    turns[18] = _c(18, "withdrawal")  # three between 14 and 18 -> same
    assert [e.rupture_turns for e in episodes(turns)] == [[10, 14, 18]]
    turns[14] = _c(14)
    turns[16] = _c(16)
    turns[15] = _c(15, "withdrawal")  # 10 and 15: four turns between -> separate
    assert [e.rupture_turns for e in episodes(turns)] == [[10], [15, 18]]


def test_episodes_unresolved_when_rupture_follows_repair_or_session_ends():
    turns = [_c(0, "confrontation"), _t(1, "repair"), _c(2, "confrontation")]
    eps = episodes(turns)
    assert len(eps) == 1 and not eps[0].resolved
    turns = [_c(0), _t(1), _c(2, "confrontation"), _t(3, "repair")]
    assert not episodes(turns)[0].resolved  # no client turn after the repair


def test_episodes_time_segments_when_all_turns_timed():
    turns = [_c(i, "withdrawal" if i == 3 else "none", start=i * 100.0) if i % 2 else _t(i, start=i * 100.0)
             for i in range(8)]
    segs = segments(turns)
    assert [s.unit for s in segs] == ["time", "time", "time"]
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 300.0), (300.0, 600.0), (600.0, 900.0)]
    assert segs[1].counts["withdrawal"] == 1


def test_episodes_no_episodes_resolution_not_applicable():
    tl = timeline([_t(0), _c(1)])
    assert tl["episodes"] == [] and tl["ratings"]["resolution"] is None
    assert tl["ratings"]["withdrawal"] == 1
