"""The public API: what pipeline/__init__.py names is importable, and coding a corpus works
without Prefect through it."""

from __future__ import annotations

import subprocess
import sys

import pipeline


def test_public_api_names_resolve():
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None, name


def test_public_api_import_stays_light():
    code = "import sys, pipeline; print(any(m in sys.modules for m in ('sklearn', 'torch', 'prefect')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_public_api_code_corpus_without_prefect(tmp_path, tiny_bundle):
    from pipeline import RunConfig, code_corpus

    transcript = tmp_path / "s.csv"
    transcript.write_text("session_id,speaker,text\ns1,therapist,How has the week been?\n"
                          "s1,client,I don't know. Fine I guess.\ns1,therapist,It sounds like a lot.\n",
                          encoding="utf-8")
    summary = code_corpus([str(transcript)], RunConfig(out=str(tmp_path / "run"), model=str(tiny_bundle), png=False))
    assert summary["sessions_coded"] == 1 and (tmp_path / "run" / "turns.jsonl").exists()
    assert "prefect" not in summary
