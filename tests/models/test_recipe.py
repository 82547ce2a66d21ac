"""The default model's recipe, in its small version: real sessions from ../shared/data, the
leave-one-corpus-out evaluation and a complete bundle (slow: real embedder and data)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (SHARED / "hlqc").is_dir(), reason="../shared/data not present")]


def test_recipe_small_trains_and_evaluates_a_bundle(tmp_path):
    out = tmp_path / "rupture-small" / "0.0.1"
    result = subprocess.run([sys.executable, str(ROOT / "models" / "recipes" / "train_default.py"), "--small",
                             "--out", str(out)], capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"config.json", "heads.json", "heads.safetensors", "metrics.json", "metrics.md", "MODEL_CARD.md"} <= {p.name for p in out.iterdir()}
    config = json.loads((out / "config.json").read_text())
    assert config["features"]["session_stage"] is True and config["corpus_threshold"] is True
    metrics = json.loads((out / "metrics.json").read_text())
    loco = [k for k in metrics if k.startswith("Leave-one-corpus-out")]
    assert len(loco) == 2 and all(metrics[k]["client"]["rupture_vs_none"]["roc_auc"] is not None for k in loco)
    card = (out / "MODEL_CARD.md").read_text()
    assert "How it was chosen" in card and "leave-one-corpus-out" in card.lower()
    manifest = json.loads((out / "data_manifest.json").read_text())
    assert any(f["role"] == "speaker corrections" for f in manifest["files"])
    assert all(metrics[k]["session_ratings"]["sessions"] > 0 for k in loco)
    assert "3RS-style session ratings" in card


def test_recipe_compare_only_writes_the_candidates_figures_and_no_bundle(tmp_path):
    out = tmp_path / "candidates.json"
    result = subprocess.run([sys.executable, str(ROOT / "models" / "recipes" / "train_default.py"), "--small",
                             "--compare-only", str(out), "--out", str(tmp_path / "bundle")],
                            capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "bundle").exists()
    figures = json.loads(out.read_text())
    assert figures["chosen"] == "session-aware" and figures["pool_sessions"] > 0
    loco = figures["candidates"]["session-aware"]["loco"]
    assert set(loco) == {"without HLQC low -> HLQC low", "HLQC -> AnnoMI, HOPE, Rogers", "pooled"}
    assert all(v["rupture_roc_auc"] is not None for v in loco.values())
    assert 0 < figures["candidates"]["session-aware"]["selection"] < 1
