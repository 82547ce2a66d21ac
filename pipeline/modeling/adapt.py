"""Decision thresholds set on reviewed sessions of the user's own corpus (issue #12).

A model ranks the turns of a new corpus far better than its codes show when that corpus's rupture
rate differs from its training corpora's: its thresholds do not transfer (measured in
``models/recipes/threshold_transfer.py``; no label-free rule fixes it reliably). With a few
sessions of the new corpus reviewed, :func:`adapt_thresholds` sets the client rupture and the
therapist repair thresholds to the F1-best ones on those sessions' reviewed turns; the heads,
marker and strategy thresholds stay as they are. Review whole sessions: turns picked by
uncertainty sit near the old threshold and bias the new one (the change records how many of the
sessions' turns were reviewed, and ``adapt`` warns). A head keeps its threshold when the reviewed
turns hold fewer than ``min_positives`` positive turns: an F1-best threshold on a handful of
positives is noise (``models/recipes/threshold_adapt.py`` measures both cases, see
docs/models.md). :func:`save_adapted` writes the result as a new bundle that says what was done.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sklearn.metrics import f1_score

from pipeline.errors import ConfigError
from pipeline.modeling.bundle import Bundle, check_new_bundle_path, save_bundle
from pipeline.modeling.context import best_threshold
from pipeline.modeling.evaluate import collect
from pipeline.records import Session

MIN_POSITIVES = 20
HEADS = (("rupture", "rupture_threshold_", "client", "withdrawal or confrontation"),
         ("repair", "repair_threshold_", "therapist", "repair"))
TABLE_COLUMNS = ("head", "reviewed turns", "positive", "threshold before", "after", "F1 before", "F1 after",
                 "held-out F1 before", "held-out F1 after", "note")


@dataclass(frozen=True)
class ThresholdChange:
    """One head's threshold before and after; F1 on the reviewed turns (in sample) with each."""

    head: str
    reviewed_turns: int
    turns_in_sessions: int  # the head's turns (client or therapist) in the reviewed sessions
    positives: int
    before: float | None
    after: float | None
    f1_before: float | None
    f1_after: float | None
    kept_because: str | None  # None when the threshold was adapted
    held_out_before: float | None = None  # held_out_f1 over the reviewed sessions (None: not measured)
    held_out_after: float | None = None

    @property
    def adapted(self) -> bool:
        return self.kept_because is None


def _f1(y: np.ndarray, p: np.ndarray, t: float | None) -> float | None:
    return None if t is None or not len(y) else round(float(f1_score(y, p >= t, zero_division=0)), 3)


def held_out_f1(y: np.ndarray, p: np.ndarray, sessions: np.ndarray, before: float) -> tuple[float, float] | None:
    """Leave one reviewed session out: F1 over all reviewed turns, each session's turns coded with
    the threshold set on the other sessions (``before`` where those hold no positive or only
    positives), against the same turns coded with ``before``. None with fewer than two sessions.
    This is the procedure's own held-out estimate on the user's corpus: a threshold that does not
    beat ``before`` here is not kept."""
    ids = np.unique(sessions)
    if len(ids) < 2:
        return None
    pred = np.zeros(len(y), dtype=bool)
    for s in ids:
        out = sessions == s
        rest_y = y[~out]
        t = float(best_threshold(rest_y, p[~out])) if rest_y.any() and not rest_y.all() else before
        pred[out] = p[out] >= t
    return (round(float(f1_score(y, p >= before, zero_division=0)), 3),
            round(float(f1_score(y, pred, zero_division=0)), 3))


def check_min_positives(min_positives: int) -> None:
    if min_positives < 1:
        raise ConfigError("--min-positives must be at least 1", found=str(min_positives))


