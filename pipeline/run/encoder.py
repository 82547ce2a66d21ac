"""The embedding model in a second process, so that a fresh ``code`` run keeps both cores busy
(issue #15).

A fresh ``rupture-coder code`` process used to import torch and sentence-transformers and load
the model in a warm-up thread while the main thread read the input, loaded spaCy's NER and ran
the first chunk's de-identification gate. Both share one interpreter lock, so for its first
8-9 s the run kept about one core busy, and each later chunk's gate ran between two encodes
with the second core idle (measured with /proc/stat, docs/performance.md). An
:class:`EncoderProcess` loads the model in its own process from the start of the run and
encodes there, while this process reads, checks and segments the next chunk: no lock is
shared, so the two keep both cores busy.

A run into an existing embedding cache (a re-run with another model or options, a shared
``--cache-dir``) starts the child with ``defer``: it loads the model when the first texts come,
so a run that finds every text in the cache never loads it (a cached HLQC dev run in a fresh
process: 11.4-11.7 s -> 9.6-9.7 s). A cold run into such a cache starts loading after its first
chunk is read and checked, about a second later than at once.

The child runs the same :meth:`Embedder.encode` on the same texts in the same order (the same
length batches, shared between the same model instances), so the vectors are the same bits
(tested). The vectors come back to this process, which keeps the embedding cache as before.

The child is ``python -m pipeline.run.encoder NAME``, started with :mod:`subprocess` and fed
length-prefixed pickles over a pipe, like the writer process (:mod:`pipeline.run.writer`, which
says why not :mod:`multiprocessing`). It only knows the built-in embedders (an embedder
registered at run time exists in this process only): :func:`start_encoder` returns None for
others. If the child cannot start, fails or dies, the texts it held are encoded in this process
and so is the rest of the run (a warning says so, without any text). Texts never reach a log:
the child reports an error by its type only. ``RUPTURE_CODER_ENCODER_PROCESS=0`` turns the
child off (tests/conftest.py keeps `code` runs inside the test process in process, so that it
keeps one model across tests).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.errors import ConfigError
from pipeline.run.processes import die_with_parent, receive_message, send_message, skip_final_collection, stop_child

log = logging.getLogger(__name__)

ENCODER_PROCESS_ENV = "RUPTURE_CODER_ENCODER_PROCESS"
# heavy models only: for these a child that loads beside the run's start pays off
PROCESS_EMBEDDERS = ("minilm-l6.v1", "minilm-l6-onnx-int8.v2")


def encoder_process_enabled() -> bool:
    """``RUPTURE_CODER_ENCODER_PROCESS``: 1 (default) or 0."""
    value = os.environ.get(ENCODER_PROCESS_ENV, "").strip()
    if value in ("", "1"):
        return True
    if value == "0":
        return False
    raise ConfigError(f"invalid {ENCODER_PROCESS_ENV}", expected="1 (encode in a second process) or 0 (in this process)",
                      found=repr(value)[:20])


class EncoderProcess:
    """``submit(texts)`` hands texts to the child and returns at once; ``result()`` waits for
    their vectors. One batch of texts in flight at a time. ``seconds`` adds up the child's own
    encode time (what :meth:`Embedder.encode` took there)."""

    def __init__(self, name: str, defer: bool = False) -> None:
        """``defer``: the child loads the model when the first texts come, not at once (a run
        whose texts may all be in the embedding cache then never loads it)."""
        self.name = name
        self.seconds = 0.0
        self._proc: subprocess.Popen | None = None
        self._held: list[str] | None = None  # texts submitted, vectors not yet received
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the pipeline package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        try:
            level = str(logging.getLogger().getEffectiveLevel())  # the child logs as this process does
            self._proc = subprocess.Popen([sys.executable, "-m", "pipeline.run.encoder", name, level,
                                           "defer" if defer else "now"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                          preexec_fn=die_with_parent())
        except (OSError, ValueError, TypeError) as err:  # e.g. no sys.executable in an embedded Python
            log.warning("no encoder process (%s); encoding in process", type(err).__name__)

    @property
    def alive(self) -> bool:
        return self._proc is not None

    def submit(self, texts: Sequence[str]) -> None:
        if self._held is not None:
            raise RuntimeError("one batch of texts at a time: call result() first")
        self._held = list(texts)
        if self._proc is None:
            return
        try:
            send_message(self._proc.stdin, self._held)
        except OSError:
            self._stop("the encoder process stopped")

    def result(self) -> np.ndarray:
        texts, self._held = self._held, None
        if texts is None:
            raise RuntimeError("nothing submitted")
        if self._proc is not None:
            try:
                status, value, seconds = receive_message(self._proc.stdout)
            except (EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError):
                self._stop("the encoder process stopped")
            else:
                if status == "ok" and isinstance(value, np.ndarray) and value.shape[0] == len(texts):
                    self.seconds += seconds
                    return value
                self._stop(f"the encoder process failed ({value if status == 'error' else 'bad reply'})")
        from pipeline.modeling.embed import get_embedder

        start = time.perf_counter()
        vectors = get_embedder(self.name).encode(texts)
        self.seconds += time.perf_counter() - start
        return vectors

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.submit(texts)
        return self.result()

    def _stop(self, why: str) -> None:
        log.warning("%s; encoding the rest of this run in process", why)
        self.close(kill=True)

    def close(self, kill: bool = False) -> None:
        """Stop the child (also on an error: nothing is left running)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc, timeout=30, kill=kill)

    def __enter__(self) -> "EncoderProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_encoder(embedder_name: str, defer: bool = False) -> EncoderProcess | None:
    """An :class:`EncoderProcess` for a built-in heavy embedder unless turned off (see the
    module's docstring), else None (encode in this process); ``defer``: see the class."""
    from pipeline.modeling.embed import get_embedder

    if not encoder_process_enabled() or embedder_name not in PROCESS_EMBEDDERS:
        return None
    embedder = get_embedder(embedder_name)
    if not type(embedder).__module__.startswith("pipeline.modeling.") or embedder.loaded:
        return None  # replaced at run time, or its model is loaded in this process already
    return EncoderProcess(embedder_name, defer)


