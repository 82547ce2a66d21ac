"""The embedding model in a second process (pipeline/run/encoder.py): the same vectors, bit for
bit, as in this process; the same output bytes from a run; a child that dies or cannot start
costs nothing but time; the setting; and nothing left running."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.modeling.embed import get_embedder
from pipeline.run import encoder as enc

ROOT = Path(__file__).resolve().parents[2]
HLQC = ROOT / ".." / "shared" / "data" / "hlqc" / "hlqc_dev.csv"
SCRIPT = Path(sys.executable).parent / "rupture-coder"
pytestmark = pytest.mark.encoder_process
needs_data = pytest.mark.skipif(not HLQC.is_file(), reason="../shared/data (the real transcripts) is not present")


def _hlqc_texts(n: int) -> list[str]:
    with HLQC.open(encoding="utf-8-sig", newline="") as f:
        return list(dict.fromkeys(row["vol_text"] for row in csv.DictReader(f)))[:n]


def _hlqc_sessions(path: Path, conversations: int) -> Path:
    """The first ``conversations`` HLQC dev sessions, as an HLQC csv file."""
    with HLQC.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        rows, seen = [], []
        for row in reader:
            if row["conv_id"] not in seen:
                if len(seen) == conversations:
                    break
                seen.append(row["conv_id"])
            rows.append(row)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _digests(folder: Path) -> dict[str, str]:
    """Every output file's bytes (the embedding cache aside: SQLite pages differ by write order)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".cache" not in p.relative_to(folder).parts}


@pytest.mark.parametrize("value, expected", [("", True), ("1", True), (" 0 ", False)])
def test_setting(monkeypatch, value, expected):
    monkeypatch.setenv(enc.ENCODER_PROCESS_ENV, value)
    assert enc.encoder_process_enabled() is expected


def test_bad_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(enc.ENCODER_PROCESS_ENV, "yes please")
    with pytest.raises(ConfigError) as err:
        enc.encoder_process_enabled()
    assert enc.ENCODER_PROCESS_ENV in str(err.value) and "1" in err.value.expected


def test_no_child_when_turned_off_or_for_a_light_or_unknown_model(monkeypatch):
    monkeypatch.setenv(enc.ENCODER_PROCESS_ENV, "0")
    assert enc.start_encoder("minilm-l6.v1") is None
    monkeypatch.setenv(enc.ENCODER_PROCESS_ENV, "1")
    assert enc.start_encoder("hashing.v1") is None  # nothing to gain from a child
    assert enc.start_for_model("no/such-model") is None  # the run's own load reports it


def test_a_fresh_process_starts_the_child_for_the_default_model():
    probe = ("from pipeline.run.encoder import EncoderProcess, start_for_model\n"
             "child = start_for_model(None)\n"
             "print(type(child).__name__, child.alive)\n"
             "child.close()\n")
    env = {k: v for k, v in os.environ.items() if k != enc.ENCODER_PROCESS_ENV}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["EncoderProcess", "True"]


