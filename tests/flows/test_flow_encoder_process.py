"""The ``code_corpus`` flow with the model in an encoder process (issue #15): each chunk's texts
are handed over as soon as it is segmented and waited for only after the next chunk is checked
and segmented, one batch at a time; the same bytes as without; a failed chunk sinks nothing
else; used only where it can be (the thread-pool runner with one worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows import code_corpus as flow_module
from pipeline.modeling.embed import get_embedder
from pipeline.run import steps as lib


class _Encoder:
    """An encoder process's interface (submit, then result), in this process, with a log."""

    def __init__(self, name: str, events: list):
        self.embedder, self.events, self.held = get_embedder(name), events, None

    def submit(self, texts):
        assert self.held is None, "a second batch before the first one's result"
        self.held = list(texts)
        self.events.append(("submit", len(texts)))

    def result(self):
        texts, self.held = self.held, None
        assert texts is not None, "a result without a batch"
        self.events.append(("result", len(texts)))
        return self.embedder.encode(texts)


@pytest.fixture
def segment_log(monkeypatch):
    """Every segmented chunk's first session key, in the order the flow's tasks ran."""
    events: list = []
    original = lib.segment_chunk

    def spy(chunk, config):
        events.append(("segment", chunk.tasks[0].key))
        return original(chunk, config)

    monkeypatch.setattr(lib, "segment_chunk", spy)
    return events


EXAMPLES = [str(p) for p in sorted((Path(__file__).parents[2] / "examples").iterdir()) if p.suffix != ".py"]


@pytest.fixture
def config(prefect_harness, tiny_bundle):
    """Chunks of two sessions (the five example sessions make three), a fresh cache each."""
    return lambda out: lib.RunConfig(out=str(out), model=str(tiny_bundle), cache_dir=str(out / ".cache"), chunk_size=2)


def _code(inputs, config):
    """The flow with the task runner ``rupture-coder code`` gives it (thread pool, one worker)."""
    return flow_module.code_corpus.with_options(task_runner=flow_module.task_runner("local", 1))(inputs, config)


def test_flow_encodes_in_the_encoder_process_one_chunk_ahead_with_the_same_bytes(
        config, tmp_path, segment_log, snapshot, same_tree):
    events = segment_log
    plain = _code(EXAMPLES, config(tmp_path / "plain"))
    events.clear()
    encoder = _Encoder("hashing.v1", events)
    with flow_module.encoding_in(encoder):
        summary = _code(EXAMPLES, config(tmp_path / "process"))
    assert summary["sessions_coded"] == plain["sessions_coded"] == 5 and not summary["failures"]
    kinds = [e[0] for e in events]
    assert kinds.count("submit") == kinds.count("segment") == 3  # 5 sessions, chunks of 2
    # a pipeline: chunk i+1 is segmented after chunk i's texts were handed over and before its
    # vectors are waited for; the encoder alternates submit and result
    assert kinds == ["segment", "submit"] + ["segment", "result", "submit"] * 2 + ["result"]
    same_tree(snapshot(tmp_path / "process", (".cache/",)), snapshot(tmp_path / "plain", (".cache/",)))
    assert flow_module.flow_encoder() is None  # the context is left as it was


def test_a_failed_chunk_between_others_sinks_nothing_else(config, tmp_path, segment_log, monkeypatch):
    events = segment_log
    spied = lib.segment_chunk
    plan = lib.plan_run(EXAMPLES, config(tmp_path / "plan"))
    second = lib.chunks(plan.tasks, 2)[1]

    def failing(chunk, config):
        if chunk.tasks[0].key == second.tasks[0].key:
            raise RuntimeError("boom")
        return spied(chunk, config)

    monkeypatch.setattr(lib, "segment_chunk", failing)
    with flow_module.encoding_in(_Encoder("hashing.v1", events)):
        summary = _code(EXAMPLES, config(tmp_path / "out"))
    assert summary["sessions_coded"] == 3 and summary["sessions_failed"] == 2
    encoder_calls = [e[0] for e in events if e[0] != "segment"]
    assert encoder_calls == ["submit", "result"] * 2  # the other chunks, one batch at a time


@pytest.mark.parametrize("runner, workers, used", [("local", 1, True), ("local", 2, False), ("dask", 1, False)])
def test_the_encoder_is_used_with_the_thread_pool_and_one_worker_only(monkeypatch, runner, workers, used):
    seen = []

    class _Flow:
        def __call__(self, inputs, config):
            value = flow_module.flow_encoder()
            seen.append(None if value is None else value.value)
            return {}

    monkeypatch.setattr(flow_module, "bind_temporary_server", lambda: None)
    monkeypatch.setattr(flow_module, "task_runner", lambda *a: None)
    monkeypatch.setattr(flow_module.code_corpus, "with_options", lambda **kw: _Flow(), raising=False)
    marker = object()
    flow_module.run_code_corpus([], lib.RunConfig(out=""), runner, workers, None, marker)
    assert seen == [marker if used else None] and flow_module.flow_encoder() is None


def test_the_flow_function_still_pickles_for_dask():
    """Dask's runner sends Prefect's run context, which holds the flow, to its workers: the flow
    function is pickled by value with the globals it names (a ContextVar among them broke the
    Dask runner once; the encoder's context lives in flows._glue for that reason)."""
    import cloudpickle

    cloudpickle.loads(cloudpickle.dumps(flow_module.code_corpus.fn))
    cloudpickle.loads(cloudpickle.dumps(flow_module.code_corpus))
