"""A review round: agreement, retraining on corrections, and old vs new on held-out sessions.

The plain-Python steps of the Prefect flow :mod:`flows.review_round` (which documents the whole
round). Held-out sessions are chosen among the corrected sessions, by id or as a fraction picked
deterministically by session (:func:`choose_held_out`); they never reach training (their ids are
checked against every training session, also those of ``--constructed`` / ``--real-data``), and
both bundles are scored on exactly these sessions' reviewed turns
(:func:`pipeline.modeling.evaluate.collect` skips unreviewed turns).

The verdict compares one primary metric: three-way macro-F1 of client turns (none / withdrawal /
confrontation), or repair F1 when no client turn was held out. A paired bootstrap over held-out
sessions (both models scored on each resample) gives an interval for the difference; with few
held-out sessions it is wide, and the report says so. Reports hold codes, ids and figures only,
never turn text.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.review.corrections import Corrections, load_corrections
from pipeline.errors import ConfigError, LabelError
from pipeline.io.files import atomic_write, write_json
from pipeline.io.run_folder import RunFolder
from pipeline.records import Session
from pipeline.modeling.training import TrainingData

MIN_TRAIN_SESSIONS = 2  # session-grouped folds inside fit need two sessions
HEADLINE = (("client", "macro_f1", "client three-way macro-F1"), ("client", "kappa", "client three-way kappa"),
            ("client", "rupture_vs_none.f1", "rupture vs none F1"), ("therapist", "repair.f1", "repair F1"))


@dataclass(frozen=True)
class RoundConfig:
    """One review round's inputs (paths and ids only: this is what Prefect stores)."""

    run_dir: str
    corrections: tuple[str, ...]
    old_model: str
    new_model: str  # bundle folder to write, models/NAME/VERSION
    out: str  # report folder
    held_out: tuple[str, ...] = ()
    held_out_fraction: float = 0.25  # used when held_out is empty
    seed: int = 0
    constructed: bool = False
    real_data: str | None = None
    labels: tuple[str, ...] = ()
    cache_dir: str = ".cache/rupture-coder"
    bootstrap: int = 1000


@dataclass
class RoundData:
    train: TrainingData
    held_out: list[Session]
    stats: dict = field(default_factory=dict)


def check_round(config: RoundConfig) -> None:
    """Cheap checks of the options, before anything slow starts."""
    new = Path(config.new_model)
    if len(new.parts) < 2:
        raise ConfigError("--new-model must be NAME/VERSION", found=str(new), fix="e.g. --new-model models/my-model/1.1.0")
    if new.exists():
        raise ConfigError("new model bundle already exists (bundles are write-once)", path=new, fix="choose a new version")
    if (Path(config.out) / "round.json").exists():
        raise ConfigError("--out already holds a round report", path=config.out, fix="choose a new folder")
    if not config.held_out and not 0 < config.held_out_fraction < 1:
        raise ConfigError("--held-out-fraction must be between 0 and 1", found=str(config.held_out_fraction))
    if config.bootstrap < 0:
        raise ConfigError("--bootstrap must be 0 or more", found=str(config.bootstrap))
    RunFolder(config.run_dir)  # a ConfigError when it is not a run folder
    from pipeline.modeling.bundle import resolve_model_path

    resolve_model_path(config.old_model)


def choose_held_out(session_ids: list[str], ids: tuple[str, ...] = (), fraction: float = 0.25, seed: int = 0) -> list[str]:
    """Held-out session ids: ``ids`` when given (each must be a corrected session), else
    ``fraction * n`` (rounded half up, at least 1) sessions with the smallest SHA-256 of ``"<seed>:<session id>"``, so the
    choice depends on the session ids only, never on file or line order."""
    known = set(session_ids)
    if ids:
        missing = [i for i in ids if i not in known]
        if missing:
            raise LabelError(f"held-out session {missing[0]!r} has no usable corrections",
                             expected=f"one of the corrected sessions ({len(known)})",
                             fix="hold out sessions the annotators reviewed, or use --held-out-fraction")
        return sorted(set(ids))
    n = min(len(known), max(1, math.floor(fraction * len(known) + 0.5)))
    key = lambda sid: hashlib.sha256(f"{seed}:{sid}".encode("utf-8")).hexdigest()  # noqa: E731
    return sorted(sorted(known, key=key)[:n])


