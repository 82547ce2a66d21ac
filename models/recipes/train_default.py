"""Recipe of the shipped default model ``models/rupture-default/<version>``.

Reproduce with (from the repository root, ../shared/data present for the real-data parts):

    python models/recipes/train_default.py --version 1.0.0
    python models/recipes/train_default.py --name rupture-fast --version 1.0.0 \
        --embedder minilm-l6-onnx-int8.v2 --candidates logreg-real-only      # the fast profile

Steps, all with session-grouped folds (a session is never in training and test at once):
1. Candidates on real sessions: 3-fold CV over the team-coded real sessions; each fold trains
   on the other folds' real sessions plus (for the "+constructed" candidates) the whole
   constructed corpus. Candidates: logistic regression and a linear SVM on embeddings+context
   (+constructed), logistic regression on real sessions only, and the zero-shot prototype
   baseline (no training). The SetFit-style candidate is run by compare_setfit.py.
2. The best candidate by the mean of rupture F1 and repair F1 on that CV becomes the default.
   This choice among a handful of candidates uses the same CV that reports them, so the chosen
   figure is slightly optimistic; the maintainers' held-out real sessions are the unbiased test.
3. Also reported: 3-fold CV on the constructed corpus, and constructed-only training scored on
   the real sessions (transfer).
4. The shipped bundle: the chosen configuration trained on all of its data.
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

from pipeline.modeling.bundle import save_bundle  # noqa: E402
from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.codebook import load_codebook  # noqa: E402
from pipeline.modeling.evaluate import collect, cross_validate, metrics_markdown, score  # noqa: E402
from pipeline.modeling.card import model_card  # noqa: E402
from pipeline.modeling.prototypes import PrototypeCoder  # noqa: E402
from pipeline.modeling.training import data_manifest, load_constructed, load_real  # noqa: E402

log = logging.getLogger("recipe")
CACHE = str(ROOT / ".cache" / "rupture-coder")
CANDIDATES = {
    "logreg-real-only": dict(params=dict(head="logreg", C=0.05, cv=3), constructed=False),
    "svm-real-only": dict(params=dict(head="svm", C=0.05, cv=3), constructed=False),
    "logreg+constructed": dict(params=dict(head="logreg", C=0.05, cv=3), constructed=True),
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
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--embedder", default="minilm-l6.v1",
                    help="embedder registry name (minilm-l6-onnx-int8.v2 for the fast profile rupture-fast)")
    ap.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated subset of the candidates")
    ap.add_argument("--card-only", action="store_true",
                    help="re-render MODEL_CARD.md and metrics.md of an existing bundle from its metrics.json "
                         "(e.g. after compare_setfit.py added its row); the model itself is not touched")
    args = ap.parse_args()
    if args.card_only:
        return rerender_card(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.time()
    constructed = load_constructed()
    real = load_real(args.shared) if Path(args.shared).is_dir() else None
    log.info("constructed: %d sessions; real: %s", len(constructed.sessions),
             len(real.sessions) if real else "absent")
    metrics: dict = {"real_cv": {}, "transfer_constructed_to_real": {}}
    if real is None:
        raise SystemExit("the default recipe needs ../shared/data (real sessions) for its evaluation")
    names = [n.strip() for n in args.candidates.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CANDIDATES))
    if unknown or not names:
        raise SystemExit(f"unknown candidates {unknown}; choose from {', '.join(CANDIDATES)}")
    for name in names:
        cand = CANDIDATES[name]
        make = lambda p=cand["params"]: RuptureCoder(cache_dir=CACHE, embedder=args.embedder, **p)  # noqa: E731
        extra = constructed.sessions if cand["constructed"] else None
        metrics["real_cv"][name] = cross_validate(real.sessions, make, args.folds, extra_train=extra)
        log.info("%s real CV %s", name, headline(metrics["real_cv"][name]))
    proto = PrototypeCoder(cache_dir=CACHE).fit()
    metrics["real_cv"]["prototype-zero-shot"] = score(collect(proto, real.sessions))
    log.info("prototype on real %s", headline(metrics["real_cv"]["prototype-zero-shot"]))
    chosen = max(names, key=lambda n: _key(metrics["real_cv"][n]))
    cand = CANDIDATES[chosen]
    params = cand["params"]
    log.info("chosen: %s", chosen)
    make = lambda: RuptureCoder(cache_dir=CACHE, embedder=args.embedder, **params)  # noqa: E731
    metrics["constructed_cv"] = cross_validate(constructed.sessions, make, args.folds)
    metrics["transfer_constructed_to_real"] = score(collect(make().fit(constructed.sessions), real.sessions))
    log.info("constructed CV %s; transfer %s", headline(metrics["constructed_cv"]),
             headline(metrics["transfer_constructed_to_real"]))
    data = constructed.extend(real) if cand["constructed"] else real
    model = make().fit(data.sessions)
    book = load_codebook()
    manifest = data_manifest(data, f"{book.scheme}@{book.version}", "models/recipes/train_default.py")
    manifest["chosen"] = {"name": chosen, "embedder": args.embedder, **params}
    summary = {"chosen": chosen, "seconds": round(time.time() - t0),
               "real_cv": {k: headline(v) for k, v in metrics["real_cv"].items()},
               "constructed_cv": headline(metrics["constructed_cv"]),
               "transfer_constructed_to_real": headline(metrics["transfer_constructed_to_real"])}
    metrics["summary"] = summary
    extra = comparison_markdown(summary)
    report_metrics = {f"Real sessions, 3-fold CV ({chosen})": metrics["real_cv"][chosen],
                      "Constructed corpus, 3-fold CV": metrics["constructed_cv"],
                      "Trained on constructed only, scored on all real sessions": metrics["transfer_constructed_to_real"]}
    card = model_card(args.name, args.version, model, manifest, report_metrics, extra)
    out = ROOT / "models" / args.name / args.version
    save_bundle(model, out, args.name, args.version, manifest, metrics, card)
    (out / "metrics.md").write_text(extra + "\n" + "\n".join(
        metrics_markdown(k, v) for k, v in report_metrics.items()), encoding="utf-8")
    print(json.dumps(summary, indent=2))


def render_card(name: str, version: str, model, manifest: dict, metrics: dict) -> tuple[str, str, dict]:
    summary = metrics["summary"]
    chosen = summary["chosen"]
    extra = comparison_markdown(summary)
    report_metrics = {f"Real sessions, 3-fold CV ({chosen})": metrics["real_cv"][chosen],
                      "Constructed corpus, 3-fold CV": metrics["constructed_cv"],
                      "Trained on constructed only, scored on all real sessions": metrics["transfer_constructed_to_real"]}
    card = model_card(name, version, model, manifest, report_metrics, extra)
    details = extra + "\n" + "\n".join(metrics_markdown(k, v) for k, v in report_metrics.items())
    return card, details, report_metrics


def rerender_card(args) -> None:
    from pipeline.modeling.bundle import load_bundle

    out = ROOT / "models" / args.name / args.version
    bundle = load_bundle(out)
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    manifest = json.loads((out / "data_manifest.json").read_text(encoding="utf-8"))
    card, details, _ = render_card(args.name, args.version, bundle.model, manifest, metrics)
    (out / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    (out / "metrics.md").write_text(details, encoding="utf-8")


def comparison_markdown(summary: dict) -> str:
    lines = ["## Model comparison", "",
             "All rows: team-coded real sessions, 3-fold CV grouped by session (the zero-shot baseline is "
             "scored on all real sessions without training). The default is the best row by mean of rupture "
             "F1 and repair F1; see the recipe for the caveat on that choice.", "",
             "| candidate | rupture vs none F1 | three-way kappa | macro-F1 | repair F1 |", "|---|---|---|---|---|"]
    for name, m in summary["real_cv"].items():
        lines.append(f"| {name}{' (default)' if name == summary['chosen'] else ''} | {m.get('rupture_f1')} | "
                     f"{m.get('kappa3')} | {m.get('macro_f1')} | {m.get('repair_f1', 'n/a')} |")
    setfit = ROOT / "models" / "recipes" / "results" / "setfit.json"
    if setfit.exists():
        sf = json.loads(setfit.read_text(encoding="utf-8"))
        cv = sf.get("real_cv3")
        if cv:
            lines.append(f"| SetFit-style contrastive fine-tuning + logreg, real sessions only (compare_setfit.py "
                         f"--real-cv: encoder fine-tuned inside each training fold) | {cv.get('rupture_f1')} | "
                         f"{cv.get('kappa3')} | {cv.get('macro_f1')} | {cv.get('repair_f1')} |")
        tr = sf.get("constructed_to_real")
        if tr:
            lines.append(f"| SetFit-style contrastive fine-tuning + logreg, trained on constructed only "
                         f"(compare_setfit.py; compare with the transfer row below) | {tr.get('rupture_f1', 'n/a')} | "
                         f"{tr.get('kappa3', 'n/a')} | {tr.get('macro_f1', 'n/a')} | {tr.get('repair_f1', 'n/a')} |")
        if cv:
            lines += ["", f"The SetFit-style row ({sf.get('n_pairs')} pairs, one epoch, training inputs cut to "
                          f"{sf.get('max_tokens_in_training') or 256} tokens, for a CPU budget) scores slightly above the "
                          "default on the same folds (one split; the difference was not tested with repeated splits). It is "
                          "not shipped: its bundle would have to carry a fine-tuned 90 MB encoder (the default carries "
                          "only heads over the packaged one), and each fine-tuning took 7-14 minutes on 2 shared CPU cores. "
                          "It is the first candidate to revisit with more real data."]
    t = summary["transfer_constructed_to_real"]
    c = summary["constructed_cv"]
    lines += ["", f"Default configuration trained on the constructed corpus only and scored on all real sessions: "
                  f"rupture F1 {t.get('rupture_f1')}, kappa {t.get('kappa3')}, repair F1 {t.get('repair_f1')}. "
                  f"On the constructed corpus (3-fold CV): rupture F1 {c.get('rupture_f1')}, kappa {c.get('kappa3')}, "
                  f"repair F1 {c.get('repair_f1')}."]
    r = summary["real_cv"][summary["chosen"]]
    lines += ["", "## Targets and the gap", "",
              "| metric on real sessions | target | this model (CV) | coder agreement (ceiling) |", "|---|---|---|---|",
              f"| client rupture vs none F1 | >= 0.70 | {r.get('rupture_f1')} | kappa 0.856 (522 turns) |",
              f"| three-way kappa | >= 0.60 | {r.get('kappa3')} | 0.853 |",
              f"| repair F1 | >= 0.50 | {r.get('repair_f1')} | kappa 0.722 (530 turns) |", "",
              "The targets are not met. What we measured: the constructed corpus, written for the project, does "
              "not transfer to the real sessions (trained on it alone, real-session scores are near chance, and "
              "adding it to the real training data lowers real-session scores), so the default is trained on the "
              "team's real codes only: 151 sessions with about 263 client rupture turns and 92 repair turns, "
              "mostly role-played HLQC and AnnoMI counselling. What would close the gap, in order of expected "
              "effect: (1) more real coded sessions, especially real therapy rather than role-play, and repair "
              "turns (92 examples cannot train a strategy-level model); (2) fixing HLQC's swapped speaker labels "
              "before coding (many real ruptures sit on turns labelled as the therapist); (3) a constructed corpus "
              "written in the style of the target data (ASR-like, counselling role-play) or domain-weighted "
              "training; (4) fine-tuning the encoder on real pairs (the SetFit-style row) once there is enough "
              "real data; (5) longer context than the two previous turns per speaker."]
    return "\n".join(lines) + "\n"

if __name__ == "__main__":
    main()
