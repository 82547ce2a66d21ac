"""Human layers beside the model (issue #14): majority of annotators, disagreements marked,
agreement per session, episodes recomputed from the human codes."""

from __future__ import annotations

import json

from pipeline.codebook import load_codebook
from pipeline.episodes import timeline
from pipeline.review.side_by_side import _coded, human_codes, merged_session


def _rec(n, speaker, rupture=None, repair=None):
    client = speaker == "client"
    return {"session_id": "s", "turn": n, "speaker": speaker, "start": None, "end": None,
            "rupture": (rupture or "none") if client else None,
            "rupture_scores": {"none": 0.9, "withdrawal": 0.05, "confrontation": 0.05} if client else None,
            "markers": [], "repair": (repair or "none") if speaker == "therapist" else None,
            "repair_score": 0.1 if speaker == "therapist" else None, "strategies": []}


def _layer(path, source, rows):
    path.write_text("".join(json.dumps({"session_id": "s", "turn": t, "layer": layer, "code": code, "score": 1.0,
                                        "source": source, "scheme": "rupture_v1"}) + "\n"
                            for t, layer, code in rows), encoding="utf-8")
    return path


def test_side_by_side_majority_disagreement_and_recomputed_episodes(tmp_path):
    book = load_codebook()
    turns = [_rec(0, "therapist"), _rec(1, "client"), _rec(2, "therapist"), _rec(3, "client")]
    w = [(1, "rupture", "withdrawal"), (1, "markers", "withdrawal.minimal_response")]
    layers = [_layer(tmp_path / "a.jsonl", "human:a", w + [(3, "rupture", "none")]),
              _layer(tmp_path / "b.jsonl", "human:b", w),
              _layer(tmp_path / "c.jsonl", "human:c", [(1, "rupture", "none")])]
    human = human_codes(layers, book)
    assert human[("s", 1)]["rupture"] == ("withdrawal",) and human[("s", 1)]["sources"] == ["human:a", "human:b", "human:c"]
    merged, agreement = merged_session(turns, human, "s", book)
    assert merged[1]["rupture"] == "withdrawal" and merged[1]["compare"]["agree"] is False
    assert merged[1]["compare"]["model"] == "none" and merged[3]["compare"]["agree"] is True
    assert "compare" not in merged[0] and merged[0] is turns[0]  # no human code: the model's turn as it was
    assert agreement == {"rupture": {"turns": 2, "percent": 50.0, "kappa": 0.0}}
    tl_model = timeline([_coded(t, False) for t in turns])
    tl_human = timeline([_coded(t, "compare" in t) for t in merged])
    assert tl_model["ratings"]["episodes"] == 0 and tl_human["ratings"]["episodes"] == 1
