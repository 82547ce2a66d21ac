"""Prefect-specific glue for the flows (the library knows nothing of Prefect).

- :class:`Sealed` carries a chunk (or the run plan) between tasks as one opaque object;
- :func:`collect_chunk` turns a finished task's future into a chunk, or into per-session
  failures when a step raised (one bad chunk never stops a run);
- :func:`progress` registers a progress hook for the duration of a run;
- :func:`bind_temporary_server` makes Prefect's temporary API server end with this process and
  keeps its third-party log records off the terminal.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import types
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Callable, Iterator

from pipeline.run.steps import Chunk, failure
from pipeline.run.processes import die_with_parent

log = logging.getLogger("flows.code_corpus")

ProgressHook = Callable[[str, int, int], None]
# hook("plan", sessions_to_code, 0) once, then hook("chunk", sessions_done, turns_done) per chunk
_HOOKS: list[ProgressHook] = []


@contextmanager
def progress(hook: ProgressHook) -> Iterator[None]:
    """Call ``hook`` with the progress of the runs started inside the ``with`` block."""
    _HOOKS.append(hook)
    try:
        yield
    finally:
        _HOOKS.remove(hook)


def report_progress(event: str, sessions: int, turns: int) -> None:
    """Call the progress hooks. The flow reaches them only through this function: Dask pickles
    the flow function by value with the globals it names, and a hook (the CLI's progress bar
    holds locks) cannot be pickled, while this module-level function is pickled by name."""
    for hook in _HOOKS:
        hook(event, sessions, turns)


class Sealed:
    """A value (a chunk, the run plan) passed between Prefect tasks as one opaque object.
    Prefect walks every task's parameters (dataclasses, tuples, dicts, down to each turn)
    looking for futures; on a Chunk that walk cost 12% of a 100-session run. It does not look
    inside this plain object, on the thread-pool and the Dask runner alike (Prefect's ``opaque``
    annotation does the same for the thread pool but prefect-dask 0.3 does not understand it)."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value


WAIT_SLICE_S = 0.25


def wait_interruptibly(future) -> None:
    """Wait for a Prefect future in short slices. A wait without a timeout blocks the main
    thread in a lock that only a signal delivered to that thread interrupts; when the kernel
    hands Ctrl-C's SIGINT to another thread (it does when the main thread already has a signal
    pending, e.g. SIGCHLD from Prefect's server that the same Ctrl-C stopped), the CLI's handler
    (``pipeline.cli.interrupts``) would not run until the task ended, and a task retrying the
    stopped server does not end. Futures without a ``wrapped_future`` that can say ``done()``
    are left to ``result()``."""
    inner = getattr(future, "wrapped_future", None)
    done = getattr(inner, "done", None)
    if not callable(done):
        return
    while not done():
        future.wait(WAIT_SLICE_S)


def collect_chunk(future, original: Chunk) -> Chunk:
    """The finished chunk, or the original with every session reported failed when a step
    raised (one bad chunk never stops the run)."""
    try:
        wait_interruptibly(future)
        return future.result().value  # the flow's tasks return Sealed chunks
    except Exception as err:  # noqa: BLE001 - reported per session
        log.warning("a chunk of %d session(s) failed: %s", len(original.tasks), type(err).__name__)
        return replace(original, sessions=(), failures=tuple(failure(t, err, "chunk") for t in original.tasks))


# Prefect's temporary server logs other libraries' records through its root logger (WARNING and
# up). When the run ends, the server is stopped while its database pool may still hold a
# connection, and sqlalchemy then logs a CancelledError traceback to the terminal, after the
# run's own last line (its summary or its error). The server's own loggers (prefect.server,
# uvicorn) keep their levels; a value the user set for this variable wins.
QUIET_SERVER_ENV = {"PREFECT_LOGGING_ROOT_LEVEL": "CRITICAL"}


def temporary_server_env(env: dict[str, str]) -> dict[str, str]:
    """The environment Prefect's temporary server is started with, quieted (``QUIET_SERVER_ENV``,
    not overriding a value in ``env``); this process's own logging is left as it is."""
    return {**QUIET_SERVER_ENV, **env}


def bind_temporary_server() -> None:
    """Start Prefect's temporary API server (a child process) with :func:`temporary_server_env`
    (no third-party shutdown tracebacks after the run's last line) and, on Linux, have the kernel
    stop it when the process that started it dies, also by SIGKILL, so no server is left running
    after a killed run (issue #16). Only a server started from the main thread is bound and
    quieted (the signal follows the thread that started it). Idempotent."""
    from prefect.server.api import server as srv

    if getattr(srv.SubprocessASGIServer._run_uvicorn_command, "_bound_to_parent", False):
        return
    original = srv.SubprocessASGIServer._run_uvicorn_command

    def run(self):
        if threading.current_thread() is not threading.main_thread():
            return original(self)
        real = srv.subprocess

        def popen(*args, **kwargs):
            if kwargs.get("preexec_fn") is None:
                kwargs["preexec_fn"] = die_with_parent()  # None off Linux
            kwargs["env"] = temporary_server_env(kwargs.get("env") or dict(os.environ))
            return subprocess.Popen(*args, **kwargs)

        srv.subprocess = types.SimpleNamespace(**{**vars(subprocess), "Popen": popen})  # this module's view only
        try:
            return original(self)
        finally:
            srv.subprocess = real

    run._bound_to_parent = True
    srv.SubprocessASGIServer._run_uvicorn_command = run


# The encoder process of the flow runs in this context (flows/code_corpus.py), never a flow
# parameter (parameters are sent to Prefect's API). It lives here, not in the flow's module:
# Dask's runner pickles the flow function by value with the names it uses, and a ContextVar
# cannot be pickled (a function of this module is pickled by reference).
_ENCODER: ContextVar[Sealed | None] = ContextVar("rupture_coder_flow_encoder", default=None)


def flow_encoder() -> Sealed | None:
    """The encoder process flows of this context encode in (sealed), or None."""
    return _ENCODER.get()


@contextmanager
def encoding_in(encoder) -> Iterator[None]:
    """Flows run in this context encode in ``encoder`` (an :class:`EncoderProcess`, or None:
    in the embed task's own thread). Only for the thread-pool runner: the encoder process
    belongs to this process, and it takes one batch at a time (one worker keeps the tasks in
    the order they were submitted)."""
    token = _ENCODER.set(None if encoder is None else Sealed(encoder))
    try:
        yield
    finally:
        _ENCODER.reset(token)
