"""Review batches: pick coded turns for annotators to check and export them.

A review batch is built from a run's turn records (:class:`pipeline.records.TurnRecord`, read
with :class:`pipeline.io.run_folder.RunFolder`). Only client and therapist turns are reviewed; every item
carries the turns before it as context (speaker id and text, oldest first; never anything after
it) and the model's codes as the proposal to correct.

Selection strategies (:func:`select_items`):

* ``uncertainty``: most uncertain first (the record's ``uncertainty``; a turn without one comes
  last), ties broken by session order, then turn index;
* ``stratified``: items grouped by predicted code of the role's single-code layer (``rupture:none``,
  ``rupture:withdrawal``, ``repair:repair``...), shuffled within each group with ``seed``, then
  taken round-robin over the groups in sorted order, so rare codes are reviewed too;
* ``all``: every item in session order.

``sessions=k`` (``--sessions``) first keeps the items of ``k`` sessions drawn at random with
``seed`` (every turn of each): what ``rupture-coder adapt`` needs, since turns picked by
uncertainty sit near the model's threshold and bias a threshold set on them.

Export formats: Label Studio (tasks JSON with predictions, plus a labeling configuration
generated from the label file, see :mod:`pipeline.review.labelstudio`) and a CSV review sheet (plus a
codes sheet), both as the coding manual describes them ("Coding in the review formats").
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import ConfigError
from pipeline.io.files import REVIEW_SHEET_FIELDS, atomic_write, write_csv
from pipeline.io.run_folder import RunFolder
from pipeline.records import TurnRecord
from pipeline.review.items import ReviewItem, item_id, parse_item_id  # noqa: F401  (re-exported)
from pipeline.review.labelstudio import labeling_config, tasks

STRATEGIES = ("uncertainty", "stratified", "all")
FORMATS = ("label-studio", "csv")
CODED_ROLES = ("client", "therapist")
CSV_FIELDS = REVIEW_SHEET_FIELDS
CODES_FIELDS = ("layer", "applies_to", "code", "display", "description")
SEPARATOR = ";"


def model_codes(record: TurnRecord, book: Codebook) -> dict[str, tuple[str, ...]]:
    """The model's codes of a turn record, by layer (only the layers of the turn's role)."""
    return {name: record.codes(name) for name, layer in book.layers.items() if layer.applies_to == record.speaker}


def build_items(records: list[TurnRecord], context: int = 4, book: Codebook | None = None) -> list[ReviewItem]:
    """Review items for every client and therapist turn, in session order."""
    if context < 0:
        raise ConfigError("--context must be 0 or more", found=str(context))
    book = book or load_codebook()
    items, history = [], {}
    for record in records:
        seen = history.setdefault(record.session_id, [])
        if record.speaker in CODED_ROLES:
            ctx = tuple(seen[-context:]) if context else ()
            items.append(ReviewItem(
                item_id(record.session_id, record.turn), record.session_id, record.turn, record.speaker,
                record.speaker_id, record.text, ctx, model_codes(record, book), record.uncertainty, record.model))
        seen.append((record.speaker_id or record.speaker, record.text))
    return items


def stratum(item: ReviewItem, book: Codebook) -> str:
    """The predicted code an item is stratified by: ``<single layer>:<code>``."""
    for name, layer in book.layers.items():
        if layer.applies_to == item.speaker and layer.kind == "single":
            codes = item.model_codes.get(name, ())
            return f"{name}:{codes[0] if codes else '-'}"
    return f"{item.speaker}:-"


def select_items(items: list[ReviewItem], n: int | None = None, strategy: str = "uncertainty",
                 seed: int = 0, book: Codebook | None = None) -> list[ReviewItem]:
    """Pick at most ``n`` items (all when None) by a strategy (see the module docstring).
    The same inputs and seed always give the same items in the same order."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown --strategy {strategy!r}", expected=", ".join(STRATEGIES))
    if n is not None and n < 1:
        raise ConfigError("--n must be at least 1", found=str(n))
    order = {item.item_id: k for k, item in enumerate(items)}
    if strategy == "all":
        picked = list(items)
    elif strategy == "uncertainty":
        picked = sorted(items, key=lambda it: (it.uncertainty is None, -(it.uncertainty or 0.0), order[it.item_id]))
    else:
        picked = _round_robin(items, seed, book or load_codebook())
    return picked if n is None else picked[:n]


