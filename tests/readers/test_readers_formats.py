"""Every input format the readers handle, with tiny files built in the tests."""

from __future__ import annotations

import codecs
import io

import docx
import pytest

from pipeline.errors import SpeakerMappingError
from pipeline.io.readers import ReadOptions, read_file


def turns_of(result, session: int = 0) -> list[tuple[str, str, str]]:
    """(role, speaker id, text) of each turn of one session of a FileResult."""
    return [(t.speaker_role, t.speaker_id, t.text) for t in result.sessions[session].turns]


def docx_bytes(paragraphs: list[str] = (), table: list[list[str]] | None = None) -> bytes:
    """A .docx document with these paragraphs and, optionally, one table."""
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, text in enumerate(row):
                grid.cell(r, c).text = text
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# --- canonical CSV -------------------------------------------------------------------------


def test_readers_csv_minimal_columns(write_file):
    result = read_file(write_file("intake.csv", "speaker,text\nT,Hello there.\nC,\"Hi, I guess.\"\n"))
    assert result.format == "csv"
    assert [s.session_id for s in result.sessions] == ["intake"]  # session id from the file name
    assert turns_of(result) == [("therapist", "T", "Hello there."), ("client", "C", "Hi, I guess.")]
    first = result.sessions[0].turns[0]
    assert (first.start_s, first.end_s, first.source.lines, first.source.turn_ids) == (None, None, (2,), ())
    assert result.problems == []


@pytest.mark.parametrize(
    ("cell", "seconds"),
    [("12.5", 12.5), ("75", 75.0), ("02:03", 123.0), ("00:01:02.500", 62.5), ("1:02:03,25", 3723.25),
     ("", None)],
)
def test_readers_csv_times_seconds_and_clock(write_file, cell, seconds):
    path = write_file("t.csv", f'speaker,text,start,end\nT,hello,"{cell}","{cell}"\nC,hi,,\n')
    turn = read_file(path).sessions[0].turns[0]
    assert turn.start_s == seconds and turn.end_s == seconds


def test_readers_csv_turn_ids_are_provenance(write_file):
    path = write_file("t.csv", "turn,speaker,text\n10,T,a\n11,C,b\n12,T,c\n")
    session = read_file(path).sessions[0]
    assert [t.source.turn_ids for t in session.turns] == [("10",), ("11",), ("12",)]
    assert [t.index for t in session.turns] == [0, 1, 2]


def test_readers_csv_many_sessions_per_file(write_file):
    text = ("session_id,turn,speaker,text\n"
            "a,1,T,one\nb,1,T,uno\na,2,C,two\nb,2,C,dos\nc,1,T,eins\nc,2,C,zwei\n")
    result = read_file(write_file("many.csv", text))
    assert [s.session_id for s in result.sessions] == ["a", "b", "c"]
    assert [t.text for t in result.sessions[1].turns] == ["uno", "dos"]
    assert all(t.session_id == "b" for t in result.sessions[1].turns)


def test_readers_csv_columns_option_maps_names(write_file):
    path = write_file("t.csv", "conv,who,utterance,begin\nx,therapist,Hello,1.0\nx,client,Hi,2.0\n")
    options = ReadOptions(columns={"session_id": "conv", "speaker": "who", "text": "utterance",
                                   "start": "begin"})
    result = read_file(path, options)
    assert result.sessions[0].session_id == "x"
    assert turns_of(result) == [("therapist", "therapist", "Hello"), ("client", "client", "Hi")]
    assert [t.start_s for t in result.sessions[0].turns] == [1.0, 2.0]


