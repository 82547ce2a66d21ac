"""Per-session writes in a second process, overlapping the next chunk's work (issue #15).

Writing a coded session (timeline JSON/CSV, the PNG plot, the HTML page, then its state) is
single-threaded Python and matplotlib: about 40 ms a session on HLQC dev, most of a cached
run's time. In the same process it cannot overlap anything (the GIL; measured with threads and
not kept, docs/performance.md). :class:`ChunkWriter` hands each coded chunk to one writer
process and goes on with the next chunk (reading, the gate, encoding, classifying) while it is
written. At most ``IN_FLIGHT`` (2) chunks are handed over and not yet written. When the writer
has that many, it is behind (on a cached run writing is the larger half of the work: about 37
ms a session against about 20 ms of reading, checking and classifying), and this process writes
the next chunk itself rather than wait, so both cores write; after ``SHARED`` (2) such chunks
held back behind the writer's, it waits for the oldest, so memory stays flat. The last chunk
is written here whenever the writer holds one (nothing else is left to do here). Chunks are
returned in the order they were submitted. A cached HLQC dev run, alternated in one process:
7.8-7.9 s against 9.8-11.0 s when the run waited for the writer (4-5 of its 14 chunks written
here), and 6.8-7.4 s against 7.5-8.0 s with the last-chunk rule. The writer's replies are
read by a thread, so the run can look without waiting; the writer process reads its input in a
thread, so a hand-over never waits for the chunk being written or for the writer's warm-up.
Both call the same :func:`write_results`, so the files are the same bytes (tested). A run of
one chunk has nothing to overlap and writes in process (no process start-up).

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

import gc
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

from pipeline.run.finish import with_write_failures, write_chunk, write_results
from pipeline.run.processes import die_with_parent, receive_message as _receive, send_message as _send, skip_final_collection, stop_child
from pipeline.run.steps import Chunk

log = logging.getLogger(__name__)
IN_FLIGHT = 2  # chunks handed to the writer process and not yet written
SHARED = 2  # chunks this process writes itself while the writer is behind, before it waits


class ChunkWriter:
    """``submit(chunk)`` writes a coded chunk and returns the chunks whose writing finished, in
    the order they were submitted; ``finish()`` returns the rest. ``background=False`` writes
    each chunk in this process at ``submit``."""

    def __init__(self, out: Path, png: bool, background: bool = True) -> None:
        self.out, self.png = Path(out), png
        self._proc: subprocess.Popen | None = None
        self._queue: deque[list] = deque()  # [chunk, written chunk or None while the writer has it], oldest first
        self._replies: queue.Queue = queue.Queue()  # the writer's replies, read by a thread; None: it has gone
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
            return
        threading.Thread(target=_read_messages, args=(self._proc.stdout, self._replies), name="writer-replies",
                         daemon=True).start()

    def _in_writer(self) -> int:
        return sum(1 for _, written in self._queue if written is None)

    def submit(self, chunk: Chunk, last: bool = False) -> list[Chunk]:
        """``last``: no chunk follows, so the writer is behind if it holds any (else this process
        would wait for it with nothing else to do)."""
        done = self._ready()
        while len(self._queue) >= IN_FLIGHT + SHARED:  # memory stays bounded: wait for the oldest
            done += self._ready(block=True)
        if self._proc is not None and self._in_writer() < (1 if last else IN_FLIGHT):
            self._queue.append([chunk, None])
            try:  # the writer needs the records, not the sessions' turns and vectors
                _send(self._proc.stdin, (str(self.out), chunk.tasks, chunk.results, chunk.findings, self.png))
            except OSError:
                self._fallback()
        else:  # no writer, or it is behind: this process writes the chunk rather than wait (both cores write)
            self._queue.append([chunk, write_chunk(self.out, chunk, self.png)])
        return done + self._ready()

    def finish(self) -> list[Chunk]:
        try:
            done = []
            while self._queue:
                done += self._ready(block=True)
            return done
        finally:
            self.close()

    def close(self) -> None:
        """Stop the writer process (also on an error: nothing is left running)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc, timeout=60)

    def _ready(self, block: bool = False) -> list[Chunk]:
        """The written chunks at the head of the queue; with ``block``, once the oldest is written."""
        done: list[Chunk] = []
        while self._queue:
            if self._queue[0][1] is None and not self._take_reply(block and not done):
                break
            if self._queue[0][1] is not None:
                done.append(self._queue.popleft()[1])
        return done

    def _take_reply(self, block: bool) -> bool:
        """The writer's reply on the oldest chunk it holds, if one has come (``block``: wait for
        it); a writer that has gone or failed has its chunks written in this process."""
        try:
            reply = self._replies.get(block=block)
        except queue.Empty:
            return False
        if reply is None or reply[0] != "ok":
            if reply is not None:
                log.warning("the writer process failed (%s)", reply[1])
            self._fallback()
            return True
        entry = next(e for e in self._queue if e[1] is None)
        entry[1] = with_write_failures(entry[0], reply[1])
        return True

    def _fallback(self) -> None:
        """Every chunk handed over and not reported written, written again in this process (a
        session's state is written last, so a half-written session is simply written again);
        the rest of the run is written in process too."""
        log.warning("the writer process stopped; writing the rest of this run in process")
        if self._proc is not None:
            self._proc.kill()
            self.close()
        for entry in self._queue:
            if entry[1] is None:
                entry[1] = write_chunk(self.out, entry[0], self.png)


def _read_messages(stream, inbox: queue.Queue) -> None:
    """Each message of ``stream`` into ``inbox`` as it comes, then None once the other side has
    gone: in a thread, so that its reader can look without waiting (the parent reading the
    writer's replies, the writer reading the chunks handed over)."""
    while True:
        try:
            inbox.put(_receive(stream))
        except (EOFError, OSError, ValueError, pickle.UnpicklingError):  # ValueError: the pipe was closed
            inbox.put(None)
            return


def main() -> None:
    """The writer process: one chunk's values in, its failed sessions out, until end of input.
    Ctrl-C in the terminal reaches this process too: it is left to the parent, which stops the
    writer when its run ends (no second message, no traceback); a parent that is gone ends it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library's stray print must not corrupt the pipe
    inbox: queue.Queue = queue.Queue()  # at most IN_FLIGHT chunks: the parent waits for the oldest

    # the parent's hand-over never waits for a chunk being written
    threading.Thread(target=_read_messages, args=(stdin, inbox), name="writer-input", daemon=True).start()
    # ready before the first chunk arrives (it is being coded meanwhile): templates, and with
    # --png matplotlib's fonts and the reused figure, which would make the first timeline 0.4 s
    from pipeline.report import html, plots

    html.warm_up()
    if "--png" in sys.argv[1:]:
        plots.warm_up()
    gc.freeze()  # what is loaded now lives as long as the process: out of the collector's full passes
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