def import_spacy_without_torch() -> None:
    """Import spaCy with torch hidden, so that this process does not import torch.

    With the model in the encoder process this process never runs torch, but spaCy's thinc
    imports it when it can (``thinc.compat``: about 1.5 core-seconds and 100 MiB of a fresh run,
    docs/performance.md) and the NER pipeline of the gate never uses it. Call it before any other
    thread imports: torch is hidden (``sys.modules["torch"] = None``) only while spaCy is
    imported, so it stays importable afterwards (the in-process fallback imports it). Nothing is
    done when torch or thinc is imported already; an import that fails without torch is made
    again with it."""
    if "torch" in sys.modules or "thinc" in sys.modules:
        return
    sys.modules["torch"] = None  # type: ignore[assignment] - how an import is refused (the import system's rule)
    try:
        import spacy  # noqa: F401 - the import is the point
    except ImportError:
        pass  # a spaCy that needs torch: imported with it below
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]
    import spacy  # noqa: F401,F811 - a no-op when the import above worked


def start_for_model(model: str | None, defer: bool = False) -> EncoderProcess | None:
    """:func:`start_encoder` for the embedder a model bundle names (read from its
    ``config.json``, without loading the bundle); None where that cannot be read (the run's own
    load of the bundle then reports why)."""
    import json

    from pipeline.modeling.bundle import resolve_model_path

    try:
        name = json.loads((resolve_model_path(model) / "config.json").read_text(encoding="utf-8"))["embedder"]["name"]
    except Exception:  # noqa: BLE001 - e.g. a missing bundle: the run's own load reports it
        return None
    return start_encoder(name, defer) if isinstance(name, str) else None


def main() -> None:
    """The child: load the model at once (the parent is reading its input meanwhile; with
    ``defer`` as the third argument, when the first texts come), then one list of texts in,
    their vectors out, until end of input. Ctrl-C is left to the parent."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a library's stray print must not corrupt the pipe
    # the parent's level (with `rupture-coder -v`, the model's load is logged as before), on the
    # stderr both share; nothing here logs a text
    level = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from pipeline.modeling.embed import get_embedder

    serve(get_embedder(sys.argv[1]), stdin, stdout, defer=len(sys.argv) > 3 and sys.argv[3] == "defer")
    skip_final_collection()


def serve(embedder, stdin, stdout, defer: bool = False) -> None:
    """The child's loop: the model loaded (at once, or with ``defer`` when the first texts come),
    then one list of texts in, their vectors out, until end of input."""
    loaded = False

    def load() -> None:
        try:
            embedder.encode(["warm-up", "warm-up, second batch"] * 2)  # loads the model (and its instances)
            more = getattr(embedder, "_more_models", None)
            instances = getattr(embedder, "instances", 1)
            if more is not None and instances > 1:
                more(instances - 1)
        except Exception as err:  # noqa: BLE001 - the first request reports it to the parent
            log.debug("encoder warm-up failed: %s", type(err).__name__)

    if not defer:
        load()
        loaded = True
    while True:
        try:
            texts = receive_message(stdin)
        except (EOFError, OSError, pickle.UnpicklingError):
            return
        if not loaded:
            load()
            loaded = True
        start = time.perf_counter()
        try:
            reply = ("ok", embedder.encode(texts), time.perf_counter() - start)
        except Exception as err:  # noqa: BLE001 - told to the parent, which encodes these itself
            reply = ("error", type(err).__name__, 0.0)
        try:
            send_message(stdout, reply)
        except OSError:  # the parent has gone
            return


if __name__ == "__main__":
    main()
