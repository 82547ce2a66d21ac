"""Fixtures of the privacy tests: canary transcripts, a network guard, and `rupture-coder` runs as
real subprocesses with every non-loopback connection blocked.

The blocked runs (one set per test session, shared by test_privacy_network.py and
test_privacy_leaks.py) run in a new network namespace with only loopback up (``unshare --net``,
where this machine allows it) and, in every case, with a ``sitecustomize`` network guard that
refuses and logs any non-loopback connection or name lookup of any Python process (the Prefect
server included).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from canaries import CANARY_CSV, DEFAULT_MODEL, GUARD_SOURCE, Ran, run_cli


@pytest.fixture(scope="session")
def guard_dir(tmp_path_factory) -> Path:
    """A folder holding the network guard as ``sitecustomize.py`` (put it first on PYTHONPATH)."""
    folder = tmp_path_factory.mktemp("netguard")
    shutil.copy(GUARD_SOURCE, folder / "sitecustomize.py")
    return folder


@pytest.fixture(scope="session")
def run_model(request) -> Path:
    """The shipped default model when this checkout has it, else the tiny hashing bundle."""
    if (DEFAULT_MODEL / "config.json").exists():
        return DEFAULT_MODEL
    return request.getfixturevalue("tiny_bundle")


@pytest.fixture(scope="session")
def canary_inputs(tmp_path_factory) -> Path:
    """A folder (its name has spaces and non-ASCII letters) with the canary transcript."""
    folder = tmp_path_factory.mktemp("privacy") / "Séance 1 – Zoë inputs"
    folder.mkdir()
    (folder / "canary sessions ü.csv").write_text(CANARY_CSV, encoding="utf-8", newline="")
    return folder


@pytest.fixture(scope="session")
def blocked_runs(tmp_path_factory, guard_dir, canary_inputs, run_model) -> dict[str, Ran]:
    """The whole pipeline on the canary transcript, network blocked: inspect, deid-check (with
    --evaluate and --report), `code` with --phi fail, redact and warn (in parallel), then
    `review export` of the warn run."""
    work = tmp_path_factory.mktemp("blocked runs")
    outs = {mode: work / f"coded {mode} – ü" for mode in ("fail", "redact", "warn")}
    jobs = {
        "inspect": (["inspect", canary_inputs], None),
        "deid-check": (["deid-check", canary_inputs, "--evaluate", "--report", work / "deid report.json"], None),
        # through Prefect (its temporary server is part of what must stay offline), and --phi redact
        # as `--runner auto` codes one small file: in this process
        **{f"code-{mode}": (["code", canary_inputs, "--out", out, "--model", run_model, "--phi", mode,
                             *(("--runner", "local") if mode != "redact" else ())], out)
           for mode, out in outs.items()},
    }
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(run_cli, name, args, work, guard_dir, out) for name, (args, out) in jobs.items()}
        runs = {name: future.result() for name, future in futures.items()}
    runs["deid-check"].extra["report"] = work / "deid report.json"
    review = work / "review batch.csv"
    runs["review-export"] = run_cli("review-export", ["review", "export", outs["warn"], "--to", "csv",
                                                      "--out", review], work, guard_dir)
    runs["review-export"].extra["files"] = [review, review.with_name("review batch.codes.csv")]
    return runs
