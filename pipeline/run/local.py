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
from pipeline.run.finish import finish_run, write_chunk
from pipeline.run.gate import check_deid

StepHook = Callable[[str, float], None]  # (step name, seconds)


ProgressHook = Callable[[str, int, int], None]  # as the flow's: ("plan", sessions, 0), ("chunk", sessions, turns)


def code_corpus(inputs: list[str], config: lib.RunConfig, on_step: StepHook | None = None,
                fresh: bool = False, progress: ProgressHook | None = None) -> dict:
    """Code ``inputs`` into ``config.out``; returns the run summary. ``on_step`` is told how long
    each step took; ``fresh`` starts like a new process (no remembered gate scans or file reads);
    ``progress`` is told the sessions to code, then each chunk's sessions and turns."""
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
    for chunk in lib.chunks(plan.tasks, config.chunk_size):
        chunk = step("read_sessions", lib.read_chunk, chunk, config)
        chunk = step("deid_gate", check_deid, chunk, config.phi, config.cache_dir)
        chunk = step("segment", lib.segment_chunk, chunk, config)
        chunk = step("embed", lib.embed_chunk, chunk, config)
        chunk = step("classify", lib.classify_chunk, chunk, config)
        chunk = step("episodes_timelines", lib.build_outputs, chunk)
        chunk = step("write_sessions", write_chunk, Path(config.out), chunk, config.png)
        if progress is not None:
            progress("chunk", len(chunk.tasks), sum(len(r["turns"]) for r in chunk.results))
        done.append(chunk.slim())
    return {**step("write_corpus", finish_run, Path(config.out), plan, config, done), "plan_problems": plan.problems}
