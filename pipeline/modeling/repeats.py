"""Repeated recordings: the same session transcribed twice, kept on one side of every split.

Public transcript collections repeat recordings: the shared data holds the same session under
two ids within HLQC low, within HLQC high, and once in each quality (8-word runs shared above
30 % of the shorter session). A repeat on both sides of an evaluation split scores the model on
a session it was trained on: on the leave-one-corpus-out split that holds out HLQC low, two such
pairs (of 63 test sessions) carried 5 of the 27 test repairs and doubled the repair PR-AUC
(0.157 without them in training, 0.328 with; docs/models.md). So the evaluators group repeats:
``cross_validate`` folds by recording, ``leave_one_corpus_out`` leaves out of training the
sessions that repeat a test session.

Two sessions repeat each other when they share more than ``NEAR`` of the shorter one's
``SHINGLE``-word runs (lower-cased words of the turns' text). Runs that occur in many sessions
(set phrases, a transcriber's boilerplate) are not counted. Only counts are logged, never text.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter

from pipeline.records import Session

log = logging.getLogger(__name__)

SHINGLE = 8  # words per run
NEAR = 0.3  # shared runs, of the shorter session's, above which two sessions are one recording
COMMON = 20  # a run in more sessions than this (or than 5 % of them) is a set phrase, not evidence


def shingles(session: Session) -> set[int]:
    """Hashes of the session's ``SHINGLE``-word runs (equal within one process; a collision
    between two different runs has a chance near 2**-64)."""
    words = [w for t in session.turns for w in (t.clean_text or t.text).lower().split()]
    return {hash(" ".join(words[i:i + SHINGLE])) for i in range(len(words) - SHINGLE + 1)}


def repeat_pairs(a: list[Session], b: list[Session] | None = None, near: float = NEAR) -> list[tuple[int, int]]:
    """``(i, j)`` for each session ``a[i]`` that repeats ``b[j]`` (``b`` defaults to ``a``; then
    ``i < j``). An inverted index over ``b``'s runs: the time grows with the number of shared
    runs, not with the square of the number of sessions."""
    same = b is None
    b = a if b is None else b
    sh_a = [shingles(s) for s in a]
    sh_b = sh_a if same else [shingles(s) for s in b]
    index: dict[int, list[int]] = {}
    for j, runs in enumerate(sh_b):
        for h in runs:
            index.setdefault(h, []).append(j)
    common = max(COMMON, len(b) // 20)
    pairs = []
    for i, runs in enumerate(sh_a):
        shared: Counter = Counter()
        for h in runs:
            posting = index.get(h)
            if posting and len(posting) <= common:
                shared.update(posting)
        # a session with no runs shares none, so the smaller of two counted sessions is never empty
        pairs += [(i, j) for j, n in shared.items()
                  if not (same and j <= i) and n / min(len(runs), len(sh_b[j])) > near]
    return pairs


def recording_groups(sessions: list[Session]) -> list[int]:
    """One group number per session: repeats of one recording share it (transitively), and so
    do sessions with the same id (one session in two files, or ids that repeat across corpora:
    kept together, which can only make an estimate more cautious)."""
    parent = list(range(len(sessions)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    by_id: dict[str, int] = {}
    same_id = [(by_id.setdefault(s.session_id, k), k) for k, s in enumerate(sessions)]
    for i, j in repeat_pairs(sessions) + same_id:
        parent[find(i)] = find(j)
    roots = [find(k) for k in range(len(sessions))]
    number = {r: n for n, r in enumerate(dict.fromkeys(roots))}
    return [number[r] for r in roots]


def recording_halves(sessions: list[Session]) -> list[int]:
    """0 or 1 per session, the same for every session of one recording (:func:`recording_groups`),
    by a hash of the group's smallest ``source:session_id``: a split in two halves that keeps
    each recording in one half and does not depend on the sessions' order."""
    groups = recording_groups(sessions)
    first: dict[int, str] = {}
    for s, g in zip(sessions, groups):
        name = f"{s.source_format}:{s.session_id}"
        first[g] = min(first.get(g, name), name)
    return [int(hashlib.sha256(first[g].encode()).hexdigest(), 16) % 2 for g in groups]


def without_repeats(train: list[Session], test: list[Session]) -> tuple[list[Session], int]:
    """``train`` less the sessions that repeat a session of ``test``, and how many were left out."""
    leaked = {j for _, j in repeat_pairs(test, train)}
    if leaked:
        log.info("%d training sessions repeat a test session and are left out of training", len(leaked))
    return [s for j, s in enumerate(train) if j not in leaked], len(leaked)