def adapt_thresholds(model, sessions: list[Session], min_positives: int = MIN_POSITIVES, held_out_check: bool = True):
    """A copy of ``model`` with thresholds set on the reviewed turns of ``sessions``, and what
    changed per head. Only turns with a human code count (``collect`` skips the rest). With
    ``held_out_check``, a head also keeps its threshold unless the adapted one beats it with a
    reviewed session left out (:func:`held_out_f1`; this needs at least two reviewed sessions)."""
    check_min_positives(min_positives)
    c = collect(model, sessions)
    scores = {"rupture": ((np.array(c["c_gold"]) != "none").astype(int),
                          1 - np.array(c["c_prob"], dtype=float).reshape(-1, 3)[:, 0], np.array(c["c_session"])),
              "repair": ((np.array(c["t_gold"]) == "repair").astype(int), np.array(c["t_prob"], dtype=float),
                         np.array(c["t_session"]))}
    adapted = copy.copy(model)
    changes = []
    for head, attr, role, codes in HEADS:
        y, p, in_session = scores[head]
        before = getattr(model, attr, None)
        positives = int(y.sum())
        if before is None or (head == "repair" and not getattr(model, "has_repair_", True)):
            reason = "the model has no repair head"
        elif not len(y):
            reason = f"no reviewed {role} turns"
        elif positives < min_positives:
            reason = f"{positives} reviewed {role} turns coded {codes}; at least {min_positives} are needed (--min-positives)"
        elif positives == len(y):
            reason = f"every reviewed {role} turn is positive"
        else:
            reason = None
        held_out = held_out_f1(y, p, in_session, before) if reason is None else None
        if held_out_check and reason is None:
            if held_out is None:
                reason = "one reviewed session; the held-out check needs two or more"
            elif held_out[1] <= held_out[0]:
                reason = (f"with a reviewed session left out, the adapted threshold does not beat the model's "
                          f"(F1 {held_out[1]:.3f} against {held_out[0]:.3f})")
        after = before if reason else float(best_threshold(y, p))
        if reason is None:
            setattr(adapted, attr, after)
        in_sessions = sum(t.speaker_role == role for s in sessions for t in s.turns)
        changes.append(ThresholdChange(head, int(len(y)), in_sessions, positives, before, after, _f1(y, p, before),
                                       _f1(y, p, after), reason, *(held_out or (None, None))))
    return adapted, changes


def table_rows(changes: list[ThresholdChange]) -> list[list[str]]:
    """The changes as rows of TABLE_COLUMNS (the command's table and the card's)."""
    show = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    return [[c.head, f"{c.reviewed_turns} of {c.turns_in_sessions}", str(c.positives), show(c.before), show(c.after),
             show(c.f1_before), show(c.f1_after), show(c.held_out_before), show(c.held_out_after),
             c.kept_because or "adapted"] for c in changes]


def save_adapted(bundle: Bundle, model, changes: list[ThresholdChange], out: str | Path, sessions: int,
                 source: dict) -> Path:
    """``model`` (from :func:`adapt_thresholds`) as the bundle ``out`` (``.../NAME/VERSION``):
    the base bundle's manifest, metrics and card, with the adaptation recorded in each."""
    out = check_new_bundle_path(out)
    base = f"{bundle.config['name']}@{bundle.config['version']}"
    record = {"base_model": base, "reviewed_sessions": sessions, **source,
              "heads": [asdict(c) for c in changes]}
    manifest = json.loads((bundle.path / "data_manifest.json").read_text(encoding="utf-8"))
    manifest["threshold_adaptation"] = record
    metrics_path = bundle.path / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else {}
    metrics["threshold_adaptation"] = record
    card = card_section(out.parts[-2], out.parts[-1], base, changes, sessions) + "\n---\n\n" + \
        (bundle.path / "MODEL_CARD.md").read_text(encoding="utf-8")
    extra = {}
    if (bundle.path / "metrics.md").exists():
        extra["metrics.md"] = (bundle.path / "metrics.md").read_text(encoding="utf-8")
    return save_bundle(model, out, out.parts[-2], out.parts[-1], manifest, metrics, card, extra_files=extra)


def card_section(name: str, version: str, base: str, changes: list[ThresholdChange], sessions: int) -> str:
    lines = [f"# Model card: {name} {version}", "",
             f"`{base}` with decision thresholds adapted to {sessions} reviewed session(s) of the corpus it is "
             "to code (`rupture-coder adapt`). The heads, marker and strategy thresholds are the base model's; "
             "its card follows below. F1 is on the reviewed turns themselves (in sample: it flatters the "
             "adapted threshold); held-out F1 codes each reviewed session with the threshold set on the "
             "others (docs/models.md has held-out figures for this procedure on other corpora).", "",
             "| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(changes)]
    return "\n".join(lines) + "\n"
