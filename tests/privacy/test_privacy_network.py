"""No network: ``import pipeline`` sets the offline and no-telemetry switches (keeping values the
user set), the network guard used by the privacy tests does catch outbound attempts, and the
whole pipeline (read, deid-check, code with the model, report, review export) runs with every
non-loopback connection blocked and never tries one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest
from canaries import blocked, guarded_env, unshare_works

from pipeline.offline import OFFLINE_ENV

SWITCHES = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
PRINT_ENV = f"import json, os, pipeline; print(json.dumps({{k: os.environ.get(k) for k in {sorted(OFFLINE_ENV)!r}}}))"


def env_after_import(**preset: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_ENV}
    proc = subprocess.run([sys.executable, "-c", PRINT_ENV], capture_output=True, text=True, timeout=120,
                          env={**env, **preset})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_privacy_import_sets_offline_switches_keeping_user_values():
    got = env_after_import()
    assert {k: got[k] for k in SWITCHES} == SWITCHES
    assert all(got[k] is not None for k in OFFLINE_ENV)  # HF telemetry, tokenizers parallelism too
    explicit = {"HF_HUB_OFFLINE": "0", "DO_NOT_TRACK": "0", "PREFECT_SERVER_ANALYTICS_ENABLED": "true"}
    got = env_after_import(**explicit)
    assert {k: got[k] for k in explicit} == explicit  # an explicit user value wins
    assert {k: got[k] for k in ("TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")} == {
        "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


GUARD_PROBE = """
import socket, sys
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
local = socket.create_connection(server.getsockname(), timeout=5)  # loopback: allowed
refused = []
for attempt in (lambda: socket.getaddrinfo("example.org", 443),
                lambda: socket.socket().connect(("192.0.2.1", 80)),
                lambda: socket.socket(socket.AF_INET6).connect_ex(("2001:db8::1", 80, 0, 0))):
    try:
        attempt()
    except OSError:
        refused.append(True)
print(len(refused))
"""


def test_privacy_network_guard_refuses_and_logs_non_loopback_attempts(guard_dir, tmp_path):
    log = tmp_path / "guard.log"
    proc = subprocess.run([sys.executable, "-c", GUARD_PROBE], capture_output=True, text=True, timeout=60,
                          env=guarded_env(guard_dir, log, tmp_path / "prefect"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3"
    lines = [line for line in log.read_text().splitlines() if line and not line.startswith(" ")]
    assert [line.split()[:2] for line in lines] == [
        ["getaddrinfo", "'example.org'"], ["connect", "'192.0.2.1'"], ["connect", "'2001:db8::1'"]]


def test_privacy_unshare_leaves_only_loopback():
    if not unshare_works():
        pytest.skip("no new network namespace here (needs root or user namespaces); the guard alone is used")
    probe = ("import socket; s = socket.socket(); s.settimeout(5); "
             "print(s.connect_ex(('192.0.2.1', 80)), socket.gethostbyname('localhost'))")
    proc = subprocess.run(blocked([sys.executable, "-c", probe]), capture_output=True, text=True, timeout=60)
    code, local = proc.stdout.split()
    assert int(code) != 0 and local == "127.0.0.1"  # unreachable network, working loopback


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_privacy_full_pipeline_runs_with_network_blocked(blocked_runs, run_model):
    """read (inspect), deid-check --evaluate, code (fail/redact/warn), report, review export."""
    expected = {"inspect": 0, "deid-check": 1, "code-fail": 1, "code-redact": 0, "code-warn": 0,
                "review-export": 0}
    assert {name: run.returncode for name, run in blocked_runs.items()} == expected, "\n\n".join(
        f"{name}: {run.returncode}\n{run.output[-3000:]}" for name, run in blocked_runs.items())
    for name, run in blocked_runs.items():
        assert run.net_attempts() == "", f"{name} tried the network:\n{run.net_attempts()[:3000]}"
    for mode in ("fail", "redact", "warn"):
        out = blocked_runs[f"code-{mode}"].out
        for name in ("turns.jsonl", "turns.csv", "turns.parquet", "sessions.csv", "run.json", "report/index.html"):
            assert (out / name).is_file(), f"{mode}: {name}"
        info = json.loads((out / "run.json").read_text(encoding="utf-8"))
        assert info["model"]["path"] == str(run_model) and info["phi"]["mode"] == mode
    evaluation = json.loads(blocked_runs["deid-check"].extra["report"].read_text(encoding="utf-8"))["evaluation"]
    assert evaluation["patterns_only"]["overall"]["recall"] >= 0.85
    assert all(path.is_file() for path in blocked_runs["review-export"].extra["files"])


def test_privacy_loopback_servers_only(guard_dir, tmp_path):
    """The guard lets a loopback server and client talk (what Prefect's temporary server needs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    threading.Thread(target=lambda: server.accept()[0].sendall(b"ok"), daemon=True).start()
    port = server.getsockname()[1]
    code = f"import socket; s = socket.create_connection(('localhost', {port}), timeout=5); print(s.recv(2).decode())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=guarded_env(guard_dir, tmp_path / "guard.log", tmp_path / "prefect"))
    server.close()
    assert proc.stdout.strip() == "ok", proc.stderr
    assert not (tmp_path / "guard.log").exists()
