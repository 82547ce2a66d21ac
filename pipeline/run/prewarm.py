"""Start-up work done side by side, so that a one-session run waits for the slowest part only.

A ``rupture-coder code`` run first needs the model (importing torch and sentence-transformers
takes seconds, loading the weights a fraction of one) and Prefect's API (its temporary server
takes 10-20 s to start when ``PREFECT_API_URL`` names none). :func:`warm_model` loads the bundle
and its embedder in a background thread while the flow starts the server in the foreground; the
first task then finds the model loaded. The gate's spaCy NER model (needed first) and matplotlib
(needed last, for PNG timelines) are loaded in the same thread, in the order the flow needs them.
Failures in the warm-up are ignored here: the flow's own load reports them properly.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


def warm_model(model: str | None, cache_dir: str | None, png: bool = False, embedder: bool = True) -> threading.Thread:
    """Load the gate's NER model, the bundle and (with ``embedder``) its embedder (one tiny
    encode) and, with ``png``, matplotlib, in a daemon thread; returns it. Without
    ``embedder`` (the model is loaded in an encoder process, :mod:`pipeline.run.encoder`) only
    the bundle's heads are loaded here."""

    def ner() -> None:
        from pipeline.preprocess.deid import DeidConfig, _ner_for

        _ner_for(DeidConfig())

    def bundle() -> None:
        from pipeline.modeling.embed import get_embedder
        from pipeline.run.steps import cached_bundle

        bundle = cached_bundle(model, cache_dir)
        if embedder:
            get_embedder(bundle.model.embedder).encode(["warm-up"])

    def plots() -> None:
        import matplotlib.figure  # noqa: F401 - the import is the warm-up

    def work() -> None:
        for step in (ner, bundle, plots) if png else (ner, bundle):
            try:
                step()
            except Exception as err:  # noqa: BLE001 - the flow's own load reports it
                log.debug("warm-up step %s failed: %s", step.__name__, type(err).__name__)

    thread = threading.Thread(target=work, name="rupture-coder-warm-up", daemon=True)
    thread.start()
    return thread
