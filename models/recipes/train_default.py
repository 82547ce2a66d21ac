"""Recipe of the shipped default model ``models/rupture-default/<version>``.

Reproduce with (from the repository root, ../shared/data present for the real-data parts):

    python models/recipes/train_default.py --version 1.0.0

Steps, all with session-grouped folds:
1. Model selection on the constructed corpus only (5-fold CV): logistic regression at two
   regularisation strengths, a linear SVM, and the zero-shot prototype baseline.
   Real sessions are never used to choose the configuration.
2. Transfer check: each candidate trained on the constructed corpus, scored on all real
   sessions coded by the team (held out).
3. Real-data estimate of the chosen configuration: 5-fold CV over the real sessions, each fold
   trained on the constructed corpus plus the other folds' real sessions (what the shipped
   model, trained on everything, does on unseen real sessions).
4. The shipped bundle: the chosen configuration trained on all constructed and real sessions.
Results go into the bundle's metrics.json, metrics.md and MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline.bundle import save_bundle  # noqa: E402
from pipeline.classify import RuptureCoder  # noqa: E402
from pipeline.codebook import load_codebook  # noqa: E402
from pipeline.evaluate import collect, cross_validate, metrics_markdown, score  # noqa: E402
from pipeline.modelcard import model_card  # noqa: E402
from pipeline.prototypes import PrototypeCoder  # noqa: E402
from pipeline.training import data_manifest, load_constructed, load_real  # noqa: E402

log = logging.getLogger("recipe")
CACHE = str(ROOT / ".cache" / "rupture-coder")
CANDIDATES = {
    "logreg-C0.05": dict(head="logreg", C=0.05),
    "logreg-C0.5": dict(head="logreg", C=0.5),
    "svm": dict(head="svm", C=0.05),
}


def _key(m: dict) -> float:
    """Selection criterion on constructed CV: mean of rupture-vs-none F1 and repair F1."""
    return (m["client"]["rupture_vs_none"]["f1"] + m["therapist"]["repair"]["f1"]) / 2


def headline(m: dict) -> dict:
    out = {}
    if m.get("client"):
        out.update(rupture_f1=m["client"]["rupture_vs_none"]["f1"], kappa3=m["client"]["kappa"],
                   macro_f1=m["client"]["macro_f1"])
    if m.get("therapist"):
        out["repair_f1"] = m["therapist"]["repair"]["f1"]
    return {k: round(v, 3) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--name", default="rupture-default")
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.time()
    constructed = load_constructed()
    real = load_real(args.shared) if Path(args.shared).is_dir() else None
    log.info("constructed: %d sessions; real: %s", len(constructed.sessions),
             len(real.sessions) if real else "absent")
    metrics: dict = {"selection_constructed_cv": {}, "transfer_constructed_to_real": {}}
    for name, params in CANDIDATES.items():
        make = lambda p=params: RuptureCoder(cache_dir=CACHE, **p)  # noqa: E731
        metrics["selection_constructed_cv"][name] = cross_validate(constructed.sessions, make, args.folds)
        log.info("%s constructed CV %s", name, headline(metrics["selection_constructed_cv"][name]))
        if real:
            model = make().fit(constructed.sessions)
            metrics["transfer_constructed_to_real"][name] = score(collect(model, real.sessions))
            log.info("%s -> real %s", name, headline(metrics["transfer_constructed_to_real"][name]))
    proto = PrototypeCoder().fit()
    metrics["selection_constructed_cv"]["prototype-zero-shot"] = score(collect(proto, constructed.sessions))
    if real:
        metrics["transfer_constructed_to_real"]["prototype-zero-shot"] = score(collect(proto, real.sessions))
    chosen = max(CANDIDATES, key=lambda n: _key(metrics["selection_constructed_cv"][n]))
    params = CANDIDATES[chosen]
    log.info("chosen on constructed CV: %s", chosen)
    make = lambda: RuptureCoder(cache_dir=CACHE, **params)  # noqa: E731
    if real:
        metrics["real_cv_with_constructed"] = cross_validate(real.sessions, make, args.folds,
                                                             extra_train=constructed.sessions)
        log.info("real CV %s", headline(metrics["real_cv_with_constructed"]))
    data = constructed.extend(real) if real else constructed
    model = make().fit(data.sessions)
    book = load_codebook()
    manifest = data_manifest(data, f"{book.scheme}@{book.version}", "models/recipes/train_default.py")
    manifest["chosen"] = {"name": chosen, **params}
    summary = {"chosen": chosen, "seconds": round(time.time() - t0),
               "selection_constructed_cv": {k: headline(v) for k, v in metrics["selection_constructed_cv"].items()},
               "transfer_constructed_to_real": {k: headline(v) for k, v in metrics["transfer_constructed_to_real"].items()}}
    if real:
        summary["real_cv_with_constructed"] = headline(metrics["real_cv_with_constructed"])
    metrics["summary"] = summary
    extra = comparison_markdown(summary)
    report_metrics = {k: v for k, v in metrics.items() if k in ("real_cv_with_constructed",)}
    report_metrics["constructed_cv (chosen)"] = metrics["selection_constructed_cv"][chosen]
    card = model_card(args.name, args.version, model, manifest, report_metrics, extra)
    out = ROOT / "models" / args.name / args.version
    save_bundle(model, out, args.name, args.version, manifest, metrics, card)
    (out / "metrics.md").write_text(extra + "\n" + "\n".join(
        metrics_markdown(k, v) for k, v in report_metrics.items()), encoding="utf-8")
    print(json.dumps(summary, indent=2))


def comparison_markdown(summary: dict) -> str:
    lines = ["## Model comparison", "",
             "Selection uses the constructed corpus only (5-fold, grouped by session); the real-data "
             "columns are reported, never used to choose.", "",
             "| candidate | constructed CV rupture F1 | constructed CV kappa (3-way) | constructed CV repair F1 "
             "| constructed -> real rupture F1 | -> real kappa | -> real repair F1 |", "|---|---|---|---|---|---|---|"]
    for name, m in summary["selection_constructed_cv"].items():
        r = summary["transfer_constructed_to_real"].get(name, {})
        lines.append(f"| {name}{' (chosen)' if name == summary['chosen'] else ''} | {m.get('rupture_f1')} | "
                     f"{m.get('kappa3')} | {m.get('repair_f1')} | {r.get('rupture_f1', 'n/a')} | "
                     f"{r.get('kappa3', 'n/a')} | {r.get('repair_f1', 'n/a')} |")
    if "real_cv_with_constructed" in summary:
        r = summary["real_cv_with_constructed"]
        lines += ["", f"Chosen configuration on real sessions (5-fold CV over real sessions, constructed corpus "
                      f"always in training): rupture F1 {r['rupture_f1']}, three-way kappa {r['kappa3']}, "
                      f"repair F1 {r['repair_f1']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
