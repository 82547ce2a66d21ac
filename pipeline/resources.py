"""Locating the project's bundled resources (codebook, models, constructed corpus, examples).

The resources live at the top of the repository (``annotation_guides/``, ``models/``,
``corpus/``, ``examples/``) beside the ``pipeline`` package; rupture-coder is installed from a
checkout (``pip install -e .``). ``RUPTURE_CODER_HOME`` points elsewhere if needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import ConfigError


def project_home() -> Path:
    env = os.environ.get("RUPTURE_CODER_HOME")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent


def resource(*parts: str) -> Path:
    """Path of a bundled resource; a clear error when the checkout lacks it."""
    path = project_home().joinpath(*parts)
    if not path.exists():
        raise ConfigError(
            f"bundled resource {'/'.join(parts)} not found",
            path=path,
            expected="a rupture-coder checkout installed with `pip install -e .`",
            fix="install from the repository checkout, or set RUPTURE_CODER_HOME to it",
        )
    return path
