"""The ``rupture-coder`` command line (typer + rich).

``_app`` owns the typer ``app`` and the helpers every command uses; each command group is its own
module that does ``from pipeline.cli._app import app`` and registers its commands. This package
imports the command modules (the owner of ``app`` never does), so there is no import cycle.
"""

from pipeline.cli._app import app, main
from pipeline.cli import bench, code, model, privacy, review, worker  # noqa: F401  (registers their commands)

__all__ = ["app", "main"]