def test_readers_csv_label_columns_make_annotations(write_file):
    text = (
        "session_id,turn,speaker,text,rupture,markers,repair,strategies\n"
        "s1,1,C,I don't want to talk about it.,withdrawal,withdrawal.denial;withdrawal.topic_shift,,\n"
        "s1,2,T,What just happened?,none,,repair,repair.invite_exploration|repair.validate_defense\n"
        "s1,3,C,fine,none,,,\n"
        "s1,4,T,ok,,,none,\n"
    )
    session = read_file(write_file("labels.csv", text), ReadOptions(label_source="human:coder_a")).sessions[0]
    got = {(a.turn, a.layer, a.code) for a in session.annotations}
    assert got == {
        (0, "rupture", "withdrawal"), (0, "markers", "withdrawal.denial"),
        (0, "markers", "withdrawal.topic_shift"), (1, "repair", "repair"),
        (1, "strategies", "repair.invite_exploration"), (1, "strategies", "repair.validate_defense"),
        (2, "rupture", "none"), (3, "repair", "none"),
    }
    assert {(a.source, a.scheme, a.score, a.session_id) for a in session.annotations} == {
        ("human:coder_a", "rupture_v1", 1.0, "s1")}


def test_readers_csv_speaker_and_speaker_id_columns(write_file):
    text = ("speaker,speaker_id,text\n"
            "therapist,dr_lee,Welcome both.\nclient,client_1,Thanks.\nclient,client_2,Yes.\n"
            "T,dr_kim,And you?\n")
    assert turns_of(read_file(write_file("couple.csv", text))) == [
        ("therapist", "dr_lee", "Welcome both."), ("client", "client_1", "Thanks."),
        ("client", "client_2", "Yes."), ("therapist", "dr_kim", "And you?"),
    ]


# --- TSV and JSONL -----------------------------------------------------------------------


def test_readers_tsv_by_extension_and_by_content(write_file):
    body = "speaker\ttext\nT\tHello, there.\nC\tHi.\n"
    for name, fmt in (("t.tsv", "tsv"), ("tabs.csv", "tsv")):
        result = read_file(write_file(name, body))
        assert result.format == fmt
        assert turns_of(result) == [("therapist", "T", "Hello, there."), ("client", "C", "Hi.")]


def test_readers_jsonl_objects_with_times_and_labels(write_file):
    text = (
        '{"session_id": "s9", "turn": 1, "speaker": "T", "text": "Hello", "start": 0.5, "end": "00:00:02.0"}\n'
        "\n"
        '{"session_id": "s9", "turn": 2, "speaker": "C", "text": "No.", "rupture": "confrontation",'
        ' "markers": ["confrontation.rejects_intervention"]}\n'
    )
    session = read_file(write_file("t.jsonl", text)).sessions[0]
    assert session.session_id == "s9" and session.source_format == "jsonl"
    assert [(t.speaker_role, t.text, t.start_s, t.end_s) for t in session.turns] == [
        ("therapist", "Hello", 0.5, 2.0), ("client", "No.", None, None)]
    assert [t.source.lines for t in session.turns] == [(1,), (3,)]
    assert {(a.turn, a.layer, a.code) for a in session.annotations} == {
        (1, "rupture", "confrontation"), (1, "markers", "confrontation.rejects_intervention")}


def test_readers_jsonl_columns_option(write_file):
    path = write_file("t.jsonl", '{"who": "T", "says": "hi"}\n{"who": "C", "says": "hello"}\n')
    result = read_file(path, ReadOptions(columns={"speaker": "who", "text": "says"}))
    assert turns_of(result) == [("therapist", "T", "hi"), ("client", "C", "hello")]


def test_readers_jsonl_text_with_unicode_line_separators(write_file):
    # json.dumps(ensure_ascii=False) leaves U+2028 and U+0085 raw: they are not JSON line breaks.
    path = write_file("t.jsonl", '{"speaker": "T", "text": "a\u2028b\x85c"}\n{"speaker": "C", "text": "ok"}\n')
    assert turns_of(read_file(path))[0] == ("therapist", "T", "a\u2028b\x85c")


