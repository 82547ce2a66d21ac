"""Per-session writes in a second process, overlapping the next chunk's work (issue #15).

Writing a coded session (timeline JSON/CSV, the PNG plot, the HTML page, then its state) is
single-threaded Python and matplotlib: about 40 ms a session on HLQC dev, most of a cached
run's time. In the same process it cannot overlap anything (the GIL; measured with threads and
not kept, docs/performance.md). :class:`ChunkWriter` hands each coded chunk to one writer
process and goes on with the next chunk (reading, the gate, encoding, classifying) while it is
written. At most ``IN_FLIGHT`` (2) chunks are handed over and not yet written: before handing
over another, the run waits for the oldest, so memory stays flat; with two, a chunk that takes
the writer longer than the next one takes to code does not stall the run (a cached HLQC dev
run, alternated: 7.7-8.3 s against 8.0-8.5 s with one). The writer process reads its input in a
thread, so a hand-over never waits for the chunk being written or for the writer's warm-up. The
writer process calls the same :func:`write_results` as the in-process path, so the files are
the same bytes (tested). A run of one chunk has nothing to
overlap and writes in process (no process start-up).

The writer process is on a cached run's critical path from its start, so it imports only what
writing needs (no scikit-learn, torch or spaCy: 0.3 s instead of 1.6 s) and, while the first
chunk is being coded, compiles the page templates and, with ``--png``, makes matplotlib's reused
figure (:func:`pipeline.report.plots.warm_up`).

The writer is ``python -m pipeline.run.writer``, started with :mod:`subprocess` and fed
length-prefixed pickles over a pipe, not :mod:`multiprocessing`: a spawned multiprocessing child
runs the caller's main script again, which breaks any library user's script without a
``__main__`` guard. If the writer process dies (killed, out of memory) or cannot start, the
chunk it held is written again in this process and the rest of the run is written in process;
a session's state is its commit point and is written last, so a half-written session is simply
written again.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from collections import deque
from pathlib import Path

from pipeline.run.finish import with_write_failures, write_chunk, write_results
from pipeline.run.processes import die_with_parent, receive_message as _receive, send_message as _send, skip_final_collection, stop_child
from pipeline.run.steps import Chunk

log = logging.getLogger(__name__)
IN_FLIGHT = 2  # chunks handed to the writer process and not yet written


class ChunkWriter:
    """``submit(chunk)`` writes a coded chunk and returns the chunks whose writing finished;
    ``finish()`` returns the rest. ``background=False`` writes each chunk in this process at
    ``submit``."""

    def __init__(self, out: Path, png: bool, background: bool = True) -> None:
        self.out, self.png = Path(out), png
        self._proc: subprocess.Popen | None = None
        self._pending: deque[Chunk] = deque()  # handed over, oldest first
        if background:
            self._start()

    def _start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the pipeline package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", "pipeline.run.writer", *(["--png"] if self.png else [])],
                                          stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, env=env,
                                          preexec_fn=die_with_parent())
        except (OSError, ValueError, TypeError) as err:  # e.g. no sys.executable in an embedded Python
            log.warning("no writer process (%s); writing in process", type(err).__name__)

    def submit(self, chunk: Chunk) -> list[Chunk]:
        done = []
        while len(self._pending) >= IN_FLIGHT and self._proc is not None:
            done += self._wait_oldest()
        if self._proc is None:
            return done + [write_chunk(self.out, chunk, self.png)]
        self._pending.append(chunk)
        try:  # the writer needs the records, not the sessions' turns and vectors
            _send(self._proc.stdin, (str(self.out), chunk.tasks, chunk.results, chunk.findings, self.png))
        except OSError:
            return done + self._fallback()
        return done

    def finish(self) -> list[Chunk]:
        try:
            done = []
            while self._pending:
                done += self._wait_oldest()
            return done
        finally:
            self.close()

    def close(self) -> None:
        """Stop the writer process (also on an error: nothing is left running)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc, timeout=60)

    def _wait_oldest(self) -> list[Chunk]:
        """The oldest handed-over chunk, once the writer has written it."""
        try:
            status, value = _receive(self._proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            return self._fallback()
        if status != "ok":
            log.warning("the writer process failed (%s)", value)
            return self._fallback()
        return [with_write_failures(self._pending.popleft(), value)]

    def _fallback(self) -> list[Chunk]:
        """Every chunk handed over and not reported written, written again in this process (a
        session's state is written last, so a half-written session is simply written again);
        the rest of the run is written in process too."""
        log.warning("the writer process stopped; writing the rest of this run in process")
        if self._proc is not None:
            self._proc.kill()
            self.close()
        chunks, self._pending = list(self._pending), deque()
        return [write_chunk(self.out, chunk, self.png) for chunk in chunks]


def main() -> None:
    """The writer process: one chunk's values in, its failed sessions out, until end of input.
    Ctrl-C in the terminal reaches this process too: it is left to the parent, which stops the
    writer when its run ends (no second message, no traceback); a parent that is gone ends it."""
    import queue
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library's stray print must not corrupt the pipe
    inbox: queue.Queue = queue.Queue()  # at most IN_FLIGHT chunks: the parent waits for the oldest

    def read() -> None:  # the parent's hand-over never waits for a chunk being written
        while True:
            try:
                inbox.put(_receive(stdin))
            except (EOFError, OSError, pickle.UnpicklingError):
                inbox.put(None)
                return

    threading.Thread(target=read, name="writer-input", daemon=True).start()
    # ready before the first chunk arrives (it is being coded meanwhile): templates, and with
    # --png matplotlib's fonts and the reused figure, which would make the first timeline 0.4 s
    from pipeline.report import html, plots

    html.warm_up()
    if "--png" in sys.argv[1:]:
        plots.warm_up()
    while (message := inbox.get()) is not None:
        out, tasks, results, findings, png = message
        try:
            reply = ("ok", write_results(Path(out), tasks, results, findings, png))
        except Exception as err:  # noqa: BLE001 - told to the parent, which writes the chunk itself
            reply = ("error", type(err).__name__)
        try:
            _send(stdout, reply)
        except OSError:  # the parent has gone
            return
    skip_final_collection()  # the parent waits for this exit at the end of its run


if __name__ == "__main__":
    main()
