"""`rupture-coder bench`: the replicated corpus, option errors, and one small real measurement
(slow: it starts `rupture-coder code` processes and Prefect's temporary server)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli._app import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def test_bench_replicate_makes_unique_sessions_one_file_each(tmp_path, tiny_bundle):
    from pipeline.run import steps as lib
    from pipeline.run.bench import replicate
    from pipeline.io.readers import load_corpus

    plan = lib.plan_run([str(EXAMPLES / "mi_sessions.csv")], lib.RunConfig(out=str(tmp_path / "o"), model=str(tiny_bundle)))
    n = len(plan.tasks) * 2 + 1
    sessions = [lib.read_session(t, lib.RunConfig(out="")) for t in plan.tasks]
    replicate(sessions, n, tmp_path / "rep")
    files = sorted((tmp_path / "rep").iterdir())
    assert len(files) == n
    corpus, problems = load_corpus([str(tmp_path / "rep")])
    assert problems == [] and len({s.session_id for s in corpus.sessions}) == n
    first = sessions[0]
    again = next(s for s in corpus.sessions if s.session_id == f"r{len(plan.tasks):05d}")
    assert [(t.speaker_role, t.text) for t in again.turns] == [(t.speaker_role, t.text) for t in first.turns]
    with open(files[0], newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == ["session_id", "turn", "speaker", "start", "end", "text"]


@pytest.mark.parametrize("args, message", [
    ([str(EXAMPLES), "--sizes", "10,x"], "--sizes must be comma-separated whole numbers"),
    ([str(EXAMPLES), "--repeat", "0"], "--repeat and --sizes must be at least 1"),
    (["nowhere/"], "benchmark inputs not found"),
    ([str(EXAMPLES), "--variant", "--wrokers 2"], "--variant is not a set of `rupture-coder code` options"),
    ([str(EXAMPLES), "--variant", "--workers two"], "--variant is not a set of `rupture-coder code` options"),
])
def test_bench_bad_options_exit_2(args, message, tmp_path):
    result = CliRunner().invoke(app, ["bench", *args, "--results", str(tmp_path / "r")], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_bench_measures_everything_on_the_examples(tiny_bundle, tmp_path):
    from pipeline.run.bench import markdown, run_bench

    result, path = run_bench([str(EXAMPLES)], tmp_path / "results", str(tiny_bundle), repeat=1, sizes=(3,),
                             variants=("--workers 2",))
    assert json.loads(path.read_text()) == result and path.with_suffix(".md").read_text() == markdown(result)
    assert result["turns"] > 0 and result["unique_texts"] <= result["turns"]
    for key in ("library_cold", "library_cold_no_png", "library_warm", "cli_cold", "cli_cold_prefect"):
        assert result[key]["seconds"] > 0 and result[key]["ratio_to_encoder"] > 0, key
    assert result["library_cold"]["turns"] == result["turns"]
    assert result["fast_encoder"]["embedder"] == "minilm-l6-onnx-int8.v2" and result["fast_encoder"]["seconds"] > 0
    assert set(result["library_cold"]["steps"]) == {"read_and_plan", "read_sessions", "deid_gate", "segment", "embed", "classify",
                                                    "episodes_timelines", "write_sessions", "write_corpus"}
    cold = result["library_cold"]  # the time inside the encoder is part of the embed step
    assert 0 < cold["embed_in_encoder"] <= cold["steps"]["embed"] + 0.01
    assert result["library_warm"]["embed_in_encoder"] == 0  # every vector cached: no encoding
    assert "s inside the encoder, chunk by chunk" in markdown(result)
    assert len(result["encoder"]["passes"]) == 1 and result["library_cold"]["paired"]["ratio"]  # repeat=1: one pair
    assert "the raw encoder pass just before it" in markdown(result)
    cli = result["cli_cold"]["paired"]  # each `code` run paired with a raw encoder pass of its own
    assert len(cli["raw_seconds"]) == 1
    assert abs(cli["ratio"][0] - cli["raw_seconds"][0] / result["cli_cold"]["seconds"]) < 0.002  # both rounded
    assert "Each `rupture-coder code` run against a raw encoder pass" in markdown(result)
    assert len(result["cli_cold_prefect"]["paired"]["raw_seconds"]) == 1  # through Prefect, paired as well
    assert "| the same with `--runner local` (Prefect" in markdown(result)
    assert "Each `rupture-coder code --runner local` run against a raw encoder pass" in markdown(result)
    from pipeline.modeling.embed import get_embedder
    from pipeline.run.steps import cached_bundle
    assert "encode" not in vars(get_embedder(cached_bundle(str(tiny_bundle), None).model.embedder))  # unwrapped
    lat = result["latency"]
    assert lat["one_session_unchanged_rerun"]["seconds"] < lat["one_session_cold"]["seconds"]
    assert lat["prefect_server_start"] > 0 and lat["model_load"] > 0
    assert lat["one_session_worker"]["seconds"] > 0 and "jobs_in_worker" in lat["one_session_worker"]
    assert "running background worker" in markdown(result)
    [row] = result["scale"]
    assert row["sessions"] == 3 and row["peak_rss_mib"] > 50
    assert row["unchanged_rerun_seconds"] < row["seconds"]
    [variant] = row["variants"]
    assert variant["options"] == "--workers 2" and variant["seconds"] > 0 and variant["ratio_to_encoder"] > 0
    assert "| `--no-png --workers 2` |" in markdown(result)
    assert "| sessions | turns |" in markdown(result)


def test_bench_pairs_code_runs_that_report_seconds_only():
    from pipeline.run.bench import markdown, paired_ratios

    p = paired_ratios([50.0, 52.0], [{"seconds": 62.5, "peak_rss_mib": 1}, {"seconds": 65.0, "peak_rss_mib": 1}])
    assert p == {"raw_seconds": [50.0, 52.0], "ratio": [0.8, 0.8], "median_ratio": 0.8}
    text = markdown({"machine": {"cpu_count": 2, "torch": "t", "torch_threads": 2, "python": "3"}, "sessions": 1,
                     "turns": 2, "unique_texts": 2, "date": "d", "encoder": {"seconds": 1.0, "turns_per_s": 2.0},
                     "cli_cold": {"seconds": 62.5, "turns_per_s": 0.03, "ratio_to_encoder": 0.8, "paired": p}})
    assert "raw passes 50.0, 52.0 s): ratio 0.8, 0.8 (median 0.8)" in text


def test_bench_pairs_each_cold_run_with_the_raw_pass_before_it():
    from pipeline.run.bench import paired_ratios

    runs = [{"seconds": 80.0, "steps": {"embed": 63.0}, "embed_in_encoder": 62.0},
            {"seconds": 100.0, "steps": {"embed": 70.0}, "embed_in_encoder": 69.0}]
    p = paired_ratios([60.0, 50.0], runs)
    assert p["ratio"] == [0.75, 0.5] and p["median_ratio"] == 0.625
    assert p["embed_step"] == [1.05, 1.4] and p["embed_in_encoder"] == [1.033, 1.38]
    assert p["raw_seconds"] == [60.0, 50.0] and p["median_embed_step"] == 1.225


def test_bench_profile_cached_reports_steps_and_functions_without_text(tmp_path, tiny_bundle, capsys):
    """benchmarks/profile_cached.py: the raw encoder, the cached run's steps and its profile."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("profile_cached", ROOT / "benchmarks" / "profile_cached.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source = EXAMPLES / "mi_sessions.csv"
    module.main([str(source), "--model", str(tiny_bundle), "--top", "5", "--save", str(tmp_path / "run.prof")])
    out = capsys.readouterr().out
    assert "raw encoder on the unique texts:" in out and "% of the raw encoder" in out
    steps = out.split("steps (s): ")[1].splitlines()[0]
    for name in ("deid_gate", "embed", "classify", "write_sessions", "write_corpus"):
        assert name in steps
    assert "top 5 by cumulative" in out and "top 5 by tottime" in out and "code_corpus" in out
    assert (tmp_path / "run.prof").stat().st_size > 0
    texts = [row["text"] for row in csv.DictReader(source.open(encoding="utf-8")) if len(row["text"]) > 20]
    assert texts and not any(t in out for t in texts)  # no transcript text printed


