"""Turn segmentation: the unit of coding is the speaker turn.

``segment_session`` is a pure function: it returns a new Session whose turns

* keep the text as spoken (``text``) and a cleaned copy (``clean_text``: non-verbal notes,
  HTML/VTT markup and inline interjections of the other speaker removed, whitespace normalised);
* list the non-verbal notes found (``nonverbal``: "[sighs]", "(long pause)", "(C: M-hm.)");
* merge consecutive fragments of the same speaker (configurable), keeping short back-channels
  of other speakers as their own turns, so they split the monologue around them;
* split very long turns into utterances (``utterances``) with spaCy's rule-based sentencizer
  (a blank English pipeline: no model download), without splitting the turn itself;
* record every input turn they came from (``source``), and carry input annotations along.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from pipeline.records import Annotation, Session, Turn

BRACKETED = re.compile(r"\[[^\[\]]{0,200}\]")
# Parenthesised notes: stage directions and inline interjections such as "(C: M-hm.)".
PAREN = re.compile(r"\((?:[^()]{0,200})\)")
# Stems that mark a stage direction: whole words, or stems with any ending where no ordinary
# word shares the stem ("(minister)", "(secret)", "(sober)", "(a long story)" are speech).
NONVERBAL_WORDS = re.compile(
    r"\b(?:paus\w*|silen\w*|sigh(?:s|ed|ing)?|laugh\w*|chuckl\w*|cry|cries|cried|crying|"
    r"tear(?:s|ful|y)?|sob(?:s|bing|bed)?|inaudible|unclear|crosstalk|overlap\w*|smil\w*|"
    r"nod(?:s|ded|ding)?|shrug\w*|cough\w*|clears|looks|leans|sits|seconds?|secs?|minutes?|mins?|"
    r"gestur\w*|whisper\w*|yawn\w*|sniff\w*|hesitat\w*|groan\w*|voice|quiet\w*|tissue\w*|"
    r"drinks|phone|noise)\b",
    re.I,
)
INTERJECTION = re.compile(r"^\(\s*[A-Z][A-Za-z]{0,10}\s*:")
MARKUP = re.compile(r"</?[a-zA-Z][^<>]{0,80}>")
SPACE = re.compile(r"\s+")
SPACE_BEFORE_PUNCT = re.compile(r" ([,.;:!?])")  # left where a note or tag was cut out
BACKCHANNELS = {
    "mm", "mhm", "mm-hmm", "mm hmm", "mmhmm", "uh-huh", "uh huh", "um-hum", "m-hm", "hm", "hmm",
    "yeah", "yes", "yep", "ok", "okay", "right", "sure", "i see", "uhm hmm", "mhm hm", "mmm",
    "uh-hum", "yea", "ya", "uh", "um", "oh", "ah", "alright", "all right",
}


@dataclass(frozen=True)
class SegmentConfig:
    """How sessions are segmented (saved with every output)."""

    merge_same_speaker: bool = True
    max_merge_gap_s: float | None = None  # don't merge fragments further apart than this
    split_chars: int = 600  # turns longer than this get sentence-level utterances
    version: str = "segment.v1"


def extract_nonverbal(text: str) -> tuple[str, tuple[str, ...]]:
    """Split text into (clean text, non-verbal notes). Bracketed notes are always notes;
    parenthesised ones when they read like a stage direction or an interjection."""
    notes: list[tuple[int, str]] = []

    def take(match: re.Match) -> str:
        # Blank the note out with as many spaces, so later matches keep their text positions.
        notes.append((match.start(), match.group(0)))
        return " " * len(match.group(0))

    def take_paren(match: re.Match) -> str:
        inner = match.group(0)
        if INTERJECTION.match(inner) or NONVERBAL_WORDS.search(inner) or len(inner) <= 4:
            return take(match)
        return inner

    cleaned = BRACKETED.sub(take, MARKUP.sub(" ", text))
    cleaned = PAREN.sub(take_paren, cleaned)
    ordered = tuple(note for _, note in sorted(notes, key=lambda x: x[0]))
    return SPACE_BEFORE_PUNCT.sub(r"\1", SPACE.sub(" ", cleaned)).strip(), ordered


def is_backchannel(clean_text: str) -> bool:
    words = re.sub(r"[^\w\s'-]", " ", clean_text.lower()).split()
    if not words or len(words) > 3:
        return False
    return " ".join(words) in BACKCHANNELS or all(w in BACKCHANNELS for w in words)


@lru_cache(maxsize=1)
def _sentencizer():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    return nlp


SENTENCIZE_PIECE = 100_000  # characters per sentencizer call: spaCy refuses texts over 1,000,000 (E088)


def split_utterances(clean_text: str, split_chars: int) -> tuple[str, ...]:
    if len(clean_text) <= split_chars:
        return (clean_text,) if clean_text else ()
    return tuple(s.text.strip() for piece in _pieces(clean_text, SENTENCIZE_PIECE)
                 for s in _sentencizer()(piece).sents if s.text.strip())


def _pieces(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of at most ``size`` characters, at a space where there is one."""
    out = []
    while len(text) > size:
        cut = text.rfind(" ", size // 2, size)
        cut = cut if cut > 0 else size
        out.append(text[:cut])
        text = text[cut:]
    return out + [text]


def _clean(turn: Turn) -> Turn:
    clean, notes = extract_nonverbal(turn.text)
    return replace(turn, clean_text=clean, nonverbal=notes)


def _mergeable(a: Turn, b: Turn, config: SegmentConfig) -> bool:
    if not config.merge_same_speaker or a.speaker_id != b.speaker_id:
        return False
    if config.max_merge_gap_s is not None and a.end_s is not None and b.start_s is not None:
        return b.start_s - a.end_s <= config.max_merge_gap_s
    return True


def _merge(a: Turn, b: Turn) -> Turn:
    return replace(
        a,
        text=f"{a.text}\n{b.text}",
        clean_text=f"{a.clean_text} {b.clean_text}".strip(),
        nonverbal=a.nonverbal + b.nonverbal,
        end_s=b.end_s if b.end_s is not None else a.end_s,
        start_s=a.start_s if a.start_s is not None else b.start_s,
        source=a.source.merged(b.source),
        meta={**b.meta, **a.meta} if b.meta else a.meta,  # flags such as merged_speakers carry over
    )


def segment_session(session: Session, config: SegmentConfig | None = None) -> Session:
    """Return a new, segmented Session (the input session is not modified)."""
    config = config or SegmentConfig()
    groups: list[list[int]] = []
    merged: list[Turn] = []
    for i, turn in enumerate(session.turns):
        turn = _clean(turn)
        if merged and _mergeable(merged[-1], turn, config):
            merged[-1] = _merge(merged[-1], turn)
            groups[-1].append(i)
        else:
            merged.append(turn)
            groups.append([i])
    turns = tuple(
        replace(t, index=k, utterances=split_utterances(t.clean_text, config.split_chars))
        for k, t in enumerate(merged)
    )
    old_to_new = {old: new for new, group in enumerate(groups) for old in group}
    annotations = _remap(session.annotations, old_to_new)
    meta = {**session.meta, "segmentation": config.version,
            "input_turns": len(session.turns), "merged_turns": len(session.turns) - len(turns)}
    return replace(session, turns=turns, annotations=annotations, meta=meta)


def _remap(annotations: tuple[Annotation, ...], old_to_new: dict[int, int]) -> tuple[Annotation, ...]:
    """Move annotations to the merged turn; single-code layers keep the first non-default code."""
    out: dict[tuple, Annotation] = {}
    for a in annotations:
        moved = replace(a, turn=old_to_new.get(a.turn, a.turn))
        key = (moved.turn, moved.layer, moved.source) if moved.layer in ("rupture", "repair") else (
            moved.turn, moved.layer, moved.source, moved.code)
        current = out.get(key)
        if current is None or (current.code == "none" and moved.code != "none"):
            out[key] = moved
    return tuple(out.values())


def segment_corpus(sessions, config: SegmentConfig | None = None):
    return [segment_session(s, config) for s in sessions]
