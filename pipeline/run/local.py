"""Coding a corpus in this process, without Prefect: the flow's chain as plain Python.

``code_corpus(inputs, RunConfig(out=...))`` reads, checks, segments, embeds, classifies and
writes exactly as ``rupture-coder code`` does (the same library functions the flow's tasks call,
chunk by chunk), for library users and for ``bench``. Prefect adds the orchestration (task
runners, Dask, retries, a UI); the outputs are the same.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from pipeline.preprocess.deid import clear_scan_memo
from pipeline.run import steps as lib
from pipeline.run.finish import finish_run
from pipeline.run.encoder import EncoderProcess
from pipeline.run.gate import check_deid
from pipeline.run.processes import collector_skips_old_objects
from pipeline.run.writer import ChunkWriter

StepHook = Callable[[str, float], None]  # (step name, seconds)


ProgressHook = Callable[[str, int, int], None]  # as the flow's: ("plan", sessions, 0), ("chunk", sessions, turns)


def code_corpus(inputs: list[str], config: lib.RunConfig, on_step: StepHook | None = None,
                fresh: bool = False, progress: ProgressHook | None = None, background_writes: bool = True,
                encoder: EncoderProcess | None = None) -> dict:
    """Code ``inputs`` into ``config.out``; returns the run summary. ``on_step`` is told how long
    each step took (``write_sessions``: how long the run waited for the writer or wrote itself, see
    :mod:`pipeline.run.writer`; with ``encoder``, ``embed``: how long the run waited for the
    vectors); ``fresh`` starts like a new process (no remembered gate scans or file reads);
    ``progress`` is told the sessions to code, then each chunk's sessions and turns once
    written. ``background_writes=False`` writes every chunk in this process. With ``encoder``
    (:mod:`pipeline.run.encoder`, the model in a second process), each chunk's texts are
    encoded there while this process reads, checks and segments the next chunk; the outputs
    are the same bytes (tested)."""
    with collector_skips_old_objects() as freeze_loaded:
        return _code_corpus(inputs, config, on_step, fresh, progress, background_writes, encoder, freeze_loaded)


def _code_corpus(inputs, config, on_step, fresh, progress, background_writes, encoder, freeze_loaded) -> dict:
    if fresh:
        clear_scan_memo()
        lib._LAST_READ.clear()

    def step(name, fn, *args):
        start = time.perf_counter()
        value = fn(*args)
        if on_step is not None:
            on_step(name, time.perf_counter() - start)
        return value

    plan = step("read_and_plan", lib.plan_run, inputs, config)
    if progress is not None:
        progress("plan", len(plan.tasks), 0)
    done = []

    def written(chunks: list) -> None:
        for chunk in chunks:
            if progress is not None:
                progress("chunk", len(chunk.tasks), sum(len(r["turns"]) for r in chunk.results))
            done.append(chunk.slim())

    def prepare(chunk):
        chunk = step("read_sessions", lib.read_chunk, chunk, config)
        chunk = step("deid_gate", check_deid, chunk, config.phi, config.cache_dir)
        return step("segment", lib.segment_chunk, chunk, config)

    todo = lib.chunks(plan.tasks, config.chunk_size)
    # with two or more chunks, each is written in a second process while the next one is coded
    writer = ChunkWriter(Path(config.out), config.png, background=background_writes and len(todo) > 1)
    try:
        ready = prepare(todo[0]) if todo else None
        pending = step("embed", lib.begin_embed, ready, config, encoder) if encoder is not None and todo else None
        for index in range(len(todo)):
            following = todo[index + 1] if index + 1 < len(todo) else None
            if encoder is None:  # one step after the other
                chunk = step("embed", lib.embed_chunk, ready, config)
            else:  # a pipeline: the encoder always has the next chunk's texts while this process
                # reads, checks and segments the chunk after it, and classifies and hands over
                # the chunk before it
                ready = prepare(following) if following is not None else None
                chunk = step("embed", lib.end_embed, pending)
                pending = step("embed", lib.begin_embed, ready, config, encoder) if ready is not None else None
            chunk = step("classify", lib.classify_chunk, chunk, config)
            if index == 0:  # the model and the NER pipeline are loaded now
                freeze_loaded()
            chunk = step("episodes_timelines", lib.build_outputs, chunk)
            written(step("write_sessions", writer.submit, chunk, following is None))
            if encoder is None:
                ready = prepare(following) if following is not None else None
        written(step("write_sessions", writer.finish))
    finally:
        writer.close()
    return {**step("write_corpus", finish_run, Path(config.out), plan, config, done), "plan_problems": plan.problems}
