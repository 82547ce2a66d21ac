"""`rupture-coder code` on every real transcript in ../shared/data with the shipped default model:
the main job end to end (slow: the real encoder on several thousand turns)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / ".." / "shared" / "data"
SCRIPT = Path(sys.executable).parent / "rupture-coder"


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data (the real transcripts) is not present")
def test_code_all_real_transcripts_end_to_end(tmp_path):
    from pipeline.io.readers import load_corpus

    corpus, problems = load_corpus([str(DATA)])
    assert not [p for p in problems if p.level == "error"]
    out = tmp_path / "real"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "200"}
    proc = subprocess.run([str(SCRIPT), "code", str(DATA), "--out", str(out), "--phi", "warn"],
                          capture_output=True, text=True, env=env, timeout=1700)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "Loading weights" not in proc.stderr  # no library progress bars between ours
    info = json.loads((out / "run.json").read_text())
    assert info["model"]["name"] == "rupture-default" and info["failures"] == []
    assert info["counts"]["sessions_coded"] == len(corpus.sessions) > 100
    rows = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
    assert len(rows) == info["counts"]["turns"] > 5000
    assert len({r["session_id"] for r in rows}) == len(corpus.sessions)  # ids made unique across files
    client = [r for r in rows if r["speaker"] == "client"]
    therapist = [r for r in rows if r["speaker"] == "therapist"]
    assert client and therapist
    # the model finds ruptures and repairs in real sessions at plausible rates, not none nor all
    rupture_rate = sum(r["rupture"] != "none" for r in client) / len(client)
    repair_rate = sum(r["repair"] == "repair" for r in therapist) / len(therapist)
    assert 0.01 < rupture_rate < 0.4 and 0.005 < repair_rate < 0.4, (rupture_rate, repair_rate)
    assert all(r["rupture"] is None for r in therapist) and all(r["repair"] is None for r in client)
    sessions = [json.loads(line) for line in (out / "sessions.jsonl").read_text().splitlines()]
    assert len(sessions) == len(corpus.sessions)
    assert len(list((out / "report").glob("*.html"))) == len(sessions) + 1
    assert len(list((out / "timelines").glob("*.png"))) == len(sessions)
