"""Agreement statistics equal reference computations (krippendorff, scikit-learn, a hand-computed
ICC), and the agreement report and command."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from typer.testing import CliRunner

from pipeline.review.agreement import agreement, icc_2_1, write_report
from pipeline.cli._app import app
from pipeline.errors import ConfigError, LabelError
from test_review_export import MODEL, rec, write_run

RUPTURES = ["none", "withdrawal", "confrontation"]
MARKER = {"withdrawal": "withdrawal.denial", "confrontation": "confrontation.defends_self"}

# Ten client turns (s1: turns 1, 3, ..., 11; s2: 1, 3, 5, 7) and one therapist turn between each.
CLIENT_TURNS = [("s1", t) for t in (1, 3, 5, 7, 9, 11)] + [("s2", t) for t in (1, 3, 5, 7)]
# Each coder's rupture code per client turn (None: not coded).
CODES = {
    "human:a": ["none", "withdrawal", "withdrawal", "confrontation", "none", "none", "withdrawal", "none", None, "confrontation"],
    "human:b": ["none", "withdrawal", "none", "confrontation", None, "none", "withdrawal", "withdrawal", "none", "confrontation"],
    "human:c": [None, "withdrawal", "withdrawal", "withdrawal", "none", None, "none", "none", "none", "confrontation"],
}
MODEL_CODES = ["none", "withdrawal", "none", "confrontation", "withdrawal", "none", "withdrawal", "none", "none", "none"]


def human_records(source: str, codes: list) -> list[dict]:
    out = []
    for (sid, turn), code in zip(CLIENT_TURNS, codes):
        if code is None:
            continue
        out.append({"session_id": sid, "turn": turn, "layer": "rupture", "code": code, "score": 1.0,
                    "source": source, "scheme": "rupture_v1"})
        if code != "none":
            out.append({**out[-1], "layer": "markers", "code": MARKER[code]})
    return out


def write_layer(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def run_records() -> list[dict]:
    out = []
    model = dict(zip(CLIENT_TURNS, MODEL_CODES))
    for sid, n in (("s1", 12), ("s2", 8)):
        for turn in range(n):
            if turn % 2 == 0:
                out.append(rec(sid, turn, "therapist", "A therapist turn.", repair="none", start=turn * 100.0))
            else:
                code = model[(sid, turn)]
                out.append(rec(sid, turn, "client", "A client turn.", rupture=code,
                               markers=[MARKER[code]] if code != "none" else [], start=turn * 100.0))
    return out


@pytest.fixture
def layers(tmp_path) -> list[Path]:
    return [write_layer(tmp_path / f"{s.split(':')[1]}.jsonl", human_records(s, c)) for s, c in CODES.items()]


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return write_run(tmp_path / "run", run_records())


def row(report, comparison, layer, code):
    return next(r for r in report["rows"] if (r["comparison"], r["layer"], r["code"]) == (comparison, layer, code))


def reference_pair(a: list, b: list, labels: list) -> dict:
    both = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    xs, ys = [x for x, _ in both], [y for _, y in both]
    index = {v: i for i, v in enumerate(labels)}
    data = np.array([[np.nan if v is None else index[v] for v in seq] for seq in (a, b)])
    return {"n": len(both), "kappa": cohen_kappa_score(xs, ys, labels=labels),
            "alpha": krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"),
            "percent": 100 * sum(x == y for x, y in both) / len(both),
            "confusion": confusion_matrix(xs, ys, labels=labels).tolist()}


def test_agreement_pairwise_rupture_equals_reference(layers):
    report = agreement(layers, layer="rupture")
    got = row(report, "human:a vs human:b", "rupture", "*")
    ref = reference_pair(CODES["human:a"], CODES["human:b"], RUPTURES)
    assert got["n_items"] == ref["n"] == 8
    assert got["cohen_kappa"] == pytest.approx(ref["kappa"], abs=1e-4)
    assert got["krippendorff_alpha"] == pytest.approx(ref["alpha"], abs=1e-4)
    assert got["percent_agreement"] == pytest.approx(ref["percent"], abs=0.01)
    assert got["confusion"] == {"labels": RUPTURES, "matrix": ref["confusion"]}


def test_agreement_per_code_binary_equals_reference(layers):
    report = agreement(layers, layer="markers")
    got = row(report, "human:a vs human:c", "markers", "withdrawal.denial")
    as_binary = lambda codes: [None if c is None else int(c == "withdrawal") for c in codes]  # noqa: E731
    ref = reference_pair(as_binary(CODES["human:a"]), as_binary(CODES["human:c"]), [0, 1])
    assert got["n_items"] == ref["n"]
    assert got["cohen_kappa"] == pytest.approx(ref["kappa"], abs=1e-4)
    assert got["krippendorff_alpha"] == pytest.approx(ref["alpha"], abs=1e-4)
    assert got["positives"] == {"human:a": 3, "human:c": 3}
    one_code = row(agreement(layers, layer="rupture"), "human:a vs human:b", "rupture", "confrontation")
    ref = reference_pair([None if c is None else int(c == "confrontation") for c in CODES["human:a"]],
                         [None if c is None else int(c == "confrontation") for c in CODES["human:b"]], [0, 1])
    assert one_code["cohen_kappa"] == pytest.approx(ref["kappa"], abs=1e-4)


def test_agreement_alpha_over_three_coders_with_missing_data(layers):
    got = row(agreement(layers, layer="rupture"), "all coders", "rupture", "*")
    index = {v: i for i, v in enumerate(RUPTURES)}
    data = np.array([[np.nan if v is None else index[v] for v in CODES[s]] for s in ("human:a", "human:b", "human:c")])
    assert got["krippendorff_alpha"] == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"), abs=1e-4)
    assert got["n_items"] == 10 and got["cohen_kappa"] is None
    shares = []
    for values in zip(*(CODES[s] for s in ("human:a", "human:b", "human:c"))):
        present = [v for v in values if v is not None]
        pairs = [(x, y) for i, x in enumerate(present) for y in present[i + 1:]]
        shares.append(sum(x == y for x, y in pairs) / len(pairs))
    assert got["percent_agreement"] == pytest.approx(100 * sum(shares) / len(shares), abs=0.01)


def test_agreement_model_from_the_run(layers, run_dir):
    report = agreement(layers[:1], run_dir=run_dir, layer="rupture")
    assert report["coders"] == [f"model:{MODEL}", "human:a"]
    got = row(report, f"model:{MODEL} vs human:a", "rupture", "*")
    ref = reference_pair(MODEL_CODES, CODES["human:a"], RUPTURES)
    assert got["n_items"] == 9
    assert got["cohen_kappa"] == pytest.approx(ref["kappa"], abs=1e-4)
    assert got["krippendorff_alpha"] == pytest.approx(ref["alpha"], abs=1e-4)
    repair = row(agreement(layers[:1], run_dir=run_dir), f"model:{MODEL} vs human:a", "repair", "*")
    assert repair["n_items"] == 0 and repair["percent_agreement"] is None  # the humans coded no therapist turn


def test_agreement_undefined_figures_are_none(tmp_path):
    same = [{"session_id": "s1", "turn": t, "layer": "rupture", "code": "none", "source": src}
            for t in (1, 3) for src in ("human:a", "human:b")]
    got = row(agreement([write_layer(tmp_path / "x.jsonl", same)], layer="rupture"), "human:a vs human:b", "rupture", "*")
    assert (got["percent_agreement"], got["cohen_kappa"], got["krippendorff_alpha"]) == (100.0, None, None)


# ---------------------------------------------------------------- ICC(2,1)

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; they report ICC(2,1) = .29.
SHROUT_FLEISS = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


def icc_by_hand(y: list[list[float]]) -> float:
    """ICC(2,1) from the two-way ANOVA sums of squares, written out with plain loops."""
    n, k = len(y), len(y[0])
    grand = sum(map(sum, y)) / (n * k)
    row_means = [sum(r) / k for r in y]
    col_means = [sum(y[i][j] for i in range(n)) / n for j in range(k)]
    ss_rows = k * sum((m - grand) ** 2 for m in row_means)
    ss_cols = n * sum((m - grand) ** 2 for m in col_means)
    ss_total = sum((y[i][j] - grand) ** 2 for i in range(n) for j in range(k))
    ss_error = ss_total - ss_rows - ss_cols
    bms, jms, ems = ss_rows / (n - 1), ss_cols / (k - 1), ss_error / ((n - 1) * (k - 1))
    return (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)


def test_agreement_icc_matches_shrout_fleiss():
    assert icc_2_1(SHROUT_FLEISS) == pytest.approx(icc_by_hand(SHROUT_FLEISS), abs=1e-12)
    assert round(icc_2_1(SHROUT_FLEISS), 2) == 0.29


def test_agreement_icc_degenerate_cases():
    assert icc_2_1([[3, 3], [3, 3]]) is None  # no variance
    assert icc_2_1([[1, 2]]) is None  # one target
    assert icc_2_1([[1], [2]]) is None  # one rater
    assert icc_2_1([[1, float("nan")], [2, 3]]) is None
    assert icc_2_1([[1, 1], [2, 2], [5, 5]]) == pytest.approx(1.0)


def test_agreement_segment_salience_icc(tmp_path):
    # one session, client turns every 100 s: segments of 300 s hold turns 1, (3, 5), 7, (9, 11) ...
    times = {t: t * 100.0 for t in range(0, 24)}
    run = write_run(tmp_path / "run", [rec("s", t, "client" if t % 2 else "therapist", "x.",
                                           rupture="none" if t % 2 else None, repair=None if t % 2 else "none",
                                           start=times[t]) for t in range(24)])
    a = {3: "withdrawal", 5: "withdrawal", 7: "confrontation", 13: "withdrawal", 19: "withdrawal", 21: "withdrawal", 23: "withdrawal"}
    b = {3: "withdrawal", 7: "withdrawal", 13: "withdrawal", 15: "withdrawal", 21: "withdrawal"}
    records = []
    for source, codes in (("human:a", a), ("human:b", b)):
        for t in range(1, 24, 2):
            code = codes.get(t, "none")
            records.append({"session_id": "s", "turn": t, "layer": "rupture", "code": code, "source": source})
            if code != "none":
                records.append({"session_id": "s", "turn": t, "layer": "markers", "code": MARKER[code], "source": source})
    report = agreement([write_layer(tmp_path / "h.jsonl", records)], run_dir=run, layer="rupture")
    seg = {s["type"]: s for s in report["segments"] if s["comparison"] == "human:a vs human:b"}
    # segments (300 s): [1], [3, 5], [7], [9, 11], [13], [15, 17], [19], [21, 23]
    # salience: n=0 -> 1, one human code (score 1.0) -> 3, two -> 3, 3-4 -> 4, >=5 -> 5
    withdrawal = [[1, 1], [3, 3], [1, 3], [1, 1], [3, 3], [1, 3], [3, 1], [3, 3]]
    confrontation = [[1, 1], [1, 1], [3, 1], [1, 1], [1, 1], [1, 1], [1, 1], [1, 1]]
    assert seg["withdrawal"]["n_segments"] == 8
    assert seg["withdrawal"]["icc_2_1"] == pytest.approx(icc_by_hand(withdrawal), abs=1e-4)
    assert seg["confrontation"]["icc_2_1"] == pytest.approx(icc_by_hand(confrontation), abs=1e-4)
    model_rows = [s for s in report["segments"] if s["comparison"].startswith("model:")]
    assert model_rows and all(s["n_segments"] == 8 for s in model_rows)


# ---------------------------------------------------------------- report and errors

def test_agreement_report_files_are_self_contained(layers, run_dir, tmp_path):
    odd = write_layer(tmp_path / "odd.jsonl", [{"session_id": "s1", "turn": 1, "layer": "rupture", "code": "none",
                                                "source": "human:<script>alert(1)</script>"}])
    report = agreement(layers + [odd], run_dir=run_dir)
    paths = write_report(report, tmp_path / "out")
    assert [p.name for p in paths] == ["agreement.json", "agreement.md", "agreement.html"]
    assert json.loads(paths[0].read_text(encoding="utf-8"))["coders"][0] == f"model:{MODEL}"
    page = paths[2].read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert not re.search(r"https?://|src=|href=", page)
    assert "| human:a vs human:b | rupture | * |" in paths[1].read_text(encoding="utf-8")


def test_agreement_errors(layers, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown --layer 'emotion'"):
        agreement(layers, layer="emotion")
    with pytest.raises(ConfigError, match=r"agreement needs at least two coders; found human:a"):
        agreement(layers[:1])
    with pytest.raises(ConfigError, match=r"no coders found"):
        agreement([write_layer(tmp_path / "empty.jsonl", [])])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"session_id": "s1", "turn": 1, "layer": "rupture", "code": "none", "source": "human:x"}\n{oops\n')
    with pytest.raises(LabelError, match=r"bad.jsonl:2: not a JSON line"):
        agreement([bad])
    bad.write_text('{"session_id": "s1", "turn": 1, "layer": "rupture", "code": "angry", "source": "human:x"}\n')
    with pytest.raises(LabelError, match=r"bad.jsonl:1: unknown rupture code 'angry'"):
        agreement([bad])
    bad.write_text("".join(json.dumps({"session_id": "s1", "turn": 1, "layer": "rupture", "code": c, "source": "human:x"}) + "\n"
                           for c in ("none", "withdrawal")))
    with pytest.raises(LabelError, match=r"human:x gives session s1 turn 1 two rupture codes"):
        agreement([bad, layers[0]])


def test_agreement_cli(layers, run_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["agreement", *map(str, layers), "--run", str(run_dir), "--layer", "rupture",
                                 "--out", str(tmp_path / "agr")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "human:a vs human:b" in result.output and "Segment salience: ICC(2,1)" in result.output
    assert (tmp_path / "agr" / "agreement.html").exists()
    bad = runner.invoke(app, ["agreement", str(layers[0]), "--layer", "emotion"])
    assert bad.exit_code == 2 and "error: unknown --layer 'emotion'" in bad.output
    assert math.isfinite(json.loads((tmp_path / "agr" / "agreement.json").read_text())["rows"][0]["n_items"])
