"""The ``code_corpus`` flow: one full run under ``prefect_test_harness`` on the examples plus a
crafted file, the output contract checked on it, a second flow run that must skip everything,
and the flow body run again with each task's ``.fn()`` into another folder (same bytes)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from flows import code_corpus as flow_module
from pipeline.io.files import safe_filename
from pipeline.modeling.bundle import heads_sha256
from pipeline.records import TurnRecord
from pipeline.run import steps as lib
from pipeline.report.html import page_name

EXAMPLES = sorted(p for p in (Path(__file__).parents[2] / "examples").iterdir() if p.suffix != ".py")
TURN_FIELDS = ("session_id", "turn", "source_turns", "source_lines", "speaker", "speaker_id", "start", "end",
               "text", "clean_text", "nonverbal", "rupture", "rupture_scores", "markers", "repair", "repair_score", "strategies",
               "uncertainty", "model")
SESSION_COUNTS = ("turns", "client_turns", "therapist_turns", "other_turns", "withdrawal_turns",
                  "confrontation_turns", "repair_attempts", "episodes", "resolved_episodes")
SESSION_RATINGS = ("rating_withdrawal", "rating_confrontation", "rating_resolution")
# markup short enough to be a tag is dropped from clean_text (which the report shows); this is not
HTML = "<svg onload=alert`1` data-pad=" + "x" * 80 + ">"
# A crafted session whose id is no lowercase slug and whose text tries spreadsheet formulas and
# HTML; a second one with two client fragments in a row (merged into one turn).
CRAFTED = (
    "session_id,turn,speaker,start,end,text\n"
    "Session A,1,T,0,5,\"Welcome back, how has the week been?\"\n"
    "Session A,2,C,5,9,=cmd()\n"
    "Session A,3,T,9,12,Take your time.\n"
    f"Session A,4,C,12,18,{HTML} I don't want to talk about it & that's that.\n"
    "Session A,5,T,18,25,\"+1 to slowing down; I think I pushed too hard last time.\"\n"
    "Session A,6,C,25,30,@SUM(1+1) whatever you think is best.\n"
    "Session A,7,T,30,36,-Let's look at what just happened between us.\n"
    "b-02,1,T,0,4,How are you today?\n"
    "b-02,2,C,4,6,\"Fine, I guess.\"\n"
    "b-02,3,C,6,9,This isn't helping at all and I'm annoyed.\n"
    "b-02,4,T,9,14,I hear that you're frustrated with our work.\n"
)
N_SESSIONS = 7  # 5 in examples/, 2 crafted


@dataclass
class Run:
    inputs: list[str]
    config: lib.RunConfig
    out: Path
    summary: dict
    files: dict[str, bytes]  # snapshot right after the run

    def jsonl(self, name: str) -> list[dict]:
        return [json.loads(line) for line in self.files[name].decode("utf-8").splitlines()]

    def csv(self, name: str) -> list[dict]:
        return list(csv.DictReader(self.files[name].decode("utf-8").splitlines(keepends=True)))


@pytest.fixture(scope="session")
def crafted_inputs(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("crafted-inputs")
    (folder / "crafted.csv").write_text(CRAFTED, encoding="utf-8", newline="")
    return [str(p) for p in EXAMPLES] + [str(folder / "crafted.csv")]


@pytest.fixture(scope="session")
def flow_run(prefect_harness, tiny_bundle, crafted_inputs, tmp_path_factory, snapshot) -> Run:
    """The one full coding run under the Prefect test harness."""
    out = tmp_path_factory.mktemp("flow-run") / "out"
    config = lib.RunConfig(out=str(out), model=str(tiny_bundle), cache_dir=str(out / ".cache"))
    summary = flow_module.code_corpus(crafted_inputs, config)
    return Run(crafted_inputs, config, out, summary, snapshot(out))


# --- the run ---------------------------------------------------------------------------------

def test_code_corpus_flow_codes_every_session(flow_run):
    s = flow_run.summary
    assert (s["sessions_total"], s["sessions_coded"], s["coded_this_run"]) == (N_SESSIONS,) * 3
    assert (s["sessions_failed"], s["files_failed"], s["failures"]) == (0, 0, [])
    assert s["turns"] == len(flow_run.jsonl("turns.jsonl"))


# --- the output contract -----------------------------------------------------------------------

def test_code_corpus_turn_records_follow_the_contract(flow_run):
    records = flow_run.jsonl("turns.jsonl")
    by_session: dict[str, list[dict]] = {}
    for r in records:
        assert sorted(r) == sorted(TURN_FIELDS)  # every field of TurnRecord (JSON keys are written sorted)
        assert TurnRecord.from_dict(r).to_dict() == r  # the on-disk record is the type's record
        by_session.setdefault(r["session_id"], []).append(r)
        assert r["model"] == "tiny@0.0.1"
        assert r["source_turns"] and all(isinstance(t, str) for t in r["source_turns"])
        assert r["speaker"] in ("client", "therapist", "other")
        assert all(set(m) == {"code", "score"} for m in r["markers"] + r["strategies"])
        assert 0 <= r["uncertainty"] <= 1
        if r["speaker"] == "client":
            assert r["rupture"] in ("none", "withdrawal", "confrontation")
            assert set(r["rupture_scores"]) == {"none", "withdrawal", "confrontation"}
            assert sum(r["rupture_scores"].values()) == pytest.approx(1, abs=1e-3)
            assert r["markers"] or r["rupture"] == "none"
        else:
            assert (r["rupture"], r["rupture_scores"], r["markers"]) == (None, None, [])
        if r["speaker"] == "therapist":
            assert r["repair"] in ("none", "repair") and 0 <= r["repair_score"] <= 1
        else:
            assert (r["repair"], r["repair_score"], r["strategies"]) == (None, None, [])
    assert len(by_session) == N_SESSIONS
    for turns in by_session.values():
        assert [r["turn"] for r in turns] == list(range(len(turns)))  # 0-based after segmentation


def test_code_corpus_merges_fragments_and_keeps_source_turns(flow_run):
    b02 = [r for r in flow_run.jsonl("turns.jsonl") if r["session_id"] == "b-02"]
    assert [r["source_turns"] for r in b02] == [["1"], ["2", "3"], ["4"]]
    assert [(r["speaker"], r["speaker_id"], r["start"], r["end"]) for r in b02] == [
        ("therapist", "T", 0, 4), ("client", "C", 4, 9), ("therapist", "T", 9, 14)]


def _flat(record: dict) -> dict:
    """A turns.jsonl record as turns.csv writes it (strings; formula-like cells with ')."""
    from pipeline.io.files import TURN_CSV_FIELDS, safe_cell, turn_csv_row

    row = turn_csv_row(record)
    return {f: safe_cell(row.get(f)) for f in TURN_CSV_FIELDS}


def test_code_corpus_csv_parquet_and_dataset_hold_the_same_rows(flow_run, monkeypatch):
    import pyarrow.parquet as pq

    records = flow_run.jsonl("turns.jsonl")
    assert flow_run.csv("turns.csv") == [_flat(r) for r in records]
    table = pq.read_table(flow_run.out / "turns.parquet")
    assert table.to_pylist() == [{k: r.get(k) for k in table.schema.names} for r in records]
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from datasets import load_from_disk

    dataset = load_from_disk(str(flow_run.out / "turns_dataset"))
    assert dataset.to_list() == table.to_pylist()


def test_code_corpus_session_rows_count_the_turns(flow_run):
    turns = flow_run.jsonl("turns.jsonl")
    sessions = flow_run.jsonl("sessions.jsonl")
    assert [s["session_id"] for s in sessions] == list(dict.fromkeys(t["session_id"] for t in turns))
    for s in sessions:
        mine = [t for t in turns if t["session_id"] == s["session_id"]]
        assert s["turns"] == len(mine)
        assert s["client_turns"] == sum(t["speaker"] == "client" for t in mine)
        assert s["therapist_turns"] == sum(t["speaker"] == "therapist" for t in mine)
        assert s["withdrawal_turns"] == sum(t["rupture"] == "withdrawal" for t in mine)
        assert s["confrontation_turns"] == sum(t["rupture"] == "confrontation" for t in mine)
        assert s["repair_attempts"] == sum(t["repair"] == "repair" for t in mine)
        assert 1 <= s["rating_withdrawal"] <= 5 and 1 <= s["rating_confrontation"] <= 5
        assert s["rating_resolution"] is None if not s["episodes"] else 1 <= s["rating_resolution"] <= 5
        assert s["model"] == "tiny@0.0.1"
    rows = flow_run.csv("sessions.csv")
    assert [r["session_id"] for r in rows] == [s["session_id"] for s in sessions]
    for row, s in zip(rows, sessions):
        assert {k: int(row[k]) for k in SESSION_COUNTS} == {k: s[k] for k in SESSION_COUNTS}
        assert [row[k] for k in SESSION_RATINGS] == ["" if s[k] is None else str(s[k]) for k in SESSION_RATINGS]
        assert json.loads(row["markers"]) == s["markers"]


def test_code_corpus_writes_timelines_and_report_pages_per_session(flow_run):
    sessions = [s["session_id"] for s in flow_run.jsonl("sessions.jsonl")]
    for sid in sessions:
        stem = safe_filename(sid)
        timeline = json.loads(flow_run.files[f"timelines/{stem}.json"])
        assert timeline["session_id"] == sid and {"episodes", "segments", "ratings"} <= set(timeline)
        assert flow_run.files[f"timelines/{stem}.csv"].startswith(b"kind,id,type,")
        assert flow_run.files[f"timelines/{stem}.png"].startswith(b"\x89PNG")
    pages = sorted(n for n in flow_run.files if n.startswith("report/") and n != "report/index.html")
    assert len(pages) == len(sessions)
    index = flow_run.files["report/index.html"].decode("utf-8")
    links = re.findall(r'<a href="([^"#]+\.html)">', index)
    assert sorted(f"report/{href}" for href in links) == pages  # every session linked, every link works
    assert sorted(links) == sorted(page_name(sid) for sid in sessions)


def test_code_corpus_run_json_records_inputs_model_config_and_counts(flow_run):
    from pipeline.modeling.bundle import file_sha256

    info = json.loads(flow_run.files["run.json"])
    assert {"inputs", "model", "config", "rupture_coder", "python", "libraries", "counts", "warnings",
            "failures"} <= set(info)
    assert [i["path"] for i in info["inputs"]] == flow_run.inputs
    assert [i["sha256"] for i in info["inputs"]] == [file_sha256(p) for p in flow_run.inputs]
    assert sum(i["sessions"] for i in info["inputs"]) == N_SESSIONS
    assert (info["model"]["name"], info["model"]["version"]) == ("tiny", "0.0.1")
    assert info["model"]["heads_sha256"] == heads_sha256(Path(flow_run.config.model))
    assert info["config"] == {"model": flow_run.config.model, "format": None, "roles": {}, "columns": {},
                              "phi": "fail", "merge_same_speaker": True}
    assert info["counts"]["sessions_coded"] == N_SESSIONS
    assert info["counts"]["turns"] == len(flow_run.jsonl("turns.jsonl"))
    assert info["failures"] == []
    assert info["warnings"]["count"] == len(info["warnings"]["items"]) >= 1  # the text file's title line


# --- safety of what is written ------------------------------------------------------------------

def test_code_corpus_csv_cells_cannot_run_as_formulas(flow_run):
    texts = [r["text"] for r in flow_run.csv("turns.csv") if r["session_id"] == "Session A"]
    assert "'=cmd()" in texts
    assert "'+1 to slowing down; I think I pushed too hard last time." in texts
    assert "'@SUM(1+1) whatever you think is best." in texts
    assert "'-Let's look at what just happened between us." in texts
    for row in flow_run.csv("turns.csv") + flow_run.csv("sessions.csv"):
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values())