def prepare_round(config: RoundConfig) -> RoundData:
    """Corrections split into training and held-out sessions, plus any extra training data."""
    corrections = load_corrections(list(config.corrections), config.run_dir)
    corrected = [s.session_id for s in corrections.sessions]
    held = choose_held_out(corrected, config.held_out, config.held_out_fraction, config.seed)
    train, test = corrections.split(held)
    _check_enough(train, test, corrected)
    data = train.data
    if config.constructed:
        from pipeline.modeling.training import load_constructed

        data = data.extend(load_constructed())
    if config.real_data:
        from pipeline.modeling.training import load_real

        data = data.extend(load_real(config.real_data, list(config.labels) or None))
    leaked = sorted({s.session_id for s in data.sessions} & set(held))
    if leaked:
        raise LabelError(f"held-out session {leaked[0]!r} is also in the other training data",
                         found=f"{len(leaked)} session(s) in --constructed / --real-data",
                         fix="hold out other sessions, or train without the source that holds them")
    stats = {**train.stats, "training_sessions": len(data.sessions),
             "training_sessions_from_corrections": len(train.sessions)}
    return RoundData(data, test, stats)


def _check_enough(train: Corrections, test: list[Session], corrected: list[str]) -> None:
    """A round needs held-out sessions and training sessions with client turns of both kinds."""
    need = f"at least {MIN_TRAIN_SESSIONS + 1} corrected sessions ({MIN_TRAIN_SESSIONS} to train on, 1 held out)"
    fix = "have annotators review turns in more sessions, or hold out fewer (--held-out / --held-out-fraction)"
    if not test or len(train.sessions) < MIN_TRAIN_SESSIONS:
        raise LabelError("too few corrected sessions for a review round", expected=need,
                         found=f"{len(corrected)} corrected, {len(test)} held out", fix=fix)
    client = [a.code for s in train.sessions for a in s.annotations if a.layer == "rupture"]
    sessions = {a.session_id for s in train.sessions for a in s.annotations if a.layer == "rupture"}
    if len(sessions) < MIN_TRAIN_SESSIONS or len({c == "none" for c in client}) < 2:
        raise LabelError("too few corrected client turns to train on",
                         expected=f"client turns with and without a rupture in {MIN_TRAIN_SESSIONS}+ training sessions",
                         found=f"{len(client)} client turns in {len(sessions)} session(s)", fix=fix)


def round_agreement(config: RoundConfig) -> dict:
    """Agreement of the model (from the run) and every annotator; written to OUT/agreement/."""
    from pipeline.review.agreement import WHOLE, agreement, write_report

    report = agreement(list(config.corrections), config.run_dir)
    write_report(report, Path(config.out) / "agreement")
    keep = ("comparison", "layer", "n_items", "percent_agreement", "cohen_kappa", "krippendorff_alpha")
    return {"coders": report["coders"], "files": "agreement/agreement.{json,md,html}",
            "layers": [{k: r[k] for k in keep} for r in report["rows"] if r["code"] == WHOLE]}


def train_new_bundle(config: RoundConfig, data: RoundData) -> str:
    """Train the old bundle's configuration on the round's training data; returns the bundle path."""
    from pipeline.modeling.bundle import load_bundle
    from pipeline.modeling.trainer import Trainer, TrainingArguments

    old = load_bundle(config.old_model, cache_dir=config.cache_dir)
    base = f"{old.config['name']}@{old.config['version']}"
    extra = (f"## Review round\n\nTrained on annotators' corrections with the configuration of "
             f"{base}; {len(data.held_out)} corrected session(s) were held out for testing "
             f"(report: {config.out}/round.md).")
    args = TrainingArguments(out=Path(config.new_model), params={**old.model.get_params(), "cache_dir": config.cache_dir},
                             cv_folds=0, recipe="rupture-coder review round",
                             manifest_extra={"base_model": base, "corrections": data.stats}, card_extra=extra)
    return str(Trainer(args, data.train).train())


def evaluate_bundle(model: str, sessions: list[Session], cache_dir: str) -> dict:
    """Metrics of a bundle on the held-out sessions, plus per-session confusion counts (codes
    only) for the paired bootstrap."""
    from pipeline.modeling.bundle import load_bundle
    from pipeline.modeling.evaluate import collect, score

    bundle = load_bundle(model, cache_dir=cache_dir)
    c = collect(bundle.model, sessions)
    manifest = json.loads((bundle.path / "data_manifest.json").read_text(encoding="utf-8"))
    trained_on = set((manifest.get("corrections") or {}).get("session_ids") or ())
    return {"model": f"{bundle.config['name']}@{bundle.config['version']}", "path": str(bundle.path),
            "metrics": score(c), "counts": _session_counts(c),
            "trained_on_held_out": sorted(trained_on & {s.session_id for s in sessions})}


