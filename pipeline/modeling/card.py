"""Model cards: what a bundle is for, what it was trained on, how well it does, and its limits."""

from __future__ import annotations

from pipeline.modeling.evaluate import metrics_markdown

INTENDED_USE = """## Intended use
Supports trained human coders and researchers by pre-coding therapeutic-alliance ruptures
(withdrawal, confrontation, with markers) in client turns and repair attempts (with strategies)
in therapist turns of de-identified psychotherapy transcripts, scheme rupture_v1. Codes are
suggestions to be checked: use the review workflow (uncertainty-ranked batches) before any
clinical or research conclusion. It does **not** replace human coding, is not a clinical
assessment of a therapist or client, and must not be used to make decisions about people.
"""

LIMITS = """## Limits
- Turn-level text only: no audio, prosody, facial expression or long-range session memory
  beyond the previous turns of each speaker.
- English only. Trained on the data listed above; for the shipped models that is a few hundred
  real, mostly role-played or demonstration counselling sessions (HLQC, AnnoMI, HOPE, Carl Rogers)
  and, for 1.0.0, constructed sessions written for the project. Real therapy differs.
- Rare markers and strategies have few examples; their scores are unreliable (see per-code F1).
- ASR transcripts with swapped speaker labels (common in HLQC) confuse client/therapist coding.
- The real-data labels were coded by the project team (from 2.0.0: with the manual aligned to the
  reference codebook, double-coded on 40 sessions), not by certified 3RS coders.
"""


def model_card(name: str, version: str, model, manifest: dict, metrics: dict, extra: str = "") -> str:
    files = "\n".join(f"- `{f['name']}` ({f['role']}, sha256 `{f['sha256'][:12]}...`)" for f in manifest["files"])
    sections = [
        f"# Model card: {name} {version}", "",
        f"Scheme `{model.scheme_}`; embedder `{model.embedder}`; head `{model.head}` (C={model.C}); "
        f"context features {'on' if model.context else 'off'}; cues {'on' if model.cues else 'off'}; "
        f"TF-IDF view of the exchange {'on' if model.text_view else 'off'}"
        f"{' (client turns with the therapist reply)' if model.text_view and model.text_reply else ''}"
        f"{' (therapist turns with the client reply)' if model.text_view and model.repair_reply else ''}"
        f"{' (the context of therapist turns marked by speaker)' if model.text_view and model.repair_marks else ''}; "
        f"second stage over the session {'on' if model.session_stage else 'off'}.", "",
        INTENDED_USE,
        "## Training data", "",
        f"{manifest['counts']['sessions']} sessions, {manifest['counts']['turns']} turns "
        f"({model.n_client_turns_} labelled client turns, {model.n_therapist_turns_} labelled therapist turns). "
        f"Recipe: {manifest['recipe']}.", "", files, "",
        "## Decision thresholds", "",
        ("Chosen on out-of-fold scores of session-grouped cross-validation inside the training data, as the "
         "median of each corpus's F1-best threshold (so that they transfer across corpora whose rupture rates "
         "differ): rupture (1 - P(none)) >= " if model.corpus_threshold else
         "Chosen by session-grouped cross-validation inside the training data: rupture (1 - P(none)) >= ")
        + f"{model.rupture_threshold_:.3f}; repair >= {getattr(model, 'repair_threshold_', float('nan')):.3f}. "
        "Per-code thresholds are in `config.json`.", "",
        "## Metrics", "",
        "All figures are from sessions the evaluated model did not train on (held-out sessions or corpora).", "",
    ]
    for key, value in metrics.items():
        sections.append(metrics_markdown(key, value))
    if extra:
        sections += [extra, ""]
    sections.append(LIMITS)
    return "\n".join(sections)