def test_code_corpus_report_pages_escape_transcript_html(flow_run):
    page = flow_run.files[f"report/{page_name('Session A')}"].decode("utf-8")
    assert "<svg onload" not in page
    assert "&lt;svg onload=alert`1` data-pad=" in page  # the transcript
    assert "\\u003csvg onload=alert`1` data-pad=" in page  # the tooltip data (JSON in a script element)
    assert len(re.findall(r"<script[ >]", page)) == page.count("</script>") == 2  # only the page's own


def test_code_corpus_inputs_are_never_modified(flow_run):
    from pipeline.modeling.bundle import file_sha256

    info = json.loads(flow_run.files["run.json"])
    assert [file_sha256(p) for p in flow_run.inputs] == [i["sha256"] for i in info["inputs"]]


# --- resuming and determinism ---------------------------------------------------------------------

def test_code_corpus_flow_rerun_skips_everything_and_changes_no_byte(flow_run, tmp_path, snapshot, same_tree):
    out = tmp_path / "again"
    shutil.copytree(flow_run.out, out)
    config = replace(flow_run.config, out=str(out), cache_dir=str(out / ".cache"))
    summary = flow_module.code_corpus(flow_run.inputs, config)
    assert (summary["coded_this_run"], summary["sessions_skipped_unchanged"]) == (0, N_SESSIONS)
    assert summary["sessions_coded"] == N_SESSIONS
    same_tree(snapshot(out), flow_run.files)


