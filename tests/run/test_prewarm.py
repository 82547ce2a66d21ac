"""The start-up warm-up thread of `rupture-coder code`: what it loads, in which order, and that a
failing step neither stops the others nor raises."""

from __future__ import annotations

import sys
import threading
import time
from types import SimpleNamespace

from pipeline.preprocess import deid
from pipeline.modeling import embed
from pipeline.run import prewarm
from pipeline.run import steps as lib


def _record(monkeypatch, fail: str = "") -> list[str]:
    calls: list[str] = []

    def step(name, value=None):
        def call(*args, **kwargs):
            calls.append(name)
            if name == fail:
                raise RuntimeError("boom")
            return value
        return call

    encoder = SimpleNamespace(encode=step("encode"))
    monkeypatch.setattr(deid, "_load_ner", step("ner"))
    monkeypatch.setattr(lib, "cached_bundle", step("bundle", SimpleNamespace(model=SimpleNamespace(embedder="e"))))
    monkeypatch.setattr(embed, "get_embedder", lambda name: calls.append(f"embedder {name}") or encoder)
    return calls


def test_warm_up_loads_ner_then_model_then_matplotlib(monkeypatch):
    calls = _record(monkeypatch)
    monkeypatch.delitem(sys.modules, "matplotlib.figure", raising=False)
    prewarm.warm_model("m", None, png=True).join(60)
    assert calls == ["ner", "bundle", "embedder e", "encode"]
    assert "matplotlib.figure" in sys.modules


def test_warm_up_steps_fail_alone_and_silently(monkeypatch, caplog):
    calls = _record(monkeypatch, fail="ner")
    thread = prewarm.warm_model("m", None)
    thread.join(60)
    assert not thread.is_alive() and calls == ["ner", "bundle", "embedder e", "encode"]
    assert "boom" not in caplog.text


def test_ner_model_loads_once_when_asked_twice_at_once(monkeypatch):
    import spacy

    loads = []

    def slow_load(*args, **kwargs):
        loads.append(1)
        time.sleep(0.2)
        return SimpleNamespace(meta={})

    deid._load_ner_once.cache_clear()
    monkeypatch.setattr(spacy, "load", slow_load)
    try:
        got = []
        threads = [threading.Thread(target=lambda: got.append(deid._load_ner())) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(loads) == 1 and got[0] is got[1]
    finally:
        deid._load_ner_once.cache_clear()  # the next test loads the real model
