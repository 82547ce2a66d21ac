"""Prefect flow ``code_corpus``: read -> de-identification check -> segment -> embed -> classify ->
episodes and timelines -> write.

Thin by design: every task calls one function of ``pipeline``. Work is batched in chunks of
sessions (never one task per turn) so that Prefect's per-task cost stays a small share of a
run. ``runner="dask"`` runs the same tasks on prefect-dask's DaskTaskRunner (a LocalCluster, or
an existing cluster at ``address``); each worker loads the model once.

Tasks take ``cache_policy=NO_CACHE``: results are never persisted, and Prefect's default policy
would hash every task's inputs (a cloudpickle of a whole chunk: 0.1-0.2 s a task here, and of the
whole plan for write-corpus: seconds per hundred sessions, and a memory spike). Chunks (and the
plan) travel between tasks inside :class:`flows._glue.Sealed`, so that Prefect does not walk every turn of
every chunk looking for futures.

With an encoder process (:mod:`pipeline.run.encoder`, handed to :func:`run_code_corpus` for the
thread-pool runner with one worker, as ``rupture-coder code`` does), the embed step is two tasks,
``embed-start`` (hand the chunk's new texts to the encoder process, return at once) and
``embed`` (wait for the vectors), submitted as a pipeline: the encoder process encodes one
chunk while this process checks and segments the next one and classifies and writes the one
before, as the library runner does (:func:`pipeline.run.local.code_corpus`). The outputs are
the same bytes (tested).
"""

from __future__ import annotations

from pathlib import Path

from prefect import allow_failure, flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows._glue import (Sealed, bind_temporary_server, collect_chunk, encoding_in, flow_encoder,  # noqa: F401
                         progress, report_progress)  # (progress: for the CLI)
from pipeline.run import steps as lib
from pipeline.run.finish import finish_run, write_chunk
from pipeline.run.gate import check_deid

@task(name="read-and-plan", cache_policy=NO_CACHE)
def read_inputs(inputs: list[str], config: lib.RunConfig) -> lib.RunPlan:
    return lib.plan_run(inputs, config)


@task(name="deid-check", cache_policy=NO_CACHE)
def deid_check(chunk: Sealed, config: lib.RunConfig) -> Sealed:
    """Read the chunk's sessions (the plan holds none), then the de-identification gate."""
    return Sealed(check_deid(lib.read_chunk(chunk.value, config), config.phi, config.cache_dir))


@task(name="segment", cache_policy=NO_CACHE)
def segment(chunk: Sealed, config: lib.RunConfig) -> Sealed:
    return Sealed(lib.segment_chunk(chunk.value, config))


@task(name="embed", cache_policy=NO_CACHE)
def embed(chunk: Sealed, config: lib.RunConfig) -> Sealed:
    return Sealed(lib.embed_chunk(chunk.value, config))


@task(name="embed-start", cache_policy=NO_CACHE)
def begin_embed(chunk: Sealed, config: lib.RunConfig, encoder: Sealed) -> Sealed:
    """The chunk's new texts handed to the encoder process (returns at once)."""
    return Sealed(lib.begin_embed(chunk.value, config, encoder.value))


@task(name="embed", cache_policy=NO_CACHE)
def end_embed(pending: Sealed) -> Sealed:
    """The vectors of :func:`begin_embed`'s texts, waited for and cached."""
    return Sealed(lib.end_embed(pending.value))


@task(name="classify", cache_policy=NO_CACHE)
def classify(chunk: Sealed, config: lib.RunConfig) -> Sealed:
    return Sealed(lib.classify_chunk(chunk.value, config))


@task(name="episodes-and-timelines", cache_policy=NO_CACHE)
def timelines(chunk: Sealed) -> Sealed:
    return Sealed(lib.build_outputs(chunk.value))


@task(name="write-sessions", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def write_sessions(chunk: Sealed, config: lib.RunConfig) -> Sealed:
    return Sealed(write_chunk(Path(config.out), chunk.value, config.png))


@task(name="write-corpus", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def write_corpus(plan: Sealed, config: lib.RunConfig, chunks: Sealed) -> dict:
    return finish_run(Path(config.out), plan.value, config, chunks.value)


def task_runner(runner: str, workers: int, address: str | None = None):
    if runner == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=workers)


@flow(name="code_corpus", log_prints=False, persist_result=False, validate_parameters=False)
def code_corpus(inputs: list[str], config: lib.RunConfig | dict) -> dict:
    if isinstance(config, dict):  # parameters of a deployment arrive as JSON
        config = lib.RunConfig(**config)
    plan = read_inputs(inputs, config)
    report_progress("plan", len(plan.tasks), 0)
    todo = lib.chunks(plan.tasks, config.chunk_size)
    encoder = flow_encoder()

    def prepared(chunk):  # read, checked and segmented
        return segment.submit(deid_check.submit(Sealed(chunk), config), config)

    written = []
    pending = begin_embed.submit(prepared(todo[0]), config, encoder) if encoder is not None and todo else None
    for index, chunk in enumerate(todo):
        if encoder is None:
            chunk = embed.submit(prepared(chunk), config)
        else:  # the encoder process encodes this chunk while the next one is checked and segmented
            ready = prepared(todo[index + 1]) if index + 1 < len(todo) else None
            chunk = end_embed.submit(pending)
            if ready is not None:  # one batch in the encoder at a time, even after a failed chunk
                pending = begin_embed.submit(ready, config, encoder, wait_for=[allow_failure(chunk)])
        chunk = classify.submit(chunk, config)
        chunk = timelines.submit(chunk)
        written.append(write_sessions.submit(chunk, config))
    done = []
    for i, original in enumerate(todo):
        chunk = collect_chunk(written[i], original)
        written[i] = None  # the written chunk's sessions and records can go: memory stays flat
        report_progress("chunk", len(chunk.tasks), sum(len(r["turns"]) for r in chunk.results))
        done.append(chunk.slim())
    return {**write_corpus(Sealed(plan), config, Sealed(done)), "plan_problems": plan.problems}


def uses_encoder_process(runner: str, workers: int) -> bool:
    """Whether :func:`run_code_corpus` encodes in an encoder process it is given: with the
    thread-pool runner and one worker (which keeps the tasks in the order submitted)."""
    return runner == "local" and workers == 1


def run_code_corpus(inputs: list[str], config: lib.RunConfig, runner: str = "local", workers: int = 1,
                    address: str | None = None, encoder=None) -> dict:
    """Run the flow with the chosen task runner; returns the run summary. ``encoder``: an
    :class:`pipeline.run.encoder.EncoderProcess` to encode in, used where
    :func:`uses_encoder_process` says so (ignored otherwise)."""
    bind_temporary_server()  # a killed run leaves no Prefect server behind
    with encoding_in(encoder if uses_encoder_process(runner, workers) else None):
        return code_corpus.with_options(task_runner=task_runner(runner, workers, address))(inputs, config)
