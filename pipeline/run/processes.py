"""Child processes that do not outlive the run that started them, and a quick exit for
short-lived processes."""

from __future__ import annotations

import os
import pickle
import struct
from contextlib import contextmanager
from typing import BinaryIO, Callable

_LENGTH = struct.Struct(">Q")


def send_message(stream: BinaryIO, value) -> None:
    """One length-prefixed pickle to a child process's pipe (or from a child to its parent)."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def receive_message(stream: BinaryIO):
    """The next message of :func:`send_message`; EOFError when the other side has gone."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError
    size = _LENGTH.unpack(head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - only ever from the other end of this package's own pipe


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` (Linux; None elsewhere): the kernel sends
    the child SIGTERM when the thread that started it ends, also by SIGKILL, so no child
    outlives a killed run. Call it in the parent, just before starting the child."""
    import sys

    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def bind() -> None:  # runs in the child, between fork and exec
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(0)

    return bind


def stop_child(proc, timeout: float, kill: bool = False) -> None:
    """End a child fed over its stdin: close its input (its loop ends at end of input) and wait
    up to ``timeout`` seconds, or with ``kill`` kill it at once; killed if it does not end. Its
    pipes are closed either way."""
    import subprocess

    try:
        if kill:
            proc.kill()
        else:
            proc.stdin.close()
        proc.wait(timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass


@contextmanager
def collector_skips_old_objects():
    """For the length of a run, the objects that exist when it starts (the imported libraries,
    and a model or spaCy pipeline already loaded) are out of the garbage collector's reach
    (:func:`gc.freeze`); the ``with`` gives a function to call once more such objects are there
    (the run's first chunk has loaded the model). Afterwards they are handed back
    (:func:`gc.unfreeze`) and collected as before. The collector's full passes otherwise walk
    every one of them, 0.2-0.25 s each, one to three times in a cached HLQC dev run. Cycles that
    become garbage among frozen objects are collected after the run. A caller that froze
    objects of its own keeps its collector as it is (nothing frozen or unfrozen here)."""
    import gc

    if gc.get_freeze_count():
        yield lambda: None
        return
    gc.freeze()
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()


def skip_final_collection() -> None:
    """Call when a short-lived process's work is done and only its exit is left: the objects
    that exist now are moved out of the garbage collector's reach (:func:`gc.freeze`), so the
    interpreter's shutdown does not walk them. With torch, sentence-transformers and spaCy
    loaded that walk takes 1.2-1.4 s of a 2-core machine (measured; 0.17 s frozen). Exit handlers
    still run; the memory goes back to the system at exit either way. Not for a process that
    goes on working (frozen objects are never collected)."""
    import gc

    gc.freeze()
