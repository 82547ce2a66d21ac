"""Ctrl-C while the flow waits for a chunk: the CLI's SIGINT handler must run at once even when
the kernel delivers the signal to another thread (stop 30 found a `code --runner local` run
still waiting ten minutes after a Ctrl-C, its task thread retrying the stopped Prefect server)."""

from __future__ import annotations

import concurrent.futures
import signal
import threading
import time

import pytest

from flows._glue import collect_chunk


class Stop(BaseException):
    """What the test's SIGINT handler raises (the CLI's handler exits the process instead)."""


class Wrapped:
    """A Prefect future's surface: ``wrapped_future``, ``wait(timeout)``, ``result()``."""

    def __init__(self, inner: concurrent.futures.Future) -> None:
        self.wrapped_future = inner

    def wait(self, timeout: float | None = None) -> None:
        try:
            self.wrapped_future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            pass

    def result(self):
        return self.wrapped_future.result()


def test_a_sigint_delivered_to_another_thread_stops_the_wait_for_a_chunk():
    inner: concurrent.futures.Future = concurrent.futures.Future()

    def other_thread() -> None:
        time.sleep(0.3)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this thread, not the main one
        time.sleep(6)
        inner.set_result(type("Sealed", (), {"value": "chunk"})())

    def handler(signum, frame):  # noqa: ARG001
        raise Stop

    previous = signal.signal(signal.SIGINT, handler)
    try:
        threading.Thread(target=other_thread, daemon=True).start()
        start = time.monotonic()
        with pytest.raises(Stop):
            collect_chunk(Wrapped(inner), original=None)
        assert time.monotonic() - start < 3  # not when the task ends (6 s on)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_finished_chunk_is_returned():
    inner: concurrent.futures.Future = concurrent.futures.Future()
    inner.set_result(type("Sealed", (), {"value": "chunk"})())
    assert collect_chunk(Wrapped(inner), original=None) == "chunk"