def _session_counts(c: dict) -> dict:
    """``{"client"|"therapist": {session_id: confusion matrix}}`` (rows gold, columns predicted)."""
    from pipeline.modeling.estimator import RUPTURE_CLASSES

    out: dict = {"client": {}, "therapist": {}}
    for role, gold, pred, sessions, labels in (("client", "c_gold", "c_pred", "c_session", RUPTURE_CLASSES),
                                               ("therapist", "t_gold", "t_pred", "t_session", ("none", "repair"))):
        for g, p, sid in zip(c[gold], c[pred], c[sessions]):
            m = out[role].setdefault(sid, np.zeros((len(labels), len(labels)), dtype=int).tolist())
            m[labels.index(g)][labels.index(p)] += 1
    return out


def f1_from_confusion(matrix, positive: int | None = None) -> float:
    """Macro-F1 over every class (``positive`` None) or F1 of one class, from a confusion matrix
    (rows gold, columns predicted); a class never seen nor predicted scores 0, as in ``score``."""
    m = np.asarray(matrix, dtype=float)
    tp = np.diag(m)
    denom = 2 * tp + (m.sum(axis=0) - tp) + (m.sum(axis=1) - tp)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1.mean() if positive is None else f1[positive])


def _get(metrics: dict, role: str, path: str):
    value = metrics.get(role)
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def compare(old: dict, new: dict, held_out: list[str], resamples: int = 1000, seed: int = 0) -> dict:
    """Old vs new on the same held-out sessions: headline metrics, the primary metric's
    difference and its paired bootstrap over sessions."""
    for role in ("client", "therapist"):
        if (old["metrics"][role] or {}).get("n_turns") != (new["metrics"][role] or {}).get("n_turns"):
            raise LabelError(f"old and new models were scored on different {role} turns",
                             fix="report this as a bug: both must be scored on the same held-out turns")
    rows = [{"metric": label, "old": _get(old["metrics"], role, path), "new": _get(new["metrics"], role, path)}
            for role, path, label in HEADLINE]
    for row in rows:
        row["delta"] = None if row["old"] is None or row["new"] is None else round(row["new"] - row["old"], 4)
    role, positive, label = ("client", None, HEADLINE[0][2]) if old["metrics"]["client"] else ("therapist", 1, "repair F1")
    if not old["metrics"][role]:
        raise LabelError("the held-out sessions have no reviewed client or therapist turns",
                         fix="hold out sessions with reviewed turns")
    sessions = sorted(old["counts"][role])
    if sessions != sorted(new["counts"][role]):
        raise LabelError(f"old and new models were scored on different {role} sessions",
                         fix="report this as a bug: both must be scored on the same held-out sessions")
    matrices = [np.array([old["counts"][role][s] for s in sessions]), np.array([new["counts"][role][s] for s in sessions])]
    point = {k: f1_from_confusion(m.sum(axis=0), positive) for k, m in zip(("old", "new"), matrices)}
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(resamples):
        pick = rng.integers(0, len(sessions), len(sessions))
        deltas.append(f1_from_confusion(matrices[1][pick].sum(axis=0), positive)
                      - f1_from_confusion(matrices[0][pick].sum(axis=0), positive))
    delta = point["new"] - point["old"]
    return {"held_out_sessions": held_out, "primary": {
        "metric": label, "role": role, "old": round(point["old"], 4), "new": round(point["new"], 4),
        "delta": round(delta, 4), "new_beats_old": bool(delta > 0), "n_sessions": len(sessions),
        "n_turns": new["metrics"][role]["n_turns"],
        "bootstrap": {"resamples": resamples,
                      "ci95": [round(float(np.percentile(deltas, q)), 4) for q in (2.5, 97.5)] if deltas else None,
                      "share_new_better": round(float(np.mean(np.array(deltas) > 0)), 4) if deltas else None}},
        "headline": rows}


def round_report(config: RoundConfig, data: RoundData, agreement: dict, old: dict, new: dict, run_model: str | None) -> dict:
    comparison = compare(old, new, [s.session_id for s in data.held_out], config.bootstrap, config.seed)
    p = comparison["primary"]
    cautions = []
    if p["n_sessions"] < 5 or p["n_turns"] < 50:
        cautions.append(f"only {p['n_sessions']} held-out session(s) and {p['n_turns']} reviewed turn(s): "
                        "the difference is not reliable")
    client = old["metrics"]["client"]
    absent = [k for k, v in (client or {}).get("per_class", {}).items() if not v["support"]]
    if p["role"] == "client" and absent:
        cautions.append(f"no held-out turn is gold {', '.join(absent)}: macro-F1 counts that class as 0 for both "
                        "models (the comparison stays fair, the level is lower)")
    for which, result in (("old", old), ("new", new)):
        if result["trained_on_held_out"]:
            cautions.append(f"the {which} model's training corrections list {len(result['trained_on_held_out'])} of "
                            "the held-out session ids: its figures are not held out")
    if run_model == old["model"]:
        cautions.append("the old model coded the run, and annotators corrected its proposals: where they kept "
                        "its codes the held-out gold leans towards the old model")
    return {"run": config.run_dir, "corrections": list(config.corrections), "old_model": old["model"],
            "old_model_path": old["path"], "new_model": new["model"], "new_model_path": new["path"],
            "verdict": ("new model beats old" if p["new_beats_old"] else "new model does not beat old")
            + f" on {p['metric']} ({p['old']:.3f} -> {p['new']:.3f}, held-out sessions: {p['n_sessions']})",
            "comparison": comparison, "cautions": cautions, "data": data.stats, "agreement": agreement,
            "metrics": {"old": old["metrics"], "new": new["metrics"]}}


