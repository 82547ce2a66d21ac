"""Session-aware sequence model (issue 12, item 5): does a bidirectional GRU over a whole
session beat the per-turn ``embedding+text`` model on corpora it never saw?

    python models/recipes/sequence_model.py                        # both candidates
    python models/recipes/sequence_model.py --candidates sequence  # one of them

Evaluation is exactly that of ``train_default.py`` (its functions are imported): the two
leave-one-corpus-out splits and the reference check, on the pool of sessions without the eight
reference-coded sessions and their two repeats; the selection score is the recipe's.

``SequenceCoder`` wraps ``RuptureCoder(**CANDIDATES["embedding+text"])``: the base model's marker
and strategy heads, its repair heads and ``decide`` are kept; only the client rupture
probabilities (and their threshold) are replaced. Per turn, the GRU reads the base estimator's
turn features (embeddings of the turn and its context, cues), the speaker role and the base
model's rupture probabilities: out-of-fold for the labelled client turns of the training
sessions (the estimator's own session-grouped inner folds, captured during its fit), the base
model's for the others (as at prediction time). Its output per client turn is a correction
added to the base log-probabilities (the output layer starts at zero, so training starts from
the base model). Class-weighted cross-entropy, Adam, early stopping on the average precision of
an inner validation split of training sessions. Three session-grouped folds of the training
sessions give out-of-fold GRU scores (each fold model early-stopped on its own validation
sessions, drawn from its training part), on which a vector-scaling calibrator is fitted and the
threshold chosen with ``transfer_threshold`` (as ``corpus_threshold=True`` does); the three fold
models are averaged at prediction. The test corpus is never used for fitting or stopping.
Writes models/recipes/results/sequence_model.json (updated after every evaluation).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GroupKFold

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_default as R  # noqa: E402

from pipeline.codebook import load_codebook  # noqa: E402
from pipeline.modeling.context import transfer_threshold  # noqa: E402
from pipeline.modeling.estimator import RUPTURE_CLASSES, RuptureCoder, _corpus, gold_arrays  # noqa: E402

log = logging.getLogger("sequence")
OUT = ROOT / "models" / "recipes" / "results" / "sequence_model.json"
ROLES = ("client", "therapist")
torch.set_num_threads(1)


class _CapturingCoder(RuptureCoder):
    """The base estimator, keeping the out-of-fold client rupture probabilities its fit computes
    (calibrated embedding head averaged with the text view, on its session-grouped inner folds)."""

    def _client_rows(self, sessions, feats, golds):
        out = super()._client_rows(sessions, feats, golds)
        self.where_c_ = out[4]
        return out

    def _fit_calibrated(self, X, y, folds, classes, calibrate_on=None):
        head, oof = super()._fit_calibrated(X, y, folds, classes, calibrate_on)
        if tuple(classes) == (0, 1, 2):
            self.oof_rupture_ = oof
        return head, oof

    def _fit_text(self, texts, y, folds, classes):
        model, oof = super()._fit_text(texts, y, folds, classes)
        if tuple(classes) == (0, 1, 2):
            self.oof_rupture_text_ = oof
        return model, oof


class _Net(torch.nn.Module):
    def __init__(self, d_in: int, d_proj: int = 64, hidden: int = 32, dropout: float = 0.3):
        super().__init__()
        self.drop_in = torch.nn.Dropout(0.2)
        self.proj = torch.nn.Sequential(torch.nn.Linear(d_in, d_proj), torch.nn.ReLU(), torch.nn.Dropout(dropout))
        self.gru = torch.nn.GRU(d_proj, hidden, batch_first=True, bidirectional=True)
        self.drop = torch.nn.Dropout(dropout)
        self.out = torch.nn.Linear(2 * hidden + d_proj, 3)
        torch.nn.init.zeros_(self.out.weight)
        torch.nn.init.zeros_(self.out.bias)

    def forward(self, x, base_logp, lengths):
        h = self.proj(self.drop_in(x))
        packed = torch.nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        o, _ = self.gru(packed)
        o, _ = torch.nn.utils.rnn.pad_packed_sequence(o, batch_first=True, total_length=x.shape[1])
        return base_logp + self.out(torch.cat([self.drop(o), h], -1))


def _batch(items):
    n = max(len(it["x"]) for it in items)
    d = items[0]["x"].shape[1]
    x = np.zeros((len(items), n, d), dtype=np.float32)
    b = np.zeros((len(items), n, 3), dtype=np.float32)
    y = np.full((len(items), n), -1, dtype=np.int64)
    for k, it in enumerate(items):
        m = len(it["x"])
        x[k, :m], b[k, :m], y[k, :m] = it["x"], it["logp"], it["y"]
    return torch.from_numpy(x), torch.from_numpy(b), torch.from_numpy(y), torch.tensor([len(it["x"]) for it in items])


class SequenceCoder:
    """``RuptureCoder`` (embedding+text) with its client rupture probabilities replaced by a
    bidirectional GRU over the session (see the module docstring). Same interface:
    ``fit`` / ``predict_proba`` / ``decide``."""

    def __init__(self, params: dict, folds: int = 3, epochs: int = 40, patience: int = 6, lr: float = 1e-3,
                 batch_sessions: int = 8, val_fraction: float = 0.2, seed: int = 0, d_proj: int = 16,
                 hidden: int = 16, dropout: float = 0.5):
        self.params, self.folds, self.epochs, self.patience = params, folds, epochs, patience
        self.d_proj, self.hidden, self.dropout = d_proj, hidden, dropout
        self.lr, self.batch_sessions, self.val_fraction, self.seed = lr, batch_sessions, val_fraction, seed

    # -- inputs --------------------------------------------------------------------------------
    def _items(self, sessions, feats, base_proba, golds=None):
        items = []
        for si, (s, f) in enumerate(zip(sessions, feats)):
            roles = np.array([t.speaker_role for t in s.turns])
            role = np.stack([roles == r for r in ROLES], 1).astype(np.float32)
            p = np.nan_to_num(base_proba[si], nan=0.0)
            is_client = roles == "client"
            logp = np.where(is_client[:, None], np.log(np.clip(p, 1e-4, 1.0)), 0.0).astype(np.float32)
            p_rup = np.where(is_client, 1 - p[:, 0], 0.0)[:, None]
            x = np.hstack([f, role, p * is_client[:, None], p_rup]).astype(np.float32)
            y = np.full(len(s.turns), -1, dtype=np.int64)
            if golds is not None:
                for t in s.turns:
                    code = golds[si]["rupture"][t.index]
                    if t.speaker_role == "client" and code is not None:
                        y[t.index] = RUPTURE_CLASSES.index(code)
            items.append({"x": x, "logp": logp, "y": y, "client": np.where(is_client)[0], "corpus": _corpus(s)})
        return items

    def _scale(self, items):
        return [dict(it, x=(it["x"] - self.mu_) / self.sd_) for it in items]

    # -- one GRU -------------------------------------------------------------------------------
    def _predict_net(self, net, items) -> list[np.ndarray]:
        """Log-probabilities per turn of each session."""
        net.eval()
        out = []
        with torch.no_grad():
            for k in range(0, len(items), 16):
                chunk = items[k:k + 16]
                x, b, _, lengths = _batch(chunk)
                logp = torch.log_softmax(net(x, b, lengths), -1).numpy()
                out += [logp[j, :len(it["x"])] for j, it in enumerate(chunk)]
        return out

    @staticmethod
    def _ap(items, logps) -> float:
        y = np.concatenate([it["y"] for it in items])
        p = np.concatenate([1 - np.exp(lp[:, 0]) for lp in logps])
        keep = y >= 0
        y, p = (y[keep] > 0).astype(int), p[keep]
        return float(average_precision_score(y, p)) if 0 < y.sum() < len(y) else 0.0

    def _train_net(self, train, seed: int):
        rng = np.random.RandomState(seed)
        torch.manual_seed(seed)
        # inner validation sessions, drawn per corpus, for early stopping only
        by = {}
        for k, it in enumerate(train):
            by.setdefault(it["corpus"], []).append(k)
        val = set()
        for ks in by.values():
            ks = list(rng.permutation(ks))
            val |= set(ks[:max(1, int(round(self.val_fraction * len(ks))))] if len(ks) > 2 else [])
        fit_items = [it for k, it in enumerate(train) if k not in val]
        val_items = [it for k, it in enumerate(train) if k in val]
        y = np.concatenate([it["y"] for it in fit_items])
        counts = np.bincount(y[y >= 0], minlength=3).astype(float)
        weights = torch.tensor(np.where(counts > 0, counts.sum() / (3 * np.maximum(counts, 1)), 0.0), dtype=torch.float32)
        net = _Net(train[0]["x"].shape[1], self.d_proj, self.hidden, self.dropout)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=1e-2)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weights, ignore_index=-1)
        best, best_state, best_epoch, waited = self._ap(val_items, self._predict_net(net, val_items)), \
            {k: v.clone() for k, v in net.state_dict().items()}, 0, 0
        for epoch in range(1, self.epochs + 1):
            net.train()
            order = rng.permutation(len(fit_items))
            for k in range(0, len(order), self.batch_sessions):
                x, b, yy, lengths = _batch([fit_items[j] for j in order[k:k + self.batch_sessions]])
                if (yy >= 0).sum() == 0:
                    continue
                logits = net(x, b, lengths)
                loss = loss_fn(logits.reshape(-1, 3), yy.reshape(-1))
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
            ap = self._ap(val_items, self._predict_net(net, val_items))
            log.debug("epoch %d: validation AP %.4f (loss %.3f)", epoch, ap, float(loss.detach()))
            if ap > best + 1e-4:
                best, best_state, best_epoch, waited = ap, {k: v.clone() for k, v in net.state_dict().items()}, epoch, 0
            else:
                waited += 1
                if waited >= self.patience:
                    break
        net.load_state_dict(best_state)
        return net, {"best_epoch": best_epoch, "val_ap": round(best, 4), "n_val": len(val_items)}

    # -- estimator interface -------------------------------------------------------------------
    def fit(self, sessions, y=None) -> "SequenceCoder":
        t0 = time.time()
        book = load_codebook()
        base = _CapturingCoder(**self.params).fit(sessions)
        feats = base._features(sessions)
        golds = [gold_arrays(s, book) for s in sessions]
        oof = base.oof_rupture_
        if base.text_view:
            oof = (oof + base.oof_rupture_text_) / 2
        proba = []
        for s, f in zip(sessions, feats):  # base probabilities (used for unlabelled client turns)
            p = np.full((len(s.turns), 3), np.nan)
            client = [t.index for t in s.turns if t.speaker_role == "client"]
            if client:
                p[client] = base._client_proba(s, f, client)
            proba.append(p)
        for (si, ti), row in zip(base.where_c_, oof):  # out-of-fold for the labelled ones
            proba[si][ti] = row
        items = self._items(sessions, feats, proba, golds)
        rows = np.vstack([it["x"] for it in items])
        self.mu_, self.sd_ = rows.mean(0), rows.std(0) + 1e-3
        items = self._scale(items)
        self.base_ = base
        return self._fit_sequence(items, t0)

    def _fit_sequence(self, items, t0):
        base = self.base_
        groups = np.arange(len(items))
        self.nets_, self.fit_log_ = [], []
        oof_logp = [None] * len(items)
        for fold, (tr, te) in enumerate(GroupKFold(n_splits=self.folds).split(groups, groups=groups)):
            net, info = self._train_net([items[i] for i in tr], self.seed + fold)
            for i, lp in zip(te, self._predict_net(net, [items[i] for i in te])):
                oof_logp[i] = lp
            self.nets_.append(net)
            self.fit_log_.append(info)
        raw, yy, corpus = [], [], []
        for it, lp in zip(items, oof_logp):
            lab = it["y"] >= 0
            raw.append(lp[lab])
            yy.append(it["y"][lab])
            corpus += [it["corpus"]] * int(lab.sum())
        raw, yy, corpus = np.vstack(raw), np.concatenate(yy), np.array(corpus)
        self.calibrator_ = LogisticRegression(C=10.0, max_iter=2000).fit(raw, yy)
        p_cal = self._calibrated(raw)
        self.threshold_ = transfer_threshold((yy > 0).astype(int), 1 - p_cal[:, 0], corpus)
        self.oof_ap_base_ = float(average_precision_score(yy > 0, 1 - np.exp(np.vstack(
            [it["logp"][it["y"] >= 0] for it in items])[:, 0])))
        self.oof_ap_ = float(average_precision_score(yy > 0, 1 - p_cal[:, 0]))
        self.oof_ap_raw_ = float(average_precision_score(yy > 0, 1 - np.exp(raw[:, 0])))
        base.base_rupture_threshold_ = getattr(base, "base_rupture_threshold_", base.rupture_threshold_)
        base.rupture_threshold_ = self.threshold_  # decide() thresholds the sequence probabilities
        log.info("sequence fit on %d sessions: folds %s; OOF AP base %.3f -> sequence %.3f (uncalibrated %.3f); threshold %.3f "
                 "(base %.3f); %.0f s", len(items), self.fit_log_, self.oof_ap_base_, self.oof_ap_, self.oof_ap_raw_,
                 self.threshold_, base.base_rupture_threshold_, time.time() - t0)
        return self

    def _calibrated(self, raw):
        p = self.calibrator_.predict_proba(raw)
        full = np.zeros((len(raw), 3))
        for j, c in enumerate(self.calibrator_.classes_):
            full[:, c] = p[:, j]
        return full

    def predict_proba(self, sessions):
        feats = self.base_._features(sessions)
        scores = [self.base_._score_session(s, f) for s, f in zip(sessions, feats)]
        items = self._scale(self._items(sessions, feats, [sc.rupture for sc in scores]))
        per_net = [self._predict_net(net, items) for net in self.nets_]
        for k, (it, sc) in enumerate(zip(items, scores)):
            c = it["client"]
            if len(c):
                lp = np.mean([p[k][c] for p in per_net], axis=0)
                sc.rupture[c] = self._calibrated(lp)
        return scores

    def decide(self, session, scores):
        return self.base_.decide(session, scores)


def main() -> None:
    params = dict(R.CANDIDATES["embedding+text"], cache_dir=R.CACHE)
    makers = {"embedding+text": lambda: RuptureCoder(**params), "sequence": lambda: SequenceCoder(params)}
    R.experiment_main(__doc__.split("\n")[0], OUT, makers, {
        "base": "embedding+text", "sequence": {k: v for k, v in vars(SequenceCoder(params)).items() if k != "params"}})


if __name__ == "__main__":
    main()
