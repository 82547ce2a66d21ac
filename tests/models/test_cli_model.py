"""`rupture-coder train` and `evaluate` in process (CliRunner), on the hashing embedder."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from pipeline.modeling.bundle import load_bundle
from pipeline.cli._app import app

BUNDLE_FILES = {"config.json", "heads.json", "heads.safetensors", "metrics.json", "metrics.md", "data_manifest.json", "MODEL_CARD.md"}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def assert_clean_error(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.search(pattern, result.stderr.strip()), result.stderr


@pytest.fixture(scope="module")
def bundle(labelled_csv, tmp_path_factory):
    """``train`` run once for this module; returns (bundle path, CLI result)."""
    out = tmp_path_factory.mktemp("models") / "tiny" / "0.1.0"
    result = invoke("train", labelled_csv["train"], "--out", out, "--embedder", "hashing.v1", "--cv", 2,
                    "--cache-dir", out.parent.parent / "cache")
    return out, result


def test_cli_model_train_writes_a_complete_bundle(bundle, labelled_csv):
    out, result = bundle
    assert result.exit_code == 0, result.output
    assert f"wrote model bundle {out}" in result.stdout.replace("\n", "")
    assert "rupture vs none F1" in result.stdout
    assert {p.name for p in out.iterdir()} == BUNDLE_FILES
    config = json.loads((out / "config.json").read_text())
    assert (config["name"], config["version"], config["embedder"]["name"]) == ("tiny", "0.1.0", "hashing.v1")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["cv"]["folds"] == 2 and metrics["cv"]["client"]["n_sessions"] == 6
    manifest = json.loads((out / "data_manifest.json").read_text())
    assert manifest["counts"] == {"sessions": 6, "turns": 6 * 24}
    assert [f["name"] for f in manifest["files"]] == ["train.csv"]
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("# Model card: tiny 0.1.0") and "## Intended use" in card and "## Limits" in card
    assert (out / "metrics.md").read_text().startswith("### Cross-validation")
    assert load_bundle(out).model.cache_dir is None


def test_cli_model_evaluate_prints_and_writes_metrics(bundle, labelled_csv, tmp_path):
    out, _ = bundle
    result = invoke("evaluate", labelled_csv["test"], "--model", out, "--out", tmp_path / "eval",
                    "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert "tiny@0.1.0 on 6 sessions (held out)" in result.stdout
    assert "rupture vs none F1" in result.stdout and "repair F1" in result.stdout
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["client"]["n_sessions"] == 6
    assert metrics["client"]["rupture_vs_none"]["f1"] > 0.5
    assert (tmp_path / "eval" / "metrics.md").read_text().startswith("### tiny@0.1.0 on 6 sessions")


def test_cli_model_evaluate_cross_validates_the_bundle_configuration(bundle, labelled_csv, tmp_path):
    out, _ = bundle
    result = invoke("evaluate", labelled_csv["test"], "--model", out, "--cv", 2, "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert "tiny@0.1.0 on 6 sessions (2-fold CV)" in result.stdout


def test_cli_model_train_refuses_an_existing_bundle(bundle, labelled_csv):
    out, _ = bundle
    before = (out / "heads.safetensors").read_bytes()
    result = invoke("train", labelled_csv["train"], "--out", out, "--embedder", "hashing.v1", "--cv", 0)
    assert_clean_error(result, r"^error: .*0\.1\.0: bundle folder already exists \(bundles are write-once\); "
                               r"fix: choose a new version$")
    assert (out / "heads.safetensors").read_bytes() == before


def test_cli_model_train_out_must_be_name_and_version(labelled_csv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("train", labelled_csv["train"], "--out", "justaname", "--embedder", "hashing.v1")
    assert_clean_error(result, r"^error: --out must be NAME/VERSION; found justaname; fix: e\.g\. --out models/")
    assert not (tmp_path / "justaname").exists()


def test_cli_model_train_unknown_embedder(labelled_csv, tmp_path):
    result = invoke("train", labelled_csv["train"], "--out", tmp_path / "m" / "1", "--embedder", "nope.v1",
                    "--cv", 0, "--cache-dir", tmp_path / "cache")
    assert_clean_error(result, r"^error: unknown embedder 'nope\.v1'; expected one of")
    assert not (tmp_path / "m" / "1").exists()


def test_cli_model_train_cv_repeats_is_kept_in_the_bundle_and_checked(labelled_csv, tmp_path):
    out = tmp_path / "m" / "1.0.0"
    result = invoke("train", labelled_csv["train"], "--out", out, "--embedder", "hashing.v1", "--cv", 0,
                    "--cv-repeats", 2, "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["cv_repeats"] == 2
    assert load_bundle(out).model.cv_repeats == 2
    again = invoke("train", labelled_csv["train"], "--out", tmp_path / "m" / "1.0.1", "--base-model", out,
                   "--cv", 0, "--cache-dir", tmp_path / "cache")
    assert again.exit_code == 0, again.output
    assert load_bundle(tmp_path / "m" / "1.0.1").model.cv_repeats == 2  # inherited from the base model
    bad = invoke("train", labelled_csv["train"], "--out", tmp_path / "m" / "1.0.2", "--embedder", "hashing.v1",
                 "--cv-repeats", 0, "--cache-dir", tmp_path / "cache")
    assert_clean_error(bad, r"^error: --cv-repeats must be at least 1; found 0")


def test_cli_model_train_with_one_fold(labelled_csv, tmp_path):
    result = invoke("train", labelled_csv["train"], "--out", tmp_path / "m" / "1", "--embedder", "hashing.v1",
                    "--cv", 1, "--cache-dir", tmp_path / "cache")
    assert_clean_error(result, r"^error: cross-validation needs at least 2 folds; found 1; fix: use --cv 2")


def test_cli_model_evaluate_refuses_existing_metrics(bundle, labelled_csv):
    out, _ = bundle
    before = (out / "metrics.json").read_bytes()
    result = invoke("evaluate", labelled_csv["test"], "--model", out, "--out", out)
    assert_clean_error(result, r"^error: .*0\.1\.0: --out already holds metrics; found metrics\.json, metrics\.md; "
                               r"fix: choose a new folder")
    assert (out / "metrics.json").read_bytes() == before


def test_cli_model_evaluate_out_must_be_a_folder(bundle, labelled_csv, write_file):
    out, _ = bundle
    file = write_file("taken.txt", "x")
    result = invoke("evaluate", labelled_csv["test"], "--model", out, "--out", file)
    assert_clean_error(result, r"^error: .*taken\.txt: --out must be a folder; found a file")


def test_cli_model_evaluate_missing_model(labelled_csv, tmp_path):
    result = invoke("evaluate", labelled_csv["test"], "--model", tmp_path / "none" / "1")
    assert_clean_error(result, r"^error: model '.*none/1' not found; expected a bundle directory")


def test_cli_model_evaluate_leave_one_corpus_out(bundle, labelled_csv, tmp_path):
    out, _ = bundle
    result = invoke("evaluate", labelled_csv["train"], labelled_csv["test"], "--model", out, "--leave-one-corpus-out",
                    "--out", tmp_path / "loco", "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "loco" / "metrics.json").read_text())
    assert set(metrics) == {"without train -> train", "without test -> test", "pooled"}
    assert metrics["without test -> test"]["client"]["n_sessions"] == 6
    assert "ROC-AUC" in (tmp_path / "loco" / "metrics.md").read_text()


def test_cli_model_evaluate_leave_one_corpus_out_over_several_training_orders(bundle, labelled_csv, tmp_path):
    out, _ = bundle
    result = invoke("evaluate", labelled_csv["train"], labelled_csv["test"], "--model", out, "--leave-one-corpus-out",
                    "--orders", 3, "--out", tmp_path / "loco", "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "loco" / "metrics.json").read_text())
    spread = metrics["without test -> test"]["order_spread"]
    assert spread["fits"] == 3
    low, median, high = spread["rupture_roc_auc"]
    assert low <= median <= high
    first = metrics["without test -> test"]["client"]["rupture_vs_none"]["roc_auc"]
    assert low <= first <= high  # the first fit is one of the three
    assert "Over 3 fits that differ only in the order of the training sessions" in (tmp_path / "loco" / "metrics.md").read_text()
    bad = invoke("evaluate", labelled_csv["test"], "--model", out, "--orders", 3, "--cache-dir", tmp_path / "cache")
    assert_clean_error(bad, r"^error: --orders is for --leave-one-corpus-out; found --orders 3")


def test_cli_model_evaluate_leave_one_corpus_out_needs_two_corpora(bundle, labelled_csv, tmp_path):
    out, _ = bundle
    result = invoke("evaluate", labelled_csv["test"], "--model", out, "--leave-one-corpus-out",
                    "--cache-dir", tmp_path / "cache")
    assert_clean_error(result, r"needs sessions of at least two corpora")


def test_cli_model_adapt_writes_a_bundle_with_the_reviewed_sessions_thresholds(bundle, labelled_csv, tmp_path):
    base, _ = bundle
    out = tmp_path / "models" / "tiny-adapted" / "0.1.0-a1"
    result = invoke("adapt", labelled_csv["test"], "--model", base, "--out", out, "--min-positives", 3,
                    "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert "in sample" in result.stdout and f"wrote model bundle {out}" in result.stdout.replace("\n", "")
    assert {p.name for p in out.iterdir()} == BUNDLE_FILES
    manifest = json.loads((out / "data_manifest.json").read_text())
    record = manifest["threshold_adaptation"]
    assert record["base_model"] == "tiny@0.1.0" and record["reviewed_sessions"] == 6
    rupture, repair = record["heads"]
    assert rupture["head"] == "rupture" and rupture["kept_because"] is None and rupture["positives"] >= 3
    # adapted only because, with each reviewed session left out, the new threshold won
    assert rupture["held_out_after"] > rupture["held_out_before"] and "held-out F1" in result.stdout
    adapted, original = load_bundle(out), load_bundle(base)
    assert adapted.model.rupture_threshold_ == rupture["after"]
    assert adapted.model.repair_threshold_ == (repair["after"])
    assert adapted.model.marker_thresholds_ == pytest.approx(original.model.marker_thresholds_)
    assert adapted.config["name"] == "tiny-adapted" and adapted.config["version"] == "0.1.0-a1"
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("# Model card: tiny-adapted 0.1.0-a1") and "`tiny@0.1.0` with decision thresholds" in card
    assert "# Model card: tiny 0.1.0" in card  # the base model's card follows
    assert json.loads((out / "metrics.json").read_text())["threshold_adaptation"] == record


def test_cli_model_adapt_refuses_without_reviewed_sessions_or_enough_positives(bundle, labelled_csv, tmp_path):
    base, _ = bundle
    out = tmp_path / "models" / "x" / "1.0.0"
    assert_clean_error(invoke("adapt", "--model", base, "--out", out), "adapt needs reviewed sessions.*--corrections")
    assert_clean_error(invoke("adapt", labelled_csv["test"], "--model", base, "--out", out, "--min-positives", 10**6,
                              "--cache-dir", tmp_path / "cache"),
                       "no threshold could be adapted; no bundle written.*review more sessions")
    assert not out.exists()
    assert_clean_error(invoke("adapt", labelled_csv["test"], "--model", base, "--out", base),
                       "bundle folder already exists")
    assert_clean_error(invoke("adapt", labelled_csv["test"], "--model", base, "--out", out, "--min-positives", 0),
                       "--min-positives must be at least 1")
    assert not out.exists()


def test_cli_model_adapt_warns_when_sessions_are_only_partly_reviewed(bundle, labelled_csv, tmp_path):
    import csv

    base, _ = bundle
    rows = list(csv.DictReader(open(labelled_csv["test"], encoding="utf-8")))
    client = [r for r in rows if r["speaker"] == "client"]
    for r in client[::4]:  # a quarter of the client turns left unreviewed
        r["rupture"] = r["markers"] = ""
    partial = tmp_path / "partial.csv"
    with open(partial, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = invoke("adapt", partial, "--model", base, "--out", tmp_path / "m" / "x" / "1.0.0", "--min-positives", 3,
                    "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    out = result.stdout.replace("\n", " ")
    expected = f"rupture: {len(client) - len(client[::4])} of the {len(client)} turns of the reviewed sessions"
    assert expected in " ".join(out.split()), result.stdout
    assert "repair:" not in out.split("warning", 1)[1]  # therapist turns were all reviewed
