"""What each step added, on leave-one-corpus-out (issue 12): labels v1 -> v2 (reference-aligned
relabelling and speaker corrections), 151 -> 325 sessions, then the model changes.

    python models/recipes/ablation.py     # about 10 minutes on 2 cores with a warm embedding cache

Every row is scored on the same held-out corpora with the v2 (reference-aligned) codes; only the
training side changes. The eight reference-coded sessions and their two repeats are left out of
training and test, as in train_default.py, and training sessions that repeat a test session's
recording are left out (pipeline/modeling/repeats.py; since 2026-12-06). Writes models/recipes/results/ablation.json and prints
a Markdown table.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_default import CACHE, CANDIDATES, LOCO, REPEATS_OF_REFERENCE, headline, reference_sessions  # noqa: E402

from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.modeling.evaluate import collect, merge_collected, score  # noqa: E402
from pipeline.modeling.repeats import without_repeats  # noqa: E402
from pipeline.modeling.training import load_real  # noqa: E402


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    shared = ROOT.parent / "shared" / "data"
    held = {(s.source_format, s.session_id) for s in reference_sessions(shared)} | REPEATS_OF_REFERENCE
    keep = lambda ss: [s for s in ss if (s.source_format, s.session_id) not in held]  # noqa: E731
    v2 = keep(load_real(shared).sessions)
    v1_paths = sorted((ROOT / "corpus" / "real_labels" / "v1").glob("coder_a_*.csv"))
    v1 = keep(load_real(shared, v1_paths, speaker_corrections=[]).sessions)
    v1_ids = {(s.source_format, s.session_id) for s in v1}
    v2_same = [s for s in v2 if (s.source_format, s.session_id) in v1_ids]
    steps = [("labels v1 (151 sessions, speakers as transcribed), 1.0.0 configuration", v1, "embedding"),
             ("labels v2 on the same 151 sessions (reference-aligned, speakers corrected)", v2_same, "embedding"),
             ("labels v2, all 325 sessions", v2, "embedding"),
             ("+ TF-IDF view of the exchange, thresholds across corpora", v2, "embedding+text"),
             ("+ second stage over the session", v2, "session-aware")]
    rows = {}
    for title, train_pool, candidate in steps:
        params = dict(CANDIDATES[candidate], cache_dir=CACHE)
        out, parts = {}, []
        for split, (train_c, test_c) in LOCO.items():
            test = [s for s in v2 if s.meta["corpus"] in test_c]
            # as leave_one_corpus_out: no training session that repeats a test session's recording
            train = without_repeats([s for s in train_pool if s.meta["corpus"] in train_c], test)[0]
            c = collect(RuptureCoder(**params).fit(train), test)
            parts.append(c)
            out[split] = headline(score(c))
        out["pooled"] = headline(score(merge_collected(parts)))
        rows[title] = out
        logging.info("%s: %s", title, json.dumps(out))
    (ROOT / "models" / "recipes" / "results").mkdir(exist_ok=True)
    (ROOT / "models" / "recipes" / "results" / "ablation.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("| step | split | rupture F1 | ROC-AUC | PR-AUC | 3-way kappa | Spearman | repair F1 | repair PR-AUC |")
    print("|---|---|---|---|---|---|---|---|---|")
    for title, out in rows.items():
        for split, h in out.items():
            if split != "pooled":
                print(f"| {title} | {split} | {h['rupture_f1']} | {h['rupture_roc_auc']} | {h['rupture_pr_auc']} | "
                      f"{h['kappa3']} | {h['spearman_ruptures']} | {h['repair_f1']} | {h['repair_pr_auc']} |")


if __name__ == "__main__":
    main()
