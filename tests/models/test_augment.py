"""Target-style augmentation (issue #12, item 4): variants of real sessions carry codes only on
their rewritten turns, stay with their source in every fold, are never scored, and do not move
calibration or thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError, LabelError
from pipeline.modeling import evaluate, heads
from pipeline.modeling.augment import COLUMNS, augment, is_augmented, read_rewrites, session_group, variants_for
from pipeline.modeling.estimator import RuptureCoder

HEADER = ",".join(COLUMNS) + "\n"


def table(write_file, rows: str, name: str = "aug.csv"):
    return write_file(name, HEADER + rows)


def test_augment_builds_variants_with_codes_on_rewritten_turns_only(make_corpus, write_file):
    sessions = make_corpus(3)
    s = sessions[0]
    client = next(t for t in s.turns if t.speaker_role == "client")
    therapist = s.turns[client.index + 1]
    path = table(write_file,
                 f"csv,{s.session_id},1,{client.source.turn_ids[0]},client,rupture,i guess,withdrawal,"
                 f"withdrawal.minimal_response,,,short reply\n"
                 f"csv,{s.session_id},1,{therapist.source.turn_ids[0]},therapist,repair,sorry that was a lot,,,repair,"
                 f"repair.acknowledge_contribution,\n"
                 f"csv,{s.session_id},2,{client.source.turn_ids[0]},client,negative,i just like it,none,,,,sustain talk\n"
                 f"csv,absent,1,0,client,negative,no,none,,,,\n")
    variants, problems = augment(sessions, [path])
    assert problems == [] and len(variants) == 2
    v1 = next(v for v in variants if v.session_id.endswith("#aug1"))
    assert is_augmented(v1) and session_group(v1) == s.session_id and v1.meta["augmented_from"] == s.session_id
    assert v1.turns[client.index].text == "i guess" and v1.turns[therapist.index].text == "sorry that was a lot"
    assert {a.turn for a in v1.annotations} == {client.index, therapist.index}
    assert {(a.layer, a.code) for a in v1.annotations} == {
        ("rupture", "withdrawal"), ("markers", "withdrawal.minimal_response"), ("repair", "repair"),
        ("strategies", "repair.acknowledge_contribution")}
    assert all(t.session_id == v1.session_id for t in v1.turns)
    assert [t.text for t in v1.turns if t.index not in (client.index, therapist.index)] == \
        [t.text for t in s.turns if t.index not in (client.index, therapist.index)]
    assert variants_for(sessions[1:], variants) == [] and len(variants_for(sessions[:1], variants)) == 2


def test_augment_skips_a_rewrite_whose_speaker_differs(make_corpus, write_file):
    sessions = make_corpus(1)
    therapist = next(t for t in sessions[0].turns if t.speaker_role == "therapist")
    path = table(write_file, f"csv,{sessions[0].session_id},1,{therapist.source.turn_ids[0]},client,negative,no,none,,,,\n")
    variants, problems = augment(sessions, [path])
    assert variants == [] and [p.code for p in problems] == ["augment.skipped"]
    assert "speaker differs" in problems[0].message


@pytest.mark.parametrize("row, message", [
    ("csv,s,1,0,client,rupture,text,withdrawal,,,,", "markers must be given"),
    ("csv,s,1,0,client,rupture,text,withdrawal,confrontation.complaint_therapist,,,", "no marker of the rupture's family"),
    ("csv,s,1,0,client,negative,text,confrontation,confrontation.control_pressure,,,", "negative rewrite must be coded none"),
    ("csv,s,1,0,client,rupture,text,none,,,,", "rupture rewrite must be coded"),
    ("csv,s,1,0,therapist,repair,text,,,repair,,", "strategies must be given"),
    ("csv,s,1,0,client,rupture,text,withdrawal,withdrawal.nope,,,", "invalid markers code"),
    ("csv,s,1,0,client,oops,text,none,,,,", "unknown kind"),
    ("csv,s,1,0,client,negative,,none,,,,", "text is empty"),
    ("csv,s,1,0,therapist,negative,text,none,,none,,", "a therapist row has rupture codes"),
])
def test_augment_table_errors_name_file_and_line(write_file, row, message):
    path = table(write_file, row + "\n")
    with pytest.raises(LabelError, match=message) as err:
        read_rewrites(path)
    assert "aug.csv:2" in str(err.value) and "text," not in str(err.value)


def test_augment_variants_never_scored_and_kept_with_their_source(make_corpus, write_file, monkeypatch):
    sessions = make_corpus(6)
    rows = "".join(
        f"csv,{s.session_id},1,{t.source.turn_ids[0]},client,rupture,whatever,withdrawal,withdrawal.minimal_response,,,\n"
        for s in sessions for t in s.turns[:4] if t.speaker_role == "client")
    variants, _ = augment(sessions, [table(write_file, rows)])
    assert len(variants) == 6
    make = lambda: RuptureCoder(embedder="hashing.v1", cv=2)  # noqa: E731
    with pytest.raises(ConfigError, match="never scored"):
        evaluate.cross_validate(sessions + variants, make, folds=2)
    seen = []
    real_fit = RuptureCoder.fit

    def fit(self, train, y=None):
        seen.append({s.session_id for s in train})
        return real_fit(self, train)

    monkeypatch.setattr(RuptureCoder, "fit", fit)
    evaluate.cross_validate(sessions, make, folds=3, augmented=variants)
    for ids in seen:  # each fold trains on the variants of its own training sessions only
        real = {i for i in ids if "#aug" not in i}
        assert {i for i in ids if "#aug" in i} == {f"{i}#aug1" for i in real}


def test_augment_does_not_move_calibration_or_thresholds_by_its_rate(make_corpus, write_file, monkeypatch):
    """Variants train the heads, but calibration and thresholds see real turns only."""
    sessions = make_corpus(8, seed=3)
    rows = "".join(
        f"csv,{s.session_id},{k},{t.source.turn_ids[0]},client,rupture,whatever pointless,withdrawal,withdrawal.minimal_response,,,\n"
        for s in sessions for k, t in enumerate([t for t in s.turns if t.speaker_role == "client"], start=1))
    variants, _ = augment(sessions, [table(write_file, rows)])
    thresholds = []
    real_threshold = RuptureCoder._threshold
    monkeypatch.setattr(RuptureCoder, "_threshold", lambda self, y, p, c: thresholds.append(len(y)) or real_threshold(self, y, p, c))
    model = RuptureCoder(embedder="hashing.v1", cv=3).fit(sessions + variants)
    n_real = sum(t.speaker_role == "client" for s in sessions for t in s.turns)
    assert model.n_client_turns_ == n_real + len(variants) and thresholds[0] == n_real


def test_fit_calibrated_calibrates_on_the_marked_rows_only():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = (rng.random(400) < 0.1).astype(int)
    y[300:] = 1  # the last quarter: "augmented" positives
    real = np.arange(400) < 300
    folds = list(KFold(4, shuffle=True, random_state=0).split(X))
    _, p_real = heads.fit_calibrated(LogisticRegression(), X, y, folds, (0, 1), real)
    _, p_all = heads.fit_calibrated(LogisticRegression(), X, y, folds, (0, 1))
    assert abs(p_real[real, 1].mean() - y[real].mean()) < 0.03  # calibrated to the real base rate
    assert p_all[real, 1].mean() > y[real].mean() + 0.1  # what calibrating on every row would do