def test_code_corpus_tasks_fn_in_another_folder_give_the_same_bytes(flow_run, tmp_path, code_with_tasks,
                                                                    snapshot, same_tree):
    out = tmp_path / "second"
    config = replace(flow_run.config, out=str(out), cache_dir=str(out / ".cache"))
    summary = code_with_tasks(flow_run.inputs, config)
    assert summary["coded_this_run"] == N_SESSIONS
    same_tree(snapshot(out), flow_run.files)


# --- single tasks with .fn() ----------------------------------------------------------------------

def test_code_corpus_read_inputs_plans_every_session(flow_run, tmp_path):
    config = replace(flow_run.config, out=str(tmp_path / "fresh"))
    plan = flow_module.read_inputs.fn(flow_run.inputs, config)
    assert [t.key for t in plan.tasks] == [k for k, _ in plan.order]
    assert len(plan.tasks) == N_SESSIONS and plan.skipped == 0
    assert plan.model["name"] == "tiny"
    done = flow_module.read_inputs.fn(flow_run.inputs, flow_run.config)  # the coded folder
    assert (done.tasks, done.skipped, done.order) == ([], N_SESSIONS, plan.order)


def test_code_corpus_task_runner_names_the_runner():
    from prefect.task_runners import ThreadPoolTaskRunner

    runner = flow_module.task_runner("local", 3)
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3
    dask = flow_module.task_runner("dask", 2)
    assert type(dask).__name__ == "DaskTaskRunner"
    assert dask.cluster_kwargs["n_workers"] == 2



# --- Dask -------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_code_corpus_dask_runner_gives_the_same_files(flow_run, tmp_path, snapshot, same_tree, prefect_env):
    """`rupture-coder code --runner dask --workers 2` (a LocalCluster on loopback, chunks of 2
    sessions spread over both workers) writes the same files as the local run."""
    import subprocess
    import sys

    out = tmp_path / "dask"
    env = prefect_env(tmp_path / "prefect-home")
    command = [str(Path(sys.executable).parent / "rupture-coder"), "code", *flow_run.inputs, "--out", str(out),
               "--model", flow_run.config.model, "--runner", "dask", "--workers", "2", "--chunk-size", "2"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1100)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = snapshot(out, (".cache/",))  # written by two processes at once: bytes depend on timing
    assert files["turns.jsonl"] == flow_run.files["turns.jsonl"]
    assert files["sessions.jsonl"] == flow_run.files["sessions.jsonl"]
    same_tree(files, {k: v for k, v in flow_run.files.items() if not k.startswith(".cache/")})
