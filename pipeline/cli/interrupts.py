"""Ctrl-C during a coding run: stop at once, with one clean line and exit status 130.

Letting ``KeyboardInterrupt`` unwind through a Prefect flow does not work well: a Ctrl-C in a
terminal reaches the whole process group, so Prefect's temporary API server (a child process)
stops too, and Prefect's crash handling then retries the dead API for seconds to minutes while
printing errors. Nothing needs that unwinding: every coded session is committed atomically (its
state file under ``.state/``), and the next run removes temporary files left behind, skips the
committed sessions and rebuilds the corpus outputs. So the handler stops child processes, prints
the message and exits.

With a long-running Prefect server (``PREFECT_API_URL`` set) Ctrl-C is left to Prefect, which
can then record the flow run as crashed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C


def _stop_children() -> None:
    """Kill this process's children (Prefect's temporary API server, Dask workers) at once: a
    Ctrl-C has reached them too, and their own shutdown would only print errors. Their state
    is disposable (SQLite keeps Prefect's database consistent)."""
    try:
        import psutil
    except ImportError:  # psutil comes with distributed (prefect-dask); without it, nothing to do
        return
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(children, timeout=3)


@contextmanager
def exit_on_interrupt(message: str, before_exit: Callable[[], None] | None = None) -> Iterator[None]:
    """Within the block, SIGINT stops child processes, calls ``before_exit`` (e.g. to restore
    the terminal's cursor), writes ``message`` to stderr and exits with status 130 at once.
    Does nothing outside the main thread or when ``PREFECT_API_URL`` names a server."""
    if os.environ.get("PREFECT_API_URL") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:  # noqa: ARG001
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the exit
        _stop_children()
        try:
            if before_exit is not None:
                before_exit()
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
        os.write(2, f"\n{message}\n".encode("utf-8", "replace"))
        os._exit(INTERRUPTED)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