# --- plain text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("T: Hello.\nC: Hi.\n", [("therapist", "T"), ("client", "C")]),
        ("Therapist: Hello.\nClient: Hi.\n", [("therapist", "Therapist"), ("client", "Client")]),
        ("Counsellor: Hello.\nP: Hi.\n", [("therapist", "Counsellor"), ("client", "P")]),
        ("T12 Hello.\nC13 Hi.\nT14 Go on.\nC15 Well.\n",
         [("therapist", "T"), ("client", "C"), ("therapist", "T"), ("client", "C")]),
        ("T12: Hello.\nC13: Hi.\nT14: Go on.\nC15: Well.\n",
         [("therapist", "T"), ("client", "C"), ("therapist", "T"), ("client", "C")]),
        ("Therapist: Welcome.\nClient 1: Thanks.\nClient 2: Yes.\nClient 1: So.\n",
         [("therapist", "Therapist"), ("client", "Client 1"), ("client", "Client 2"), ("client", "Client 1")]),
        ("P1: Hi.\nT: Welcome.\nP2: Hello.\nP1: Well.\n",
         [("client", "P1"), ("therapist", "T"), ("client", "P2"), ("client", "P1")]),
    ],
    ids=["T-C", "words", "counsellor-P", "numbered", "numbered-colon", "couple", "couple-codes"],
)
def test_readers_text_speaker_prefixes(write_file, text, expected):
    result = read_file(write_file("session.txt", text))
    assert result.format == "text"
    assert [(role, speaker) for role, speaker, _ in turns_of(result)] == expected
    assert turns_of(result)[0][2] in {"Hello.", "Welcome.", "Hi."}


def test_readers_text_multiline_turns_blank_lines_and_preamble(write_file):
    text = ("Session 4 - transcript\nDate: 2021-03-01\n\n"
            "T: First line\ncontinues here.\n\nC: Reply.\n\n\nT: End.\n")
    result = read_file(write_file("s.txt", text))
    assert turns_of(result) == [("therapist", "T", "First line\ncontinues here."),
                                ("client", "C", "Reply."), ("therapist", "T", "End.")]
    assert [t.source.turn_ids for t in result.sessions[0].turns] == [("4",), ("7",), ("10",)]
    [warning] = result.problems
    assert (warning.level, warning.code, warning.line) == ("warning", "text.preamble_skipped", 1)
    assert "2 line(s)" in warning.message


def test_readers_text_roles_option_maps_unknown_labels(write_file):
    text = "Dr Lee: Hello.\nSam: Hi.\nDr Lee: So.\nSam: Well.\nSam: And.\n"
    path = write_file("s.txt", text)
    with pytest.raises(SpeakerMappingError, match=r"'Sam' \(first at line 2\).*--roles"):
        read_file(path)
    result = read_file(path, ReadOptions(roles={"Sam": "client"}))
    assert [r for r, _, _ in turns_of(result)] == ["therapist", "client", "therapist", "client", "client"]


def test_readers_roles_option_overrides_aliases(write_file):
    path = write_file("s.txt", "C: I am the counsellor here.\nS: I am the client.\n")
    result = read_file(path, ReadOptions(roles={"c": "therapist", "s": "client"}))
    assert [r for r, _, _ in turns_of(result)] == ["therapist", "client"]


# --- subtitles -------------------------------------------------------------------------------

VTT = """WEBVTT

NOTE exported by a transcription service

00:00:01.000 --> 00:00:04.500
<v Dr Lee>Hello, how have you been?</v>

00:00:05.000 --> 00:00:07.250
<v Sam>Not great.
Honestly.

00:00:08.000 --> 00:00:09.000
Counsellor: Tell me more.

00:00:09.500 --> 00:00:10.000
Take your time.
"""


def test_readers_vtt_voices_prefixes_and_timings(write_file):
    result = read_file(write_file("call.vtt", VTT), ReadOptions(roles={"sam": "client"}))
    assert result.format == "vtt"
    assert turns_of(result) == [
        ("therapist", "Dr Lee", "Hello, how have you been?"), ("client", "Sam", "Not great.\nHonestly."),
        ("therapist", "Counsellor", "Tell me more."), ("therapist", "Counsellor", "Take your time."),
    ]
    session = result.sessions[0]
    assert [(t.start_s, t.end_s) for t in session.turns] == [(1.0, 4.5), (5.0, 7.25), (8.0, 9.0), (9.5, 10.0)]
    assert [t.source.lines for t in session.turns] == [(5,), (8,), (12,), (15,)]


