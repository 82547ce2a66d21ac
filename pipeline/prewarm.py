"""Start-up work done side by side, so that a one-session run waits for the slowest part only.

A ``rupture-coder code`` run first needs the model (importing torch and sentence-transformers
takes seconds, loading the weights a fraction of one) and Prefect's API (its temporary server
takes 10-20 s to start when ``PREFECT_API_URL`` names none). :func:`warm_model` loads the bundle
and its embedder in a background thread while the flow starts the server in the foreground; the
first task then finds the model loaded. Failures in the warm-up are ignored here: the flow's own
load reports them properly.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


def warm_model(model: str | None, cache_dir: str | None) -> threading.Thread:
    """Load the bundle and its embedder (one tiny encode) in a daemon thread; returns it."""

    def work() -> None:
        try:
            from .embed import get_embedder
            from .run import cached_bundle

            bundle = cached_bundle(model, cache_dir)
            get_embedder(bundle.model.embedder).encode(["warm-up"])
        except Exception as err:  # noqa: BLE001 - the first task loads again and reports it
            log.debug("model warm-up failed: %s", type(err).__name__)

    thread = threading.Thread(target=work, name="rupture-coder-warm-up", daemon=True)
    thread.start()
    return thread
