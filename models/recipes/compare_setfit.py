"""SetFit-style candidate for the model comparison (CPU; about 10-20 minutes here).

    python models/recipes/compare_setfit.py --real-cv   # add --cv for constructed-corpus CV too
    python models/recipes/compare_setfit.py --real-cv --no-transfer --pairs=640 --max-tokens=128  # CPU budget

The second line is what was run for the shipped card (2,000 pairs at full length took over 15
minutes per fold on 2 CPU cores); its settings are recorded in setfit.json.

With ``--real-cv``: 3-fold session-grouped CV on the team-coded real sessions (the same folds as
the default recipe's real-CV rows), the encoder fine-tuned contrastively and the default heads
trained inside each training fold only. Always: fine-tunes on the constructed corpus, trains
the heads on it, and scores them on all real sessions (held out), like the "constructed -> real"
row of the default recipe.
Also reports 3-fold session-grouped CV on the constructed corpus with the encoder fine-tuned
inside each training fold. Writes models/recipes/results/setfit.json, which
train_default.py includes in the model card.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pipeline.modeling.estimator import RuptureCoder  # noqa: E402
from pipeline.modeling.evaluate import collect, merge_collected, score  # noqa: E402
from pipeline.modeling.contrastive import contrastive_finetune  # noqa: E402
from pipeline.modeling.training import load_constructed, load_real  # noqa: E402
from train_default import headline  # noqa: E402

N_PAIRS = int(next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--pairs=")), 2000))
MAX_TOKENS = int(next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--max-tokens=")), 0)) or None


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    t0 = time.time()
    constructed = load_constructed().sessions
    shared = ROOT.parent / "shared" / "data"
    real = load_real(shared).sessions if shared.is_dir() else None
    result = {"n_pairs": N_PAIRS, "epochs": 1, "max_tokens_in_training": MAX_TOKENS}
    if "--cv" in sys.argv:  # fine-tuning inside each fold triples the cost
        groups = np.array([s.session_id for s in constructed])
        parts = []
        for tr, te in GroupKFold(n_splits=3).split(np.zeros(len(constructed)), groups=groups):
            train = [constructed[i] for i in tr]
            embedder = contrastive_finetune(train, n_pairs=N_PAIRS, max_tokens=MAX_TOKENS)
            model = RuptureCoder(embedder=embedder.name, C=0.05, cv=3).fit(train)
            parts.append(collect(model, [constructed[i] for i in te]))
        result["constructed_cv3"] = headline(score(merge_collected(parts)))
    if real and "--real-cv" in sys.argv:  # the same session-grouped folds as the default's real-CV row
        groups = np.array([s.session_id for s in real])
        parts = []
        for fold, (tr, te) in enumerate(GroupKFold(n_splits=3).split(np.zeros(len(real)), groups=groups)):
            train = [real[i] for i in tr]
            embedder = contrastive_finetune(train, n_pairs=N_PAIRS, max_tokens=MAX_TOKENS)
            model = RuptureCoder(embedder=embedder.name, C=0.05, cv=3).fit(train)
            parts.append(collect(model, [real[i] for i in te]))
            logging.info("real fold %d/3 done", fold + 1)
        result["real_cv3"] = headline(score(merge_collected(parts)))
    if real and "--no-transfer" not in sys.argv:
        embedder = contrastive_finetune(constructed, n_pairs=N_PAIRS, max_tokens=MAX_TOKENS)
        model = RuptureCoder(embedder=embedder.name, C=0.05, cv=3).fit(constructed)
        result["constructed_to_real"] = headline(score(collect(model, real)))
    result["seconds"] = round(time.time() - t0)
    out = ROOT / "models" / "recipes" / "results" / "setfit.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
