"""Training a bundle: model, trainer and arguments as three objects (SetFit's split).

``TrainingArguments`` holds what a training run needs besides the data (where the bundle goes,
the estimator's parameters, how many cross-validation folds, what the manifest and card say);
``Trainer(args, data).train()`` cross-validates, fits, renders the card and writes the bundle
once, complete (metrics.md included), so a bundle folder is never written into after it appears.
The CLI's ``train``, review rounds and the recipes under ``models/recipes/`` all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pipeline.codebook import load_codebook
from pipeline.errors import ConfigError
from pipeline.modeling.bundle import check_new_bundle_path, save_bundle
from pipeline.modeling.card import model_card
from pipeline.modeling.estimator import RuptureCoder
from pipeline.modeling.evaluate import cross_validate, metrics_markdown
from pipeline.modeling.training import TrainingData, data_manifest


@dataclass(frozen=True)
class TrainingArguments:
    """Everything a training run needs besides its data (validated on construction).

    out : the new bundle folder, ``.../NAME/VERSION`` (write-once).
    params : parameters of :class:`RuptureCoder` (embedder, head, C, cv, ...).
    cv_folds : session-grouped folds of the cross-validation reported in the bundle (0: none).
    recipe : what produced the bundle (saved in the data manifest).
    manifest_extra, card_extra : more for the data manifest (e.g. corrections, base model) and
        the model card (Markdown).
    metrics : metrics computed elsewhere (e.g. leave-one-corpus-out by a recipe), saved beside
        the cross-validation and rendered in the card and metrics.md.
    """

    out: Path
    params: dict = field(default_factory=dict)
    cv_folds: int = 5
    recipe: str = "rupture-coder train"
    manifest_extra: dict = field(default_factory=dict)
    card_extra: str = ""
    metrics: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "out", check_new_bundle_path(self.out))
        if self.cv_folds == 1 or self.cv_folds < 0:
            raise ConfigError("cross-validation needs at least 2 folds", found=str(self.cv_folds),
                              fix="use --cv 2 or more (--cv 0 skips cross-validation)")

    @property
    def name(self) -> str:
        return self.out.parts[-2]

    @property
    def version(self) -> str:
        return self.out.parts[-1]


class Trainer:
    """Cross-validates and trains a :class:`RuptureCoder` on ``data``, then writes its bundle."""

    def __init__(self, args: TrainingArguments, data: TrainingData,
                 progress: Callable[[str], object] | None = None):
        self.args = args
        self.data = data
        self.progress = progress or (lambda message: None)

    def make_model(self) -> RuptureCoder:
        return RuptureCoder(**self.args.params)

    def evaluate(self) -> dict:
        """Session-grouped cross-validation of the configuration on the training data."""
        self.progress(f"cross-validating ({self.args.cv_folds} folds, grouped by session)")
        return cross_validate(self.data.sessions, self.make_model, folds=self.args.cv_folds,
                              augmented=self.data.augmented)

    def train(self) -> Path:
        """Cross-validate (if asked), fit on all data and write the complete bundle; returns its path."""
        metrics = dict(self.args.metrics)
        if self.args.cv_folds:
            metrics["cv"] = self.evaluate()
        self.progress(f"training on {len(self.data.sessions)} sessions")
        model = self.make_model().fit(self.data.sessions + self.data.augmented)
        book = load_codebook()
        manifest = {**data_manifest(self.data, f"{book.scheme}@{book.version}", self.args.recipe),
                    **self.args.manifest_extra}
        report = {_title(k): v for k, v in metrics.items() if isinstance(v, dict) and "client" in v}
        card = model_card(self.args.name, self.args.version, model, manifest, report, self.args.card_extra)
        details = "".join(metrics_markdown(title, m) for title, m in report.items())
        extra_files = {"metrics.md": (self.args.card_extra + "\n" if self.args.card_extra else "") + details} \
            if details else {}
        return save_bundle(model, self.args.out, self.args.name, self.args.version, manifest, metrics, card,
                           extra_files=extra_files)


def _title(key: str) -> str:
    return {"cv": "Cross-validation (session-grouped)"}.get(key, key)