def test_readers_vtt_unmapped_voice_is_named(write_file):
    with pytest.raises(SpeakerMappingError, match=r"call\.vtt: .*'Sam' \(first at line 8\)"):
        read_file(write_file("call.vtt", VTT))


def test_readers_srt_prefixes_and_timings(write_file):
    text = ("1\n00:00:01,000 --> 00:00:02,500\nTherapist: Hello.\n\n"
            "2\n00:00:03,000 --> 00:01:05,000\nClient: Hi there.\nSecond line.\n")
    result = read_file(write_file("call.srt", text))
    assert result.format == "srt"
    assert turns_of(result) == [("therapist", "Therapist", "Hello."),
                                ("client", "Client", "Hi there.\nSecond line.")]
    assert [(t.start_s, t.end_s) for t in result.sessions[0].turns] == [(1.0, 2.5), (3.0, 65.0)]


# --- .docx -----------------------------------------------------------------------------------


def test_readers_docx_paragraphs(write_file):
    data = docx_bytes(["Session notes", "Therapist: Hello.", "Client: Hi.", "", "still the client"])
    result = read_file(write_file("notes.docx", data))
    assert result.format == "docx"
    assert turns_of(result) == [("therapist", "Therapist", "Hello."), ("client", "Client", "Hi.\nstill the client")]
    assert [p.code for p in result.problems] == ["text.preamble_skipped"]


def test_readers_docx_two_column_table(write_file):
    data = docx_bytes(["Transcript"], [["Speaker", "Text"], ["T", "Hello."], ["C", "Hi."], ["", "And more."]])
    result = read_file(write_file("table.docx", data))
    assert turns_of(result) == [("therapist", "T", "Hello."), ("client", "C", "Hi.\nAnd more.")]
    assert [t.source.turn_ids for t in result.sessions[0].turns] == [("2",), ("3",)]


def test_readers_docx_three_column_table_with_times(write_file):
    table = [["00:00:01", "Therapist", "Hello."], ["00:01:02.5", "Client", "Hi."], ["not a time", "Therapist", "So."]]
    result = read_file(write_file("timed.docx", docx_bytes([], table)))
    session = result.sessions[0]
    assert [(t.speaker_role, t.text, t.start_s) for t in session.turns] == [
        ("therapist", "Hello.", 1.0), ("client", "Hi.", 62.5), ("therapist", "So.", None)]
    assert [(p.code, p.line) for p in result.problems] == [("turns.bad_time", 3)]


# --- exports of public data sets (shapes as in /work/shared/data/README.md) ------------------

ANNOMI_HEADER = ("transcript_id,mi_quality,video_title,video_url,topic,utterance_id,interlocutor,"
                 "timestamp,utterance_text,main_therapist_behaviour,client_talk_type\n")


def test_readers_annomi_shaped_csv(write_file):
    text = ANNOMI_HEADER + (
        '0,high,"Video ""A""",https://example.org/a,reducing alcohol consumption,0,therapist,00:00:13,'
        '"Thanks for coming, really.",question,n/a\n'
        "0,high,Video A,https://example.org/a,reducing alcohol consumption,1,client,00:00:20,Sure.,n/a,neutral\n"
        "7,low,Video B,https://example.org/b,smoking cessation,0,therapist,00:01:00,Hi.,other,n/a\n"
        "7,low,Video B,https://example.org/b,smoking cessation,1,client,00:01:05,Hello.,n/a,sustain\n"
    )
    result = read_file(write_file("annomi_sample.csv", text))
    assert result.format == "annomi"
    assert [s.session_id for s in result.sessions] == ["0", "7"]
    first = result.sessions[0]
    assert [(t.speaker_role, t.text, t.start_s) for t in first.turns] == [
        ("therapist", "Thanks for coming, really.", 13.0), ("client", "Sure.", 20.0)]
    assert [t.source.turn_ids for t in first.turns] == [("0",), ("1",)]
    assert first.meta == {"mi_quality": "high", "topic": "reducing alcohol consumption"}
    assert result.sessions[1].meta["mi_quality"] == "low"