def sample_sessions(items: list[ReviewItem], k: int, seed: int = 0) -> list[ReviewItem]:
    """The items of ``k`` sessions drawn at random with ``seed`` (all sessions when there are
    fewer), in their order."""
    if k < 1:
        raise ConfigError("--sessions must be at least 1", found=str(k))
    ids = list(dict.fromkeys(item.session_id for item in items))
    chosen = set(random.Random(seed).sample(ids, min(k, len(ids))))
    return [item for item in items if item.session_id in chosen]


def _round_robin(items: list[ReviewItem], seed: int, book: Codebook) -> list[ReviewItem]:
    rng = random.Random(seed)
    groups: dict[str, list[ReviewItem]] = {}
    for item in items:
        groups.setdefault(stratum(item, book), []).append(item)
    queues = []
    for name in sorted(groups):
        members = list(groups[name])
        rng.shuffle(members)
        queues.append(members)
    out = []
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


def csv_row(item: ReviewItem) -> dict:
    """One row of the CSV review sheet (annotator columns empty)."""
    codes = item.model_codes
    return {
        "item_id": item.item_id, "session_id": item.session_id, "turn": item.turn, "speaker": item.speaker,
        "speaker_id": item.speaker_id, "context": "\n".join(f"{who}: {text}" for who, text in item.context),
        "text": item.text,
        **{f"model_{layer}": SEPARATOR.join(codes.get(layer, ())) for layer in ("rupture", "markers", "repair", "strategies")},
        "model_uncertainty": item.uncertainty,
    }


def codes_rows(book: Codebook) -> list[dict]:
    """The codes sheet: every valid code per answer column, from the label file."""
    return [{"layer": name, "applies_to": layer.applies_to, "code": c.code, "display": c.display,
             "description": c.description} for name, layer in book.layers.items() for c in layer.codes]


def companion(path: Path, suffix: str) -> Path:
    """A file written next to an export: ``<stem><suffix>`` in the same folder."""
    return path.with_name(path.stem + suffix)


def export_csv(items: list[ReviewItem], out: str | Path, book: Codebook | None = None) -> list[Path]:
    """Write the CSV review sheet and its codes sheet (``<stem>.codes.csv``); returns the paths.
    Cells are CSV-injection safe (:func:`pipeline.io.files.safe_cell`)."""
    book = book or load_codebook()
    out = Path(out)
    write_csv(out, CSV_FIELDS, [csv_row(item) for item in items])
    codes_path = companion(out, ".codes.csv")
    write_csv(codes_path, CODES_FIELDS, codes_rows(book))
    return [out, codes_path]


def export_label_studio(items: list[ReviewItem], out: str | Path, book: Codebook | None = None) -> list[Path]:
    """Write Label Studio tasks (JSON list, with the model's predictions) and the labeling
    configuration generated from the label file (``<stem>.config.xml``); returns the paths."""

    book = book or load_codebook()
    out = Path(out)
    atomic_write(out, json.dumps(tasks(items, book), ensure_ascii=False, indent=2) + "\n")
    config_path = companion(out, ".config.xml")
    atomic_write(config_path, labeling_config(book))
    return [out, config_path]


def export_batch(run_dir: str | Path, to: str, out: str | Path, n: int | None = None,
                 strategy: str = "uncertainty", context: int = 4, seed: int = 0,
                 sessions: int | None = None) -> tuple[list[ReviewItem], list[Path]]:
    """Read a run, select items (of ``sessions`` random sessions, when given) and export them;
    returns the items and the files written."""
    if to not in FORMATS:
        raise ConfigError(f"unknown --to {to!r}", expected=", ".join(FORMATS))
    out = Path(out)
    run_turns = Path(run_dir).resolve() / "turns.jsonl"
    if out.resolve() == run_turns:
        raise ConfigError("--out would overwrite the run's turns.jsonl", path=out, fix="choose another file")
    book = load_codebook()
    items = build_items(RunFolder(run_dir).turns(), context, book)
    if sessions is not None:
        items = sample_sessions(items, sessions, seed)
    items = select_items(items, n, strategy, seed, book)
    if not items:
        raise ConfigError("the run has no client or therapist turns to review", path=run_dir)
    write = export_csv if to == "csv" else export_label_studio
    return items, write(items, out, book)
