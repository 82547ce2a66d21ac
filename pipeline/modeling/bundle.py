"""Model bundles: ``models/<name>/<version>/`` holding everything needed to use and audit a model.

Files: ``config.json`` (labels, scheme version, embedder id and weights hash, features, head,
thresholds), ``heads.joblib`` (the fitted scikit-learn heads), ``metrics.json`` and
``metrics.md``, ``data_manifest.json`` (training files with hashes, counts), ``MODEL_CARD.md``.
Bundles are write-once: saving over an existing bundle is refused.

Only load bundles you trust: ``heads.joblib`` is a pickle.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import joblib

from pipeline.version import __version__
from pipeline.modeling.estimator import RuptureCoder
from pipeline.modeling.features import FeatureConfig
from pipeline.modeling.embed import get_embedder
from pipeline.errors import ModelError
from pipeline.io.files import write_json, file_sha256  # noqa: F401  (re-exported: callers import it from here)
from pipeline.resources import project_home

DEFAULT_MODEL = "rupture-default/2.0.0"
REQUIRED = ("config.json", "heads.joblib", "data_manifest.json", "MODEL_CARD.md")


@dataclass
class Bundle:
    path: Path
    model: RuptureCoder
    config: dict

    @property
    def source(self) -> str:
        """Annotation source of this model's codes: ``model:<name>@<version>``."""
        return f"model:{self.config['name']}@{self.config['version']}"


def resolve_model_path(model: str | Path | None) -> Path:
    """A bundle path from a directory path, a ``name/version`` under ``models/``, or the
    default model when None."""
    if model is None:
        model = DEFAULT_MODEL
    path = Path(model)
    if path.is_dir():
        return path
    candidate = project_home() / "models" / str(model)
    if candidate.is_dir():
        return candidate
    raise ModelError(f"model {str(model)!r} not found", expected="a bundle directory or NAME/VERSION under models/",
                     fix="check --model; `ls models/` lists the shipped bundles")


def save_bundle(model: RuptureCoder, out: str | Path, name: str, version: str,
                manifest: dict, metrics: dict | None = None, card: str = "",
                extra_files: dict[str, str] | None = None) -> Path:
    """Write a bundle atomically and complete (to a temporary folder, then renamed); refuses to
    overwrite. ``extra_files`` (name -> text, e.g. ``metrics.md``) go in before the rename."""
    out = Path(out)
    if out.exists():
        raise ModelError("bundle already exists (bundles are write-once)", path=out,
                         fix="choose a new version, e.g. --out models/NAME/1.0.1")
    embedder = get_embedder(model.embedder)
    config = {
        "name": name, "version": version, "scheme": model.scheme_,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rupture_coder": __version__, "python": platform.python_version(),
        "embedder": {"name": embedder.name, "model_id": embedder.model_id,
                     "weights_hash": embedder.weights_hash, "dim": embedder.dim},
        "head": model.head, "C": model.C, "cv": model.cv,
        "features": {"context": model.context, "cues": model.cues, "version": FeatureConfig().version,
                     "text_view": model.text_view, "session_stage": model.session_stage},
        "corpus_threshold": model.corpus_threshold,
        "labels": {"rupture": ["none", "withdrawal", "confrontation"], "markers": list(model.markers_),
                   "repair": ["none", "repair"], "strategies": list(model.strategies_)},
        "thresholds": {
            "rupture": model.rupture_threshold_,
            "markers": dict(zip(model.markers_, map(float, model.marker_thresholds_))),
            "repair": getattr(model, "repair_threshold_", None),
            "strategies": dict(zip(model.strategies_, map(float, getattr(model, "strategy_thresholds_", [])))),
        },
        "training": {"sessions": model.n_train_sessions_, "client_turns": model.n_client_turns_,
                     "therapist_turns": model.n_therapist_turns_},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    fitted = copy.copy(model)
    fitted.cache_dir = None  # the cache location is a property of a run, not of the model
    joblib.dump(fitted, tmp / "heads.joblib", compress=3)
    write_json(tmp / "config.json", config)
    write_json(tmp / "data_manifest.json", manifest)
    if metrics is not None:
        write_json(tmp / "metrics.json", metrics)
    (tmp / "MODEL_CARD.md").write_text(card or f"# {name} {version}\n", encoding="utf-8")
    for file_name, text in (extra_files or {}).items():
        if Path(file_name).name != file_name or file_name in REQUIRED:
            raise ModelError("bad extra bundle file name", found=file_name, fix="a plain file name, not a required file")
        (tmp / file_name).write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out


def load_bundle(model: str | Path | None = None, cache_dir: str | None = None) -> Bundle:
    path = resolve_model_path(model)
    missing = [f for f in REQUIRED if not (path / f).exists()]
    if missing:
        raise ModelError("incomplete model bundle", path=path, found=f"missing {', '.join(missing)}",
                         fix="re-train or re-download the bundle")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    estimator = _load_heads(path / "heads.joblib")
    embedder = get_embedder(config["embedder"]["name"])
    if embedder.weights_hash != config["embedder"]["weights_hash"]:
        raise ModelError("embedding model differs from the one the bundle was trained with",
                         path=path, expected=config["embedder"]["weights_hash"],
                         found=embedder.weights_hash, fix="install the embedder package version in the model card")
    estimator.cache_dir = cache_dir
    return Bundle(path, estimator, config)


# Module paths that pickles of earlier package layouts name, and where those classes live now.
# Kept until bundle format 2 replaces pickles.
LEGACY_MODULES = {"pipeline.classify": "pipeline.modeling.estimator"}


def _load_heads(path: Path):
    """Unpickle the heads; a pickle naming a module of an earlier layout finds it under its alias."""
    import importlib
    import sys

    for old, new in LEGACY_MODULES.items():
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(new)
    return joblib.load(path)