def test_readers_hlqc_shaped_csv_with_bom(write_file):
    text = ("corp_vol_idx,conv_id,speaker,vol_text\r\n0,high_001,counsellor,hey how are you\r\n"
            "1,high_001,client,im okay i guess\r\n2,low_002,counsellor,so why are you here\r\n"
            "3,low_002,client,you tell me\r\n")
    result = read_file(write_file("hlqc_sample.csv", codecs.BOM_UTF8 + text.encode("utf-8")))
    assert result.format == "hlqc"
    assert [s.session_id for s in result.sessions] == ["high_001", "low_002"]
    assert turns_of(result, 1) == [("therapist", "counsellor", "so why are you here"),
                                   ("client", "client", "you tell me")]
    assert result.problems == []


def test_readers_hope_shaped_csv(write_file):
    text = ('ID,Type,Utterance,Dialog_Act\n97_0,T,"Jackie, hello. How are you?",gt\n'
            "97_1,P,\"I do well, thanks. \",gt\n97_2,T,Tell me more.,id\n")
    result = read_file(write_file("97.csv", text))
    assert result.format == "hope"
    assert result.sessions[0].session_id == "97"
    assert turns_of(result) == [("therapist", "T", "Jackie, hello. How are you?"),
                                ("client", "P", "I do well, thanks. "), ("therapist", "T", "Tell me more.")]
    assert [t.source.turn_ids for t in result.sessions[0].turns] == [("97_0",), ("97_1",), ("97_2",)]


# --- Rogers-shaped text ----------------------------------------------------------------------

ROGERS = """Transcripts of Carl Rogers' Therapy Sessions
Volume 99
These transcripts are available for purposes of research, study and teaching.

In this interview the responses of the therapist (C) (Carl Rogers), and the client
(S) (Sylvia) are numbered for easy reference.
Carl Rogers 2nd Interview with Sylvia - 1975
[Source: a film, 1975.]
Carl: Hi.
S 1: Hello, I was thinking (Pause 3 seconds.) about
work today.
1 A footnote about the film
that runs to a second line.
Rogers’ Transcripts, Volume 99, Sylvia, 2nd Interview, page 3
C 1: Tell me more. (S: Mhm.)
[Carl: Commentary that runs
over two lines.]
S 2: It has been hard.
C Commentary 1: [A numbered commentary
that continues here.]
S 2 (continued): Really hard.
C 2: Mm.
Rogers’ Transcripts, Volume 99, Sylvia, 2nd Interview, page 4
This transcript is available for purposes of research, study and teaching. It may
not be sold.
Throughout this interview the responses of the therapist (T) (Rogers), and the
client (C) are numbered for easy reference.
Carl Rogers’ Interview with Kathy -- 1977
T: Hi, Kathy.
C1: Hi, Dr. Rogers.
T1: Glad to meet you.
C2: Thank you.
END
Rogers’ Post-Session Commentary
C: I found this session fascinating, and this is not a turn.
T 3: Nor is this.
FINAL COMMENT BY ROGERS
S 9: Nothing after the end is a turn.
"""


def test_readers_rogers_shaped_text(write_file):
    result = read_file(write_file("rogers.txt", ROGERS))
    assert result.format == "rogers"
    assert [s.session_id for s in result.sessions] == ["sylvia_2", "kathy"]
    lines = ROGERS.splitlines()
    sylvia, kathy = result.sessions
    assert turns_of(result, 0) == [
        ("therapist", "C", "Hi."),
        ("client", "S", "Hello, I was thinking (Pause 3 seconds.) about\nwork today."),
        ("therapist", "C", "Tell me more. (S: Mhm.)"),
        ("client", "S", "It has been hard."),
        ("client", "S", "Really hard."),
        ("therapist", "C", "Mm."),
    ]
    starts = ["Carl: Hi.", "S 1:", "C 1:", "S 2: It", "S 2 (continued)", "C 2: Mm."]
    expected_ids = [str(next(i for i, line in enumerate(lines, 1) if line.startswith(s))) for s in starts]
    assert [t.source.turn_ids[0] for t in sylvia.turns] == expected_ids  # turn ids are line numbers
    assert turns_of(result, 1) == [
        ("therapist", "T", "Hi, Kathy."), ("client", "C", "Hi, Dr. Rogers."),
        ("therapist", "T", "Glad to meet you."), ("client", "C", "Thank you."),
    ]
    assert result.problems == []