def test_bench_embed_step_ab_alternates_the_writer_process(tiny_bundle, capsys):
    """benchmarks/embed_step_ab.py: runs with and without the writer process, each against a raw pass."""
    import importlib.util

    from pipeline.run import bench

    spec = importlib.util.spec_from_file_location("embed_step_ab", ROOT / "benchmarks" / "embed_step_ab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    original = bench.code_corpus
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs["background_writes"])
        return original(*args, **kwargs)

    bench.code_corpus = spy
    try:
        rows = module.main([str(EXAMPLES), "--model", str(tiny_bundle), "--pairs", "1"])
    finally:
        bench.code_corpus = original
    assert calls == [True, False] and [r["writer_process"] for r in rows] == [True, False]
    assert all(r["run_s"] > 0 and r["ratio"] > 0 and r["inside"] <= r["embed"] + 0.01 for r in rows)
    out = capsys.readouterr().out
    assert [json.loads(line) for line in out.splitlines() if line.startswith("{")] == rows
    texts = [row["text"] for row in csv.DictReader((EXAMPLES / "mi_sessions.csv").open(encoding="utf-8"))
             if len(row["text"]) > 20]
    assert texts and not any(t in out for t in texts)  # no transcript text printed


def test_bench_memory_over_time_samples_every_process_of_a_code_run(tmp_path, tiny_bundle, capsys):
    """benchmarks/memory_over_time.py: a real `code` process sampled from /proc, peaks per process
    split into anonymous and file-backed pages, every sample in the CSV, no transcript text."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("memory_over_time", ROOT / "benchmarks" / "memory_over_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.role(-1) == "?"  # a process gone before it was named
    module.main([str(EXAMPLES / "mi_sessions.csv"), "--sessions", "3", "--csv", str(tmp_path / "m.csv"),
                 "--option=--runner=inline", f"--option=--model={tiny_bundle}"])
    out = capsys.readouterr().out
    assert out.startswith("3 sessions: exit status 0")
    rows = list(csv.DictReader((tmp_path / "m.csv").open(encoding="utf-8")))
    assert rows and {r["process"] for r in rows} >= {"code"}
    peak = max(int(r["resident_mib"]) for r in rows if r["process"] == "code")
    assert peak > 20 and "| code (" in out and f"| {peak:,} |" in out
    assert all(int(r["resident_mib"]) + 1 >= int(r["anonymous_mib"]) + int(r["file_backed_mib"]) - 1 for r in rows)
    texts = [row["text"] for row in csv.DictReader((EXAMPLES / "mi_sessions.csv").open(encoding="utf-8"))
             if len(row["text"]) > 20]
    assert texts and not any(t in out for t in texts)  # no transcript text printed
    assert not any(t in (tmp_path / "m.csv").read_text(encoding="utf-8") for t in texts)


def test_bench_cpu_budget_pairs_a_raw_pass_with_a_code_run_and_bounds_the_ratio(tmp_path, tiny_bundle, capsys):
    """benchmarks/cpu_budget.py: a raw encoder pass and a real `code` process per pair, the run's
    CPU from its wait status split by process role, the packing bound, no transcript text."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cpu_budget", ROOT / "benchmarks" / "cpu_budget.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.cpu_seconds(-1) is None  # a process gone before it was sampled
    busy = module.cpu_seconds(__import__("os").getpid())
    assert busy is not None and busy > 0
    module.main([str(EXAMPLES / "mi_sessions.csv"), "--pairs", "1", "--model", str(tiny_bundle), "--cores", "2",
                 "--json", str(tmp_path / "c.json"), "--option=--runner=inline"])
    out = capsys.readouterr().out
    (pair,) = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))["pairs"]
    raw, run = pair["raw"], pair["run"]
    assert raw["texts"] > 10 and raw["seconds"] > 0 and run["exit"] == 0 and run["cpu"] > 0
    assert "main" in run["cpu_by_process"] and sum(run["cpu_by_process"].values()) == pytest.approx(run["cpu"], abs=0.5)
    assert pair["ratio"] == round(raw["seconds"] / run["seconds"], 3)
    assert pair["bound"] == round(raw["seconds"] / max(raw["seconds"], run["cpu"] / 2), 3) and pair["bound"] <= 1
    assert f"| {pair['ratio']} | {pair['bound']} |" in out
    texts = [row["text"] for row in csv.DictReader((EXAMPLES / "mi_sessions.csv").open(encoding="utf-8"))
             if len(row["text"]) > 20]
    assert texts and not any(t in out for t in texts)  # no transcript text printed
    assert not any(t in (tmp_path / "c.json").read_text(encoding="utf-8") for t in texts)