def _fmt(x, sign: bool = False) -> str:
    if x is None:
        return "n/a"
    return (f"{x:+.3f}" if sign else f"{x:.3f}") if isinstance(x, float) else str(x)


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def report_markdown(r: dict) -> str:
    from pipeline.modeling.evaluate import metrics_markdown

    p, d = r["comparison"]["primary"], r["data"]
    boot = p["bootstrap"]
    lines = [f"# Review round: {r['old_model']} vs {r['new_model']}", "", f"**{r['verdict']}.**", ""]
    lines += [f"- caution: {c}" for c in r["cautions"]] + ([""] if r["cautions"] else [])
    lines += ["## Old vs new on the held-out sessions", "",
              f"Held-out sessions ({len(r['comparison']['held_out_sessions'])}): "
              + ", ".join(f"`{s}`" for s in r["comparison"]["held_out_sessions"]), "",
              "| metric | old | new | new - old |", "|---|---:|---:|---:|"]
    lines += [f"| {row['metric']} | {_fmt(row['old'])} | {_fmt(row['new'])} | {_fmt(row['delta'], True)} |"
              for row in r["comparison"]["headline"]]
    if boot["ci95"]:
        lines += ["", f"Paired bootstrap over held-out sessions ({boot['resamples']} resamples) of {p['metric']}: "
                  f"difference 95% interval [{boot['ci95'][0]:.3f}, {boot['ci95'][1]:.3f}]; new better in "
                  f"{100 * boot['share_new_better']:.1f}% of resamples."]
    t, s = d["turns"], d["sessions"]
    lines += ["", "## Data", "",
              f"Corrections: {t['reviewed']} reviewed turn(s) in {s['with_corrections']} session(s); annotators: "
              + ", ".join(f"{k} ({v} turns)" for k, v in d["annotators"].items()) + ".",
              f"Training: {d['training_sessions_from_corrections']} corrected session(s) ({t['used']} reviewed turns)"
              f" + {d['training_sessions'] - d['training_sessions_from_corrections']} other session(s).",
              "Skipped: " + ("; ".join(f"{n} turn(s) {why}" for why, n in t["skipped"].items()) or "no turns")
              + "; " + ("; ".join(f"{n} session(s) {why}" for why, n in s["skipped"].items()) or "no sessions")
              + "; " + ("; ".join(f"{n} coding(s) {why}" for why, n in d["codings_skipped"].items()) or "no codings") + ".",
              "Several annotators: {unanimous} unanimous, {majority} majority, {tie} tie(s). ".format(**d["multi_annotator_turns"])
              + f"Rule: {d['rule']}.",
              "", "## Agreement (whole layers)", "", "| comparison | layer | n | % agree | kappa | alpha |",
              "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {a['comparison']} | {a['layer']} | {a['n_items']} | {_pct(a['percent_agreement'])} | "
              f"{_fmt(a['cohen_kappa'])} | {_fmt(a['krippendorff_alpha'])} |" for a in r["agreement"]["layers"]]
    lines += ["", f"Per code and segment ICC: {r['agreement']['files']}.", "", "## Full metrics", ""]
    lines += [metrics_markdown(f"{r[k + '_model']} (held out)", r["metrics"][k]) for k in ("old", "new")]
    return "\n".join(lines)


def write_round_report(out: str | Path, report: dict) -> list[str]:
    out = Path(out)
    write_json(out / "round.json", report)
    atomic_write(out / "round.md", report_markdown(report))
    return [str(out / "round.json"), str(out / "round.md")]


def run_model(run_dir: str) -> str | None:
    """The model that coded the run (``name@version`` of its turn records), if one."""
    models = {r.model for r in RunFolder(run_dir).iter_turns()}
    return models.pop() if len(models) == 1 else None