# --- detection, --format override, encodings -----------------------------------------------

SRT = "1\n00:00:01,000 --> 00:00:02,000\nT: Hi.\n\n2\n00:00:02,000 --> 00:00:03,000\nC: Hello.\n"
JSONL = '{"speaker": "T", "text": "Hi."}\n{"speaker": "C", "text": "Hello."}\n'


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("a.vtt", VTT.replace("<v Sam>", "<v Client>"), "vtt"),
        ("a.txt", VTT.replace("<v Sam>", "<v Client>"), "vtt"),
        ("a.srt", SRT, "srt"),
        ("a.txt", SRT, "srt"),
        ("a.jsonl", JSONL, "jsonl"),
        ("a.ndjson", JSONL, "jsonl"),
        ("a.txt", JSONL, "jsonl"),
        ("a.csv", "speaker,text\nT,Hi.\nC,Hello.\n", "csv"),
        ("a.csv", "speaker;text\nT;Hi.\nC;Hello.\n", "csv"),
        ("a.tsv", "speaker\ttext\nT\tHi.\nC\tHello.\n", "tsv"),
        ("a.csv", ANNOMI_HEADER + "0,high,v,u,t,0,therapist,00:00:01,Hi.,q,n/a\n"
                                  "0,high,v,u,t,1,client,00:00:02,Yo.,n/a,neutral\n", "annomi"),
        ("a.csv", "\ufeffcorp_vol_idx,conv_id,speaker,vol_text\n0,h,counsellor,hi\n1,h,client,yo\n", "hlqc"),
        ("a.csv", "ID,Type,Utterance,Dialog_Act\n1_0,T,Hi.,gt\n1_1,P,Yo.,gt\n", "hope"),
        ("a.txt", ROGERS, "rogers"),
        ("a.txt", "T: Hi.\nC: Hello.\n", "text"),
        ("transcript", "T: Hi.\nC: Hello.\n", "text"),
    ],
)
def test_readers_detect_format_by_extension_and_content(write_file, name, content, fmt):
    result = read_file(write_file(name, content))
    assert result.format == fmt
    assert len(result.sessions[0].turns) >= 2


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("looks.csv", "T: Hi.\nC: Hello.\n", "text"),
        ("data.txt", "speaker,text\nT,Hi.\nC,Hello.\n", "csv"),
        ("export.txt", "ID,Type,Utterance\n1,T,Hi.\n2,P,Hello.\n", "hope"),
        ("lines.txt", JSONL, "jsonl"),
    ],
)
def test_readers_format_option_overrides_detection(write_file, name, content, fmt):
    result = read_file(write_file(name, content), ReadOptions(fmt=fmt))
    assert result.format == fmt
    assert [r for r, _, _ in turns_of(result)] == ["therapist", "client"]


TEXT = "T: Café, naïve — “quoted”.\nC: Ça va.\n"


@pytest.mark.parametrize(
    ("data", "warned"),
    [
        (TEXT.encode("utf-8"), False),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), False),
        (TEXT.encode("utf-16"), False),  # BOM, native order
        (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), False),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), False),
        (TEXT.encode("utf-16-le"), False),
        (TEXT.encode("utf-16-be"), False),
        (TEXT.encode("cp1252"), True),
    ],
    ids=["utf8", "utf8-bom", "utf16", "utf16le-bom", "utf16be-bom", "utf16le", "utf16be", "cp1252"],
)
def test_readers_encodings(write_file, data, warned):
    result = read_file(write_file("enc.txt", data))
    assert [t.text for t in result.sessions[0].turns] == ["Café, naïve — “quoted”.", "Ça va."]
    warnings = [(p.level, p.code, p.line) for p in result.problems]
    assert warnings == ([("warning", "encoding.cp1252", 1)] if warned else [])
