"""A review round: held-out choice, data preparation and its refusals, the old vs new comparison,
and one whole round under ``prefect_test_harness`` (code -> export -> two annotators -> import ->
``review round``)."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score
from typer.testing import CliRunner

from pipeline.cli._app import app
from pipeline.errors import ConfigError, LabelError, ModelError
from pipeline.review.rounds import (RoundConfig, check_round, choose_held_out, compare, f1_from_confusion,
                                   prepare_round)
from test_corrections import reviewed, synthetic_run, write_layer

IDS = [f"s{i}" for i in range(10)]


def test_review_round_held_out_choice_is_deterministic_by_session():
    picked = choose_held_out(IDS, fraction=0.25)
    assert len(picked) == 3 and set(picked) < set(IDS) and picked == sorted(picked)
    assert choose_held_out(IDS[::-1], fraction=0.25) == picked  # input order does not matter
    assert choose_held_out(IDS + ["s10"], fraction=0.25)[:1] != [] and len(choose_held_out(IDS, fraction=0.01)) == 1
    assert set(choose_held_out(IDS, fraction=0.25)) <= set(choose_held_out(IDS, fraction=0.5))  # same ranking
    assert choose_held_out(IDS, ("s3", "s1", "s3")) == ["s1", "s3"]
    with pytest.raises(LabelError, match=r"^held-out session 'x9' has no usable corrections; expected one of the "
                                         r"corrected sessions \(10\); fix: hold out sessions the annotators reviewed"):
        choose_held_out(IDS, ("s1", "x9"))


def test_review_round_f1_from_confusion_equals_scikit_learn():
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(1)
    for _ in range(20):
        gold, pred = rng.integers(0, 3, 30), rng.integers(0, 3, 30)
        pred[pred == 2] = rng.integers(0, 2)  # sometimes a class never predicted
        m = confusion_matrix(gold, pred, labels=[0, 1, 2])
        assert f1_from_confusion(m) == pytest.approx(f1_score(gold, pred, labels=[0, 1, 2], average="macro", zero_division=0))
        assert f1_from_confusion(m, 1) == pytest.approx(f1_score(gold == 1, pred == 1, zero_division=0))
    assert f1_from_confusion(np.zeros((3, 3))) == 0.0


@pytest.fixture
def corrected(tmp_path) -> dict:
    run, gold = synthetic_run(tmp_path / "run", sessions=6)
    layer = write_layer(tmp_path / "human.jsonl", reviewed(gold, "human:a", lambda sid, turn: turn < 12))
    config = RoundConfig(str(run), (str(layer),), "unused", str(tmp_path / "models" / "new" / "1"), str(tmp_path / "round"))
    return {"run": run, "gold": gold, "layer": layer, "config": config, "tmp": tmp_path}


def test_review_round_prepare_keeps_held_out_sessions_out_of_training(corrected):
    data = prepare_round(replace(corrected["config"], held_out=("s1", "s4")))
    assert [s.session_id for s in data.held_out] == ["s1", "s4"]
    assert [s.session_id for s in data.train.sessions] == ["s0", "s2", "s3", "s5"]
    assert data.stats["held_out_sessions"] == ["s1", "s4"] and data.stats["session_ids"] == ["s0", "s2", "s3", "s5"]
    assert data.stats["sessions"]["skipped"] == {"held out for testing": 2}
    assert data.stats["turns"] == {"reviewed": 72, "used": 48, "skipped": {"held out for testing": 24}}
    assert data.train.files[-1]["sessions"] == 4
    by_fraction = prepare_round(replace(corrected["config"], held_out_fraction=0.34))
    assert [s.session_id for s in by_fraction.held_out] == choose_held_out([f"s{i}" for i in range(6)], fraction=0.34)


def test_review_round_prepare_refuses_too_few_corrected_sessions(corrected):
    tmp, gold = corrected["tmp"], corrected["gold"]
    two = write_layer(tmp / "two.jsonl", reviewed(gold, "human:a", lambda sid, turn: sid in ("s0", "s1")))
    config = replace(corrected["config"], corrections=(str(two),))
    with pytest.raises(LabelError) as err:
        prepare_round(config)
    assert str(err.value) == (
        "too few corrected sessions for a review round; expected at least 3 corrected sessions (2 to train on, "
        "1 held out); found 2 corrected, 1 held out; fix: have annotators review turns in more sessions, or hold "
        "out fewer (--held-out / --held-out-fraction)")
    with pytest.raises(LabelError, match=r"found 6 corrected, 5 held out"):
        prepare_round(replace(corrected["config"], held_out=("s1", "s2", "s3", "s4", "s5")))
    only_none = [x for x in reviewed(gold, "human:a", lambda sid, turn: turn % 2 == 1)
                 if gold[(x["session_id"], x["turn"])]["rupture"] == "none"]
    with pytest.raises(LabelError, match=r"^too few corrected client turns to train on; expected client turns with "
                                         r"and without a rupture"):
        prepare_round(replace(config, corrections=(str(write_layer(tmp / "none.jsonl", only_none)),)))


def test_review_round_prepare_refuses_held_out_sessions_in_other_training_data(corrected, monkeypatch):
    import pipeline.modeling.training as training

    held = prepare_round(replace(corrected["config"], held_out=("s1",))).held_out
    monkeypatch.setattr(training, "load_constructed", lambda: training.TrainingData(sessions=list(held)))
    with pytest.raises(LabelError, match=r"^held-out session 's1' is also in the other training data"):
        prepare_round(replace(corrected["config"], held_out=("s1",), constructed=True))


def test_review_round_check_refuses_bad_options(corrected):
    config = replace(corrected["config"], old_model=str(corrected["run"]))  # any folder passes for a bundle here
    check_round(config)
    for change, error, message in (
            (dict(new_model="justaname"), ConfigError, r"^--new-model must be NAME/VERSION; found justaname"),
            (dict(new_model=str(corrected["run"])), ConfigError, r"new model bundle already exists \(bundles are write-once\)"),
            (dict(held_out_fraction=1.0), ConfigError, r"^--held-out-fraction must be between 0 and 1; found 1.0"),
            (dict(run_dir=str(corrected["tmp"])), ConfigError, r"run folder has no turns.jsonl"),
            (dict(old_model=str(corrected["tmp"] / "nope")), ModelError, r"^model '.*nope' not found")):
        with pytest.raises(error, match=message):
            check_round(replace(config, **change))
    (corrected["tmp"] / "round").mkdir()
    (corrected["tmp"] / "round" / "round.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"round: --out already holds a round report; fix: choose a new folder"):
        check_round(config)


def fake_eval(matrices: dict[str, list]) -> dict:
    """What evaluate_bundle returns, for client turns only, from per-session confusion matrices."""
    total = np.sum(list(matrices.values()), axis=0)
    metrics = {"client": {"n_turns": int(total.sum()), "macro_f1": f1_from_confusion(total), "kappa": None,
                          "rupture_vs_none": {"f1": None}}, "therapist": None}
    return {"model": "m@1", "path": "p", "metrics": metrics, "counts": {"client": matrices, "therapist": {}},
            "trained_on_held_out": []}


def test_review_round_compare_same_sessions_and_bootstrap():
    perfect = {f"s{i}": [[3, 0, 0], [0, 2, 0], [0, 0, 1]] for i in range(4)}
    poor = {f"s{i}": [[2, 1, 0], [1, 1, 0], [0, 1, 0]] for i in range(4)}
    result = compare(fake_eval(poor), fake_eval(perfect), ["s0", "s1", "s2", "s3"], resamples=200)
    p = result["primary"]
    assert p["new_beats_old"] and p["new"] == 1.0 and p["old"] < 0.5 and p["n_sessions"] == 4 and p["n_turns"] == 24
    assert p["bootstrap"]["share_new_better"] == 1.0 and p["bootstrap"]["ci95"][0] > 0
    assert not compare(fake_eval(perfect), fake_eval(poor), [], resamples=0)["primary"]["new_beats_old"]
    fewer = {k: v for k, v in poor.items() if k != "s3"}
    with pytest.raises(LabelError, match="old and new models were scored on different client turns"):
        compare(fake_eval(fewer), fake_eval(perfect), [])


# ---------------------------------------------------------------- a whole round, under Prefect

CANARY = "marmalade"  # in every client turn: must never reach logs or reports
WORDS = ("work", "week", "sister", "dinner", "sleep", "plan", "walk", "tired", "office", "garden")
MARKER = {"withdrawal": "withdrawal.minimal_response", "confrontation": "confrontation.complaint_therapist"}


def transcripts(path: Path, sessions: int = 8, pairs: int = 6, seed: int = 3) -> dict:
    """Canonical CSV transcripts whose client turns carry a rupture keyword; returns the gold
    codes by (session id, input turn number)."""
    rng = random.Random(seed)
    rows, gold = [], {}
    for s in range(sessions):
        sid, after = f"r{s}", False
        for p in range(pairs):
            text = " ".join((["sorry,"] if after else []) + [rng.choice(WORDS) for _ in range(6)])
            rows.append((sid, 2 * p + 1, "therapist", text + "?"))
            gold[(sid, str(2 * p + 1))] = ("repair", "repair.acknowledge_contribution") if after else ("none", None)
            kind = ("none", "withdrawal", "confrontation")[p % 3] if s % 2 else rng.choice(("none", "withdrawal", "confrontation"))
            cue = {"withdrawal": "whatever, I guess.", "confrontation": "this is pointless and you are not helping!"}
            text = f"{CANARY} " + " ".join(rng.choice(WORDS) for _ in range(5)) + " " + cue.get(kind, "and then we ate.")
            rows.append((sid, 2 * p + 2, "client", text))
            gold[(sid, str(2 * p + 2))] = (kind, MARKER.get(kind))
            after = kind != "none"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("session_id", "turn", "speaker", "text"), *rows])
    return gold


def fill_sheet(sheet: Path, out: Path, gold: dict, run: Path, keep, flip=frozenset()) -> Path:
    """An annotator's sheet: the gold codes of the items ``keep(session)`` picks (rupture codes of
    the sessions in ``flip`` changed, to disagree), other rows removed."""
    turns = {(r["session_id"], r["turn"]): r for r in map(json.loads, (run / "turns.jsonl").read_text().splitlines())}
    with open(sheet, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, [r for r in reader if keep(r["session_id"])]
    for row in rows:
        record = turns[(row["session_id"], int(row["turn"]))]
        code, extra = gold[(row["session_id"], record["source_turns"][0])]
        if row["session_id"] in flip and row["speaker"] == "client":
            code, extra = ("withdrawal", MARKER["withdrawal"]) if code == "none" else ("none", None)
        single, multi = ("rupture", "markers") if row["speaker"] == "client" else ("repair", "strategies")
        row.update({single: code, multi: extra or "none"})
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return out


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.mark.slow
def test_review_round_whole_round_under_prefect(prefect_harness, tiny_bundle, code_with_tasks, tmp_path, monkeypatch, capfd):
    from pipeline.run import steps as lib
    from pipeline.modeling.estimator import RuptureCoder

    gold = transcripts(tmp_path / "sessions.csv")
    run = tmp_path / "run"
    code_with_tasks([tmp_path / "sessions.csv"],
                    lib.RunConfig(out=str(run), model=str(tiny_bundle), cache_dir=str(tmp_path / "cache"), png=False))
    assert invoke("review", "export", run, "--to", "csv", "--out", tmp_path / "batch.csv", "--strategy", "all").exit_code == 0
    a = fill_sheet(tmp_path / "batch.csv", tmp_path / "a.csv", gold, run, keep=lambda sid: True)
    b = fill_sheet(tmp_path / "batch.csv", tmp_path / "b.csv", gold, run, keep=lambda sid: sid in ("r0", "r1", "r2"),
                   flip={"r2"})
    human = tmp_path / "labels" / "human.jsonl"
    for sheet, who in ((a, "coder_a"), (b, "coder_b")):
        result = invoke("review", "import", sheet, "--annotator", who, "--run", run, "--out", human)
        assert result.exit_code == 0, result.output

    trained_on: list[list[str]] = []
    fit = RuptureCoder.fit

    def spy(self, sessions, y=None):
        trained_on.append([s.session_id for s in sessions])
        return fit(self, sessions, y)

    monkeypatch.setattr(RuptureCoder, "fit", spy)
    new_model, out = tmp_path / "models" / "tiny" / "0.0.2", tmp_path / "round"
    args = ["review", "round", run, "--corrections", human, "--model", tiny_bundle, "--new-model", new_model,
            "--out", out, "--cache-dir", tmp_path / "cache", "--bootstrap", 200]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "round.json").read_text())
    held = choose_held_out([f"r{i}" for i in range(8)], fraction=0.25)
    assert report["comparison"]["held_out_sessions"] == held and len(held) == 2
    # held-out sessions never reach training
    assert trained_on and all(not set(ids) & set(held) for ids in trained_on)
    assert sorted(trained_on[0]) == sorted(set(f"r{i}" for i in range(8)) - set(held))
    manifest = json.loads((new_model / "data_manifest.json").read_text())
    assert manifest["corrections"]["held_out_sessions"] == held and not set(manifest["corrections"]["session_ids"]) & set(held)
    assert manifest["base_model"] == "tiny@0.0.1"
    # old and new on the same held-out sessions and turns
    client_turns = sum(1 for sid, turn in gold if sid in held and int(turn) % 2 == 0)  # client turns: even numbers
    for which in ("old", "new"):
        m = report["metrics"][which]
        assert (m["client"]["n_sessions"], m["client"]["n_turns"]) == (2, client_turns)
        assert m["therapist"]["n_sessions"] == 2
    p = report["comparison"]["primary"]
    assert (p["metric"], p["n_sessions"], p["n_turns"]) == ("client three-way macro-F1", 2, client_turns)
    assert p["old"] == pytest.approx(report["metrics"]["old"]["client"]["macro_f1"], abs=1e-4)
    assert p["new"] == pytest.approx(report["metrics"]["new"]["client"]["macro_f1"], abs=1e-4)
    assert p["new_beats_old"] == (p["new"] > p["old"])
    assert report["verdict"].startswith("new model beats old" if p["new_beats_old"] else "new model does not beat old")
    assert report["verdict"] in result.stdout.replace("\n", " ")
    assert report["data"]["multi_annotator_turns"] == {"unanimous": 30, "majority": 0, "tie": 6}
    assert report["agreement"]["coders"] == ["model:tiny@0.0.1", "human:coder_a", "human:coder_b"]
    assert (out / "agreement" / "agreement.json").exists() and (out / "round.md").read_text().startswith("# Review round")
    assert any("old model coded the run" in c for c in report["cautions"])
    written = (out / "round.json").read_text() + (out / "round.md").read_text() + (new_model / "data_manifest.json").read_text()
    logs = result.output + "".join(capfd.readouterr())
    assert CANARY not in written and CANARY not in logs and "pointless" not in logs

    # too few corrected sessions: a clean error before Prefect starts, no bundle
    few = tmp_path / "labels" / "few.jsonl"
    few.write_text("".join(x + "\n" for x in human.read_text().splitlines() if json.loads(x)["session_id"] in ("r0", "r1")))
    result = invoke("review", "round", run, "--corrections", few, "--model", tiny_bundle, "--new-model",
                    tmp_path / "models" / "tiny" / "0.0.3", "--out", tmp_path / "round2")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "error: too few corrected sessions for a review round; expected at least 3 corrected sessions (2 to train "
        "on, 1 held out); found 2 corrected, 1 held out; fix: have annotators review turns in more sessions, or "
        "hold out fewer (--held-out / --held-out-fraction)")
    assert not (tmp_path / "models" / "tiny" / "0.0.3").exists() and not (tmp_path / "round2").exists()


def test_review_round_report_cautions_and_markdown():
    from pipeline.records import Session
    from pipeline.review.rounds import RoundData, report_markdown, round_report
    from pipeline.modeling.training import TrainingData

    matrices = {"s0": [[3, 0, 0], [0, 2, 0], [0, 0, 0]], "s1": [[2, 1, 0], [0, 1, 0], [0, 0, 0]]}
    old, new = fake_eval(matrices), fake_eval(matrices)
    for m in (old, new):
        m["metrics"]["client"]["per_class"] = {"none": {"support": 6}, "withdrawal": {"support": 3},
                                               "confrontation": {"support": 0}}
    old["trained_on_held_out"] = ["s1"]
    stats = {"turns": {"reviewed": 9, "used": 0, "skipped": {"held out for testing": 9}},
             "sessions": {"with_corrections": 2, "used": 0, "skipped": {"held out for testing": 2}},
             "annotators": {"human:a": 9}, "codings_skipped": {}, "rule": "r", "training_sessions": 3,
             "training_sessions_from_corrections": 0, "multi_annotator_turns": {"unanimous": 0, "majority": 0, "tie": 0}}
    data = RoundData(TrainingData(), [Session("s0", ()), Session("s1", ())], stats)
    config = RoundConfig("run", ("h.jsonl",), "old", "models/n/1", "out", bootstrap=50)
    report = round_report(config, data, {"coders": [], "files": "f", "layers": []}, old, new, "m@1")
    assert report["verdict"] == "new model does not beat old on client three-way macro-F1 (0.589 -> 0.589, held-out sessions: 2)"
    assert report["cautions"] == [
        "only 2 held-out session(s) and 9 reviewed turn(s): the difference is not reliable",
        "no held-out turn is gold confrontation: macro-F1 counts that class as 0 for both models (the comparison "
        "stays fair, the level is lower)",
        "the old model's training corrections list 1 of the held-out session ids: its figures are not held out",
        "the old model coded the run, and annotators corrected its proposals: where they kept its codes the "
        "held-out gold leans towards the old model"]
    text = report_markdown({**report, "metrics": {"old": {"client": None, "therapist": None},
                                                  "new": {"client": None, "therapist": None}}})
    assert "**new model does not beat old" in text and "Held-out sessions (2): `s0`, `s1`" in text
    assert "| client three-way macro-F1 | 0.589 | 0.589 | +0.000 |" in text


def test_review_round_flow_tasks_run_as_plain_functions(corrected):
    """The flow body with each task's ``.fn()`` (no Prefect server): report files, same held-out
    sessions for both models, a new write-once bundle."""
    from flows import review_round as flow
    from pipeline.modeling.bundle import save_bundle
    from pipeline.modeling.estimator import RuptureCoder
    from pipeline.review.corrections import load_corrections

    tmp = corrected["tmp"]
    old_data = load_corrections([corrected["layer"]], corrected["run"])
    old_path = save_bundle(RuptureCoder(embedder="hashing.v1", cv=2).fit(old_data.sessions[:3]), tmp / "m" / "old" / "1",
                           "old", "1", {"counts": {}, "files": []})
    config = replace(corrected["config"], old_model=str(old_path), new_model=str(tmp / "m" / "new" / "1"),
                     cache_dir=str(tmp / "cache"), bootstrap=50)
    data = flow.prepare.fn(config)
    agreed = flow.agreement.fn(config)
    new_path = flow.train.fn(config, data)
    old, new = flow.evaluate.fn(config.old_model, data, config), flow.evaluate.fn(new_path, data, config)
    result = flow.report.fn(config, data, agreed, old, new)
    held = choose_held_out([f"s{i}" for i in range(6)], fraction=0.25)
    assert result["comparison"]["held_out_sessions"] == held
    assert result["files"] == [str(tmp / "round" / "round.json"), str(tmp / "round" / "round.md")]
    assert json.loads((tmp / "round" / "round.json").read_text())["verdict"] == result["verdict"]
    assert old["trained_on_held_out"] == [] and new["trained_on_held_out"] == []
    assert old["metrics"]["client"]["n_turns"] == new["metrics"]["client"]["n_turns"] == 6 * len(held)
    assert not any(c.startswith("the old model coded the run") for c in result["cautions"])  # toy-model coded it
    with pytest.raises(ConfigError, match="new model bundle already exists"):
        flow.review_round.fn(config)
