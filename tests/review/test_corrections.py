"""Corrections as training data: human layers joined with the run (turn text, roles, order), the
multi-annotator rule, skipped codings, bad inputs, and ``train --corrections``."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.modeling.estimator import RuptureCoder, gold_arrays
from pipeline.codebook import load_codebook
from pipeline.review.corrections import SOURCE, load_corrections, resolve
from pipeline.errors import ConfigError, InputFormatError, LabelError
from pipeline.cli._app import app
from test_review_export import RECORDS, rec, write_run

WORDS = ("work", "week", "sister", "dinner", "sleep", "plan", "walk", "tired", "office", "train", "garden", "money")
MARKER = {"withdrawal": "withdrawal.denial", "confrontation": "confrontation.complaint_progress"}
STRATEGY = "repair.acknowledge_contribution"


def line(source, sid, turn, layer, code, scheme="rupture_v1") -> dict:
    return {"session_id": sid, "turn": turn, "layer": layer, "code": code, "score": 1.0, "source": source,
            "scheme": scheme}


def coding(source, sid, turn, **layers) -> list[dict]:
    """Human-layer lines of one coding: ``rupture="withdrawal", markers=[...]``."""
    return [line(source, sid, turn, layer, code) for layer, codes in layers.items()
            for code in ([codes] if isinstance(codes, str) else codes)]


def write_layer(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def synthetic_run(folder: Path, sessions: int = 6, pairs: int = 8, seed: int = 0) -> tuple[Path, dict]:
    """A run of alternating therapist/client turns whose gold codes follow keywords ("whatever":
    withdrawal, "pointless": confrontation, "sorry" after a rupture: repair); returns the run
    folder and the gold codes by (session, turn)."""
    rng = random.Random(seed)
    records, gold = [], {}
    for s in range(sessions):
        sid, after = f"s{s}", False
        for p in range(pairs):
            words = [rng.choice(WORDS) for _ in range(5)]
            records.append(rec(sid, 2 * p, "therapist", " ".join((["sorry"] if after else []) + words), repair="none"))
            gold[(sid, 2 * p)] = {"repair": "repair", "strategies": [STRATEGY]} if after else {"repair": "none"}
            kind = rng.choice(("none", "none", "withdrawal", "confrontation"))
            words = [rng.choice(WORDS) for _ in range(6)] + ({"withdrawal": ["whatever"], "confrontation": ["pointless"]}.get(kind, []))
            records.append(rec(sid, 2 * p + 1, "client", " ".join(words), rupture="none"))
            gold[(sid, 2 * p + 1)] = {"rupture": kind, **({"markers": [MARKER[kind]]} if kind != "none" else {})}
            after = kind != "none"
    return write_run(folder, records), gold


def reviewed(gold: dict, source: str, keep) -> list[dict]:
    """Human-layer lines of the gold codes of the turns ``keep(session, turn)`` picks."""
    return [x for (sid, turn), codes in gold.items() if keep(sid, turn) for x in coding(source, sid, turn, **codes)]


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return write_run(tmp_path / "run")


def test_corrections_sessions_hold_every_run_turn_and_gold_only_on_reviewed_turns(run_dir, tmp_path):
    layer = write_layer(tmp_path / "human.jsonl",
                        coding("human:a", "s1", 1, rupture="withdrawal", markers=["withdrawal.denial"])
                        + coding("human:a", "s1", 2, repair="repair", strategies=["repair.validate_defense"])
                        + coding("human:a", "s2", 3, rupture="none"))
    result = load_corrections([layer], run_dir)
    s1, s2 = result.sessions
    by_session = {sid: [r for r in RECORDS if r["session_id"] == sid] for sid in ("s1", "s2")}
    for session, records in ((s1, by_session["s1"]), (s2, by_session["s2"])):
        assert [(t.index, t.speaker_role, t.speaker_id, t.text, t.clean_text) for t in session.turns] == [
            (r["turn"], r["speaker"], r["speaker_id"], r["text"], r["clean_text"]) for r in records]
        assert [t.source.turn_ids for t in session.turns] == [tuple(r["source_turns"]) for r in records]
    assert {a.source for s in result.sessions for a in s.annotations} == {SOURCE}
    gold = gold_arrays(s1, load_codebook())
    assert gold["rupture"] == [None, "withdrawal", None, None, None]  # unreviewed turns: no gold, not "none"
    assert gold["repair"] == [None, None, "repair", None, None]
    assert gold["markers"][1] == {"withdrawal.denial"} and gold["strategies"][2] == {"repair.validate_defense"}
    assert gold_arrays(s2, load_codebook())["rupture"] == [None, None, None, "none"]
    assert result.stats["turns"] == {"reviewed": 3, "used": 3, "skipped": {}}
    assert result.stats["sessions"] == {"with_corrections": 2, "used": 2, "skipped": {},
                                        "run_sessions_without_corrections": 0}
    assert result.stats["session_ids"] == ["s1", "s2"]
    assert [f["role"] for f in result.data.files] == ["corrections", "transcripts (run)"]


def test_corrections_several_annotators_majority_then_first_by_id(run_dir, tmp_path):
    a = write_layer(tmp_path / "a.jsonl",
                    coding("human:a", "s1", 1, rupture="withdrawal", markers=["withdrawal.denial", "withdrawal.minimal_response"])
                    + coding("human:a", "s1", 4, rupture="none")
                    + coding("human:a", "s1", 2, repair="repair", strategies=["repair.validate_defense"])
                    + coding("human:a", "s2", 0, repair="none"))
    b = write_layer(tmp_path / "b.jsonl",
                    coding("human:b", "s1", 1, rupture="withdrawal", markers=["withdrawal.denial"])
                    + coding("human:b", "s1", 4, rupture="confrontation", markers=["confrontation.complaint_progress"])
                    + coding("human:b", "s1", 2, repair="repair", strategies=["repair.invite_exploration"])
                    + coding("human:b", "s2", 0, repair="none"))
    c = write_layer(tmp_path / "c.jsonl",
                    coding("human:c", "s1", 1, rupture="confrontation", markers=["confrontation.defends_self"])
                    + coding("human:c", "s2", 0, repair="none"))
    result = load_corrections([c, b, a], run_dir)  # file order does not matter: annotators by id
    codes = {(x.session_id, x.turn, x.layer, x.code) for s in result.sessions for x in s.annotations}
    assert codes == {
        ("s1", 1, "rupture", "withdrawal"), ("s1", 1, "markers", "withdrawal.denial"),  # 2 of 3; denial 2 of 2
        ("s1", 4, "rupture", "none"),  # 1-1 tie: human:a comes first
        ("s1", 2, "repair", "repair"), ("s1", 2, "strategies", "repair.validate_defense"),  # no majority: human:a's list
        ("s2", 0, "repair", "none"),
    }
    assert result.stats["multi_annotator_turns"] == {"unanimous": 2, "majority": 1, "tie": 1}
    assert result.stats["annotators"] == {"human:a": 4, "human:b": 4, "human:c": 2}


def test_corrections_tie_goes_to_the_tied_code_of_the_first_annotator():
    book = load_codebook()
    codings = {f"human:{k}": {"rupture": (code,), "markers": (MARKER[code],) if code != "none" else ()}
               for k, code in zip("abcde", ("none", "withdrawal", "confrontation", "withdrawal", "confrontation"))}
    codes, outcome = resolve(codings, "client", book)
    assert (codes, outcome) == ({"rupture": ("withdrawal",), "markers": ("withdrawal.denial",)}, "tie")  # b, not a
    assert resolve({"human:z": codings["human:c"]}, "client", book) == (codings["human:c"], "single")


def test_corrections_codings_breaking_the_rules_are_skipped_and_counted(run_dir, tmp_path):
    path = write_layer(tmp_path / "human.jsonl", [
        line("human:a", "s1", 1, "markers", "withdrawal.denial"),  # 1: no rupture code
        *coding("human:b", "s1", 1, rupture="withdrawal", markers=["withdrawal.denial"]),  # 2-3: used
        *coding("human:a", "s1", 4, rupture="none", markers=["withdrawal.denial"]),  # 4-5: none with a marker
        line("human:a", "s1", 2, "repair", "none"), line("human:a", "s1", 2, "repair", "repair"),  # 6-7: two codes
        line("human:a", "s2", 1, "rupture", "withdrawal"),  # 8: no withdrawal marker
    ])
    result = load_corrections([path], run_dir)
    assert [s.session_id for s in result.sessions] == ["s1"]
    assert {(x.turn, x.layer, x.code) for x in result.sessions[0].annotations} == {
        (1, "rupture", "withdrawal"), (1, "markers", "withdrawal.denial")}
    stats = result.stats
    assert stats["codings_skipped"] == {"breaks the coding manual's rules": 4}
    assert stats["turns"] == {"reviewed": 4, "used": 1, "skipped": {"every coding breaks the coding manual's rules": 3}}
    assert stats["sessions"]["skipped"] == {"no usable coded turn": 1} and stats["sessions"]["used"] == 1
    assert stats["examples"] == [
        f"{path}:1: human:a, session s1 turn 1, layer rupture: no rupture code chosen; expected one of none, "
        "withdrawal, confrontation (including 'none')",
        f"{path}:6: human:a, session s1 turn 2, layer repair: 2 codes (none, repair); a turn takes one",
        f"{path}:4: human:a, session s1 turn 4, layer markers: rupture 'none' takes no markers; found "
        "'withdrawal.denial'; fix: clear the markers choices, or choose a rupture",
        f"{path}:8: human:a, session s2 turn 1, layer markers: rupture 'withdrawal' needs at least one withdrawal "
        "markers code; found none; fix: add a withdrawal.* code, or change rupture",
    ]
    assert [(p.level, p.path, p.line) for p in result.data.problems] == [
        ("warning", str(path), 1), ("warning", str(path), 6), ("warning", str(path), 4), ("warning", str(path), 8)]


FIX = "fix: pass --run with the run folder the review batch was exported from"


@pytest.mark.parametrize("lines, message", [
    ([line("human:a", "s1", 1, "rupture", "none"), line("human:a", "zz", 1, "rupture", "none")],
     f"{{path}}:2: session 'zz' is not in the run; {FIX}"),
    ([line("human:a", "s2", 9, "rupture", "none")],
     f"{{path}}:1: session 's2' has no turn 9 in the run; expected turns 0-3; {FIX}"),
    ([line("human:a", "s1", 1, "repair", "none")],
     f"{{path}}:1: turn 1 of session 's1' has speaker role 'client' in the run, but gets a repair code (a therapist layer); {FIX}"),
    ([line("human:a", "s1", 3, "rupture", "none")],
     f"{{path}}:1: turn 3 of session 's1' has speaker role 'other' in the run, but gets a rupture code (a client layer); {FIX}"),
    ([line("model:x@1", "s1", 1, "rupture", "none")],
     "{path}:1: source 'model:x@1' is not an annotator; expected human:<id>; fix: train on human layers written by "
     "`rupture-coder review import`, never on model codes"),
    ([line("human:a", "s1", 1, "rupture", "none", scheme="rupture_v0")],
     "{path}:1: code of scheme 'rupture_v0'; expected rupture_v1; fix: use corrections coded under the current label scheme"),
    ([line("human:a", "s1", 1, "markers", "withdrawal.sulking")],
     "{path}:1: unknown markers code 'withdrawal.sulking'; expected a code of rupture_v1"),
    ([], "{path}: the corrections hold no coded turns; fix: import the annotators' work with `rupture-coder review import` first"),
])
def test_corrections_bad_input_names_file_line_and_fix(run_dir, tmp_path, lines, message):
    path = write_layer(tmp_path / "human.jsonl", lines)
    with pytest.raises(LabelError) as err:
        load_corrections([path], run_dir)
    assert str(err.value) == message.format(path=path)


def test_corrections_bad_run_or_files(run_dir, tmp_path):
    layer = write_layer(tmp_path / "human.jsonl", coding("human:a", "s1", 1, rupture="none"))
    with pytest.raises(ConfigError, match=r"^--corrections needs --run; fix: add --run RUN_DIR"):
        load_corrections([layer], None)
    with pytest.raises(ConfigError, match=r"nowhere: run folder has no turns.jsonl; fix: point at the --out folder"):
        load_corrections([layer], tmp_path / "nowhere")
    with pytest.raises(LabelError, match=r"missing.jsonl: corrections file not found; fix: pass the human layer"):
        load_corrections([tmp_path / "missing.jsonl"], run_dir)
    (tmp_path / "bad.jsonl").write_text('{"session_id": "s1"\n')
    with pytest.raises(LabelError, match=r"bad.jsonl:1: not a JSON line"):
        load_corrections([tmp_path / "bad.jsonl"], run_dir)
    shuffled = write_run(tmp_path / "shuffled", [RECORDS[1], RECORDS[0], *RECORDS[2:]])
    with pytest.raises(InputFormatError, match=r"turns.jsonl \(session s1\): the run's turns of a session are not numbered"):
        load_corrections([layer], shuffled)


def test_corrections_training_uses_only_reviewed_turns(tmp_path):
    run, gold = synthetic_run(tmp_path / "run")
    # the first five turns of each session reviewed, the other eleven not
    layer = write_layer(tmp_path / "human.jsonl", reviewed(gold, "human:a", lambda sid, turn: turn < 5))
    result = load_corrections([layer], run)
    assert result.stats["turns"]["used"] == 6 * 5 and all(len(s.turns) == 16 for s in result.sessions)
    model = RuptureCoder(embedder="hashing.v1", cv=2).fit(result.sessions)
    # were unreviewed turns negatives, there would be 6 * 8 client and therapist rows
    assert (model.n_client_turns_, model.n_therapist_turns_) == (6 * 2, 6 * 3)


# ---------------------------------------------------------------- the train and evaluate commands

def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("corrections")
    run, gold = synthetic_run(folder / "run")
    a = write_layer(folder / "a.jsonl", reviewed(gold, "human:a", lambda sid, turn: turn < 12))
    b = write_layer(folder / "b.jsonl", reviewed(gold, "human:b", lambda sid, turn: sid == "s0" and turn < 4))
    return {"folder": folder, "run": run, "a": a, "b": b}


@pytest.fixture(scope="module")
def trained(synthetic) -> tuple[Path, object]:
    """``train --corrections`` run once for this module; returns (bundle path, CLI result)."""
    out = synthetic["folder"] / "models" / "fixed" / "1.0.0"
    result = invoke("train", "--corrections", synthetic["a"], "--corrections", synthetic["b"], "--run", synthetic["run"],
                    "--embedder", "hashing.v1", "--cv", 2, "--out", out, "--cache-dir", synthetic["folder"] / "cache")
    return out, result


def test_corrections_cli_train_writes_a_bundle_with_the_counts(synthetic, trained):
    out, result = trained
    assert result.exit_code == 0, result.output
    assert re.search(r"corrections: 72 of 72 reviewed turn\(s\) used in 6 session\(s\) \(annotators: human:a 72 turns, "
                     r"human:b 4 turns\); run sessions without corrections: 0", result.stdout)
    assert "turns with several annotators: 4 unanimous, 0 by majority, 0 ties" in result.stdout
    manifest = json.loads((out / "data_manifest.json").read_text())
    assert manifest["counts"] == {"sessions": 6, "turns": 6 * 16}
    assert manifest["corrections"]["turns"] == {"reviewed": 72, "used": 72, "skipped": {}}
    assert [f["name"] for f in manifest["files"]] == ["a.jsonl", "b.jsonl", "turns.jsonl"]
    config = json.loads((out / "config.json").read_text())
    assert config["training"] == {"sessions": 6, "client_turns": 36, "therapist_turns": 36}
    assert "whatever" not in (out / "data_manifest.json").read_text() + (out / "MODEL_CARD.md").read_text()
    # the same configuration again, from --base-model, also on the constructed corpus
    again = synthetic["folder"] / "models" / "fixed" / "1.0.1"
    result = invoke("train", "--corrections", synthetic["a"], "--run", synthetic["run"], "--base-model", out,
                    "--constructed", "--cv", 0, "--out", again, "--cache-dir", synthetic["folder"] / "cache")
    assert result.exit_code == 0, result.output
    assert json.loads((again / "config.json").read_text())["embedder"]["name"] == "hashing.v1"
    manifest = json.loads((again / "data_manifest.json").read_text())
    assert manifest["base_model"] == "fixed@1.0.0" and manifest["counts"]["sessions"] > 6
    result = invoke("evaluate", "--corrections", synthetic["a"], "--run", synthetic["run"], "--model", out,
                    "--cache-dir", synthetic["folder"] / "cache")
    assert result.exit_code == 0, result.output
    assert "fixed@1.0.0 on 6 sessions (held out)" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--corrections", "{a}"], r"^error: --corrections needs --run; fix: add --run RUN_DIR"),
    (["--run", "{run}", "--constructed"], r"^error: --run is only used with --corrections; fix: add --corrections"),
    (["--corrections", "{folder}/none.jsonl", "--run", "{run}"], r"none.jsonl: corrections file not found"),
    (["--corrections", "{a}", "--run", "{folder}"], r"run folder has no turns.jsonl"),
    (["--corrections", "{a}", "--run", "{run}", "--base-model", "{folder}/models/fixed/1.0.0", "--head", "svm"],
     r"^error: --head 'svm' differs from the base model's 'logreg'; fix: drop --head"),
])
def test_corrections_cli_train_bad_options_exit_2(synthetic, trained, args, message):
    out = synthetic["folder"] / "models" / "bad" / "1.0.0"
    result = invoke("train", *[a.format(**synthetic) for a in args], "--embedder", "hashing.v1", "--cv", 0, "--out", out)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert re.search(message, result.stderr.strip()), result.stderr
    assert not out.exists()
