"""Child processes that do not outlive the run that started them."""

from __future__ import annotations

import os
from typing import Callable


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