def test_spacy_is_imported_without_torch_and_torch_stays_importable():
    probe = ("import sys\n"
             "from pipeline.run.encoder import import_spacy_without_torch\n"
             "from pipeline.preprocess.deid import DeidConfig, _ner_for\n"
             "import_spacy_without_torch()\n"
             "nlp = _ner_for(DeidConfig())\n"
             "print('torch' in sys.modules, nlp is not None, len(nlp('Mary Jones met Tom in Leeds.').ents) > 0)\n"
             "import thinc.compat, torch\n"
             "print(thinc.compat.has_torch, torch.ones(2).sum().item())\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "True", "True", "False", "2.0"]


def test_a_spacy_that_needs_torch_is_imported_with_it(tmp_path):
    fake = tmp_path / "spacy"
    fake.mkdir()
    (fake / "__init__.py").write_text("import torch\nNEEDED = torch.__name__\n", encoding="utf-8")
    probe = ("import sys\n"
             "from pipeline.run.encoder import import_spacy_without_torch\n"
             "import_spacy_without_torch()\n"
             "print('spacy' in sys.modules, sys.modules['spacy'].NEEDED, sys.modules['torch'] is not None)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "torch", "True"]


def test_no_child_where_the_model_is_loaded_here_already(monkeypatch):
    monkeypatch.setenv(enc.ENCODER_PROCESS_ENV, "1")
    monkeypatch.setattr(get_embedder("minilm-l6.v1"), "_model", object())
    assert enc.start_encoder("minilm-l6.v1") is None


def test_a_child_that_cannot_start_encodes_in_process(monkeypatch, caplog):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    with caplog.at_level(logging.WARNING):
        child = enc.EncoderProcess("hashing.v1")
    assert not child.alive and "no encoder process" in caplog.text
    texts = ["I do not want to talk about that.", "Okay."]
    assert np.array_equal(child.encode(texts), get_embedder("hashing.v1").encode(texts))


def test_one_batch_at_a_time():
    child = enc.EncoderProcess.__new__(enc.EncoderProcess)  # no process needed for the check
    child.name, child.seconds, child._proc, child._held = "hashing.v1", 0.0, None, ["a"]
    with pytest.raises(RuntimeError):
        child.submit(["b"])


@pytest.mark.slow
@needs_data
def test_vectors_are_the_same_bits_as_in_this_process():
    texts = _hlqc_texts(400)
    with enc.EncoderProcess("minilm-l6.v1") as child:
        there = child.encode(texts)
        assert child.seconds > 0
    here = get_embedder("minilm-l6.v1").encode(texts)
    assert there.dtype == here.dtype == np.float32
    assert there.tobytes() == here.tobytes()


@pytest.mark.slow
@needs_data
def test_a_child_that_dies_is_replaced_by_this_process(caplog):
    texts = _hlqc_texts(60)
    child = enc.EncoderProcess("minilm-l6.v1")
    child._proc.kill()
    child._proc.wait()
    with caplog.at_level(logging.WARNING):
        vectors = child.encode(texts)
    assert not child.alive and "encoder process stopped" in caplog.text
    assert not any(t in caplog.text for t in texts if len(t) > 8)  # never the texts
    assert vectors.tobytes() == get_embedder("minilm-l6.v1").encode(texts).tobytes()


@pytest.mark.slow
@needs_data
def test_a_run_writes_the_same_bytes_with_the_encoder_process(tmp_path):
    from pipeline.run.local import code_corpus
    from pipeline.run.steps import RunConfig

    source = _hlqc_sessions(tmp_path / "hlqc_part.csv", 7)
    outs = {}
    for name in ("here", "there"):
        out = tmp_path / name
        config = RunConfig(out=str(out), phi="warn", cache_dir=str(tmp_path / f"cache-{name}"), chunk_size=2)
        if name == "there":
            with enc.EncoderProcess("minilm-l6.v1") as child:
                summary = code_corpus([str(source)], config, fresh=True, encoder=child)
                assert child.seconds > 0
        else:
            summary = code_corpus([str(source)], config, fresh=True)
        assert summary["sessions_coded"] == 7 and not summary["failures"]
        outs[name] = _digests(out)
    assert len(outs["here"]) > 20 and outs["here"] == outs["there"]


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("runner", ["auto", "local"])
def test_fresh_code_process_uses_the_child_and_leaves_nothing_running(tmp_path, runner, prefect_env):
    source = _hlqc_sessions(tmp_path / "hlqc_part.csv", 3)
    outs = {}
    for value in ("1", "0"):
        out = tmp_path / f"out{value}"
        env = {**prefect_env(tmp_path / "prefect-home"), enc.ENCODER_PROCESS_ENV: value}
        proc = subprocess.run([str(SCRIPT), "code", str(source), "--out", str(out), "--phi", "warn",
                               "--runner", runner, "--chunk-size", "1"],
                              capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "Traceback" not in proc.stdout + proc.stderr
        outs[value] = _digests(out)
    assert outs["1"] == outs["0"]
    left = subprocess.run(["pgrep", "-f", "pipeline.run.encoder"], capture_output=True, text=True)
    assert left.stdout.strip() == ""


@pytest.mark.slow
@needs_data
@pytest.mark.parametrize("runner", ["auto", "local"])  # in process; through Prefect (the flow's tasks)
def test_code_command_encodes_in_the_child_and_stops_it(tmp_path, monkeypatch, runner):
    from typer.testing import CliRunner

    from pipeline.cli._app import app

    started = []  # (this test process may hold the model already, where start_for_model says None)
    monkeypatch.setattr(enc, "start_for_model",
                        lambda model, defer=False: started.append(enc.EncoderProcess("minilm-l6.v1", defer)) or started[-1])
    source = _hlqc_sessions(tmp_path / "hlqc_part.csv", 2)
    result = CliRunner().invoke(app, ["code", str(source), "--out", str(tmp_path / "out"), "--phi", "warn",
                                      "--runner", runner], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    [child] = started
    assert child is not None and child.seconds > 0  # the texts were encoded there
    assert not child.alive  # and the child was stopped at the end of the run


class _CountingEmbedder:
    def __init__(self):
        self.calls = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return np.zeros((len(texts), 2), dtype=np.float32)


def _messages(*batches):
    import io

    stream = io.BytesIO()
    for batch in batches:
        enc.send_message(stream, batch)
    stream.seek(0)
    return stream


@pytest.mark.parametrize("defer", [False, True])
def test_child_loads_the_model_at_once_or_when_the_first_texts_come(defer):
    """Issue 15: a run into an existing embedding cache starts the child with ``defer``; if every
    text is in the cache it never loads the model (a cached HLQC dev `code` run: 11.4-11.7 s ->
    9.6-9.7 s, 18.4-19.1 -> 13.5-13.6 CPU seconds)."""
    import io

    idle = _CountingEmbedder()
    enc.serve(idle, _messages(), io.BytesIO(), defer=defer)  # no texts at all
    assert (idle.calls != []) is not defer  # the warm-up encode is what loads the model
    busy, out = _CountingEmbedder(), io.BytesIO()
    enc.serve(busy, _messages(["a", "b"], ["c"]), out, defer=defer)
    assert len(busy.calls) == 3 and busy.calls[1:] == [["a", "b"], ["c"]]  # warm-up first either way
    out.seek(0)
    replies = [enc.receive_message(out), enc.receive_message(out)]
    assert [r[0] for r in replies] == ["ok", "ok"] and [r[1].shape[0] for r in replies] == [2, 1]


def test_code_defers_the_model_when_the_embedding_cache_exists(tmp_path, monkeypatch, tiny_bundle):
    from typer.testing import CliRunner

    from pipeline.cli._app import app

    asked = []
    monkeypatch.setattr(enc, "start_for_model", lambda model, defer=False: asked.append(defer))
    source = tmp_path / "s.csv"
    source.write_text("speaker,text\nT,How are things?\nC,Fine I guess.\n", encoding="utf-8")
    cache = tmp_path / "cache"
    for out in ("first", "second"):  # the second run finds the first run's cache
        result = CliRunner().invoke(app, ["code", str(source), "--out", str(tmp_path / out), "--cache-dir", str(cache),
                                          "--model", str(tiny_bundle), "--no-png", "--runner", "inline"])
        assert result.exit_code == 0, result.output
    assert asked == [False, True]
