"""No leaks: canary strings planted in a transcript (a turn's ordinary word, a name, a phone
number, an e-mail address) never reach console output, logs (ours at INFO, Prefect's at INFO and
its database) or error messages; under --phi redact the identifiers are nowhere in the outputs
(.state, .cache and phi_report.json included); and what is written is safe to open: report pages
load nothing remote and escape transcript markup, and no CSV cell runs as a formula."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from canaries import HOSTILE_ID, IDENTIFIER_PARTS, IDENTIFIERS, TURN_CANARY, XSS, all_canaries
from typer.testing import CliRunner

from pipeline.cli._app import app
from pipeline.io.files import FORMULA_START
from pipeline.io.readers import load_paths

pytestmark = pytest.mark.timeout(3600)
IDENTIFYING = (*IDENTIFIERS.values(), *IDENTIFIER_PARTS)


def file_texts(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` as text: Parquet decoded (it is compressed), anything else
    as its bytes read as UTF-8 (SQLite databases, Arrow files and PNGs included)."""
    import pyarrow.parquet as pq

    texts = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            texts[str(path)] = json.dumps(pq.read_table(path).to_pylist(), ensure_ascii=False)
        else:
            texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    return texts


def holding(texts: dict[str, str], values) -> dict[str, list[str]]:
    found = {name: [v for v in values if v in text] for name, text in texts.items()}
    return {name: vs for name, vs in found.items() if vs}


def relative(names, folder: Path) -> set[str]:
    return {Path(n).relative_to(folder).as_posix() for n in names}


# --- console, logs, Prefect ------------------------------------------------------------------------

@pytest.mark.slow
def test_privacy_no_canary_in_console_output_or_logs(blocked_runs):
    assert all("INFO" in blocked_runs[f"code-{mode}"].stderr for mode in ("fail", "redact", "warn"))  # -v
    for name, run in blocked_runs.items():
        leaked = [c for c in all_canaries() if c in run.output or c in run.net_attempts()]
        assert not leaked, f"{name} printed {leaked}:\n{run.output[-3000:]}"
        assert "Traceback" not in run.output, f"{name}:\n{run.output[-3000:]}"


@pytest.mark.slow
def test_privacy_prefect_database_and_logs_hold_no_canary(blocked_runs):
    for mode in ("fail", "warn"):  # through Prefect (--runner local)
        home = blocked_runs[f"code-{mode}"].prefect_home
        texts = file_texts(home)
        assert any(name.endswith("prefect.db") for name in texts), sorted(texts)
        assert holding(texts, all_canaries()) == {}, mode
    # --phi redact ran in process (one small file): no Prefect database at all, and nothing else
    texts = file_texts(blocked_runs["code-redact"].prefect_home)
    assert not any(name.endswith("prefect.db") for name in texts) and holding(texts, all_canaries()) == {}


# --- what each --phi mode writes ----------------------------------------------------------------

@pytest.mark.slow
def test_privacy_redact_leaves_no_identifier_in_any_output(blocked_runs):
    out = blocked_runs["code-redact"].out
    texts = file_texts(out)
    assert relative(texts, out) >= {"phi_report.json", "turns.parquet", "run.json"}
    assert any("/.state/" in name for name in texts) and any("/.cache/" in name for name in texts)
    assert holding(texts, IDENTIFYING) == {}
    turns = [json.loads(line) for line in (out / "turns.jsonl").read_text(encoding="utf-8").splitlines()]
    redacted = next(t for t in turns if t["session_id"] == "phi" and "[PHONE]" in t["text"])
    assert all(p in redacted["text"] for p in ("[PERSON]", "[PHONE]", "[EMAIL]")) and TURN_CANARY in redacted["text"]
    report = json.loads((out / "phi_report.json").read_text(encoding="utf-8"))
    assert {(f["session_id"], f["kind"], f["action"]) for f in report["findings"]} == {
        ("phi", kind, "redacted") for kind in IDENTIFIERS}


@pytest.mark.slow
def test_privacy_fail_codes_only_clean_sessions_and_stores_no_identifier(blocked_runs):
    run = blocked_runs["code-fail"]
    texts = file_texts(run.out)
    assert holding(texts, IDENTIFYING) == {}
    sessions = [json.loads(line)["session_id"] for line in (run.out / "sessions.jsonl").read_text().splitlines()]
    assert sessions == [HOSTILE_ID]
    assert re.search(r"phi\): 3 possible identifier\(s\) \(email 1, person 1, phone 1\); session not coded", run.stdout)
    findings = json.loads((run.out / "phi_report.json").read_text(encoding="utf-8"))["findings"]
    assert {f["action"] for f in findings} == {"session not coded"}
    assert {tuple(sorted(f)) for f in findings} == {("action", "detector", "end", "file", "input_turn_ids", "kind",
                                                     "lines", "session_id", "start", "turn")}


@pytest.mark.slow
def test_privacy_warn_codes_text_unchanged_but_reports_and_summaries_hold_none(blocked_runs):
    out = blocked_runs["code-warn"].out
    texts = file_texts(out)
    where = relative(holding(texts, IDENTIFIERS.values()), out)
    assert "turns.jsonl" in where  # coded unchanged, as asked
    assert not where & {"run.json", "phi_report.json", "sessions.jsonl", "sessions.csv", "report/index.html"}
    assert not any(name.startswith("timelines/") for name in where)
    assert {f["action"] for f in json.loads((out / "phi_report.json").read_text())["findings"]} == {"coded unchanged"}


# --- what is written is safe to open -----------------------------------------------------------------

REMOTE = re.compile(r"""(?:\b(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//"""
                    r"""|@import)""", re.I)


@pytest.mark.slow
def test_privacy_report_pages_load_nothing_remote_and_escape_markup(blocked_runs):
    for mode in ("fail", "redact", "warn"):
        pages = sorted((blocked_runs[f"code-{mode}"].out / "report").glob("*.html"))
        assert len(pages) == (2 if mode == "fail" else 3)
        for page in pages:
            html = page.read_text(encoding="utf-8")
            csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', html)
            assert csp and "default-src 'none'" in csp.group(1).replace("&#39;", "'"), page.name
            assert "connect-src" not in csp.group(1) or "connect-src 'none'" in csp.group(1).replace("&#39;", "'")
            assert not REMOTE.search(html), (page.name, REMOTE.search(html))
            assert XSS not in html and "<script>alert" not in html
    talk = next(p for p in (blocked_runs["code-warn"].out / "report").glob("*.html") if "talk" in p.name)
    assert "Take your time." in talk.read_text(encoding="utf-8")  # the turn is there, its markup inert


def csv_cells(path: Path) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")) for cell in row]


@pytest.mark.slow
def test_privacy_no_csv_cell_runs_as_a_formula(blocked_runs):
    out = blocked_runs["code-warn"].out
    files = [out / "turns.csv", out / "sessions.csv", *sorted((out / "timelines").glob("*.csv")),
             *blocked_runs["review-export"].extra["files"]]
    assert len(files) == 6
    for path in files:
        bad = [c for c in csv_cells(path) if c.startswith(FORMULA_START)]
        assert not bad, (path.name, bad[:5])
    cells = csv_cells(out / "turns.csv") + csv_cells(out / "sessions.csv")
    assert "'" + HOSTILE_ID in cells and any(c.startswith("'=cmd|") for c in cells)
    assert any(c.startswith("'@SUM(1+1)") for c in csv_cells(blocked_runs["review-export"].extra["files"][0]))


# --- error messages for malformed input never quote the transcript -----------------------------

SENTENCE = f"I told Zebulon Quillfeather about the {TURN_CANARY}, honestly"
MALFORMED = {
    "bad time cell.csv": f'speaker,text,start\nT,hi,0\nC,yo,"{SENTENCE}"\n',
    "no header row.csv": f'T,"Hello, {SENTENCE}"\nC,Fine\n',
    "shifted label column.csv": f"speaker,text,rupture\nT,Hello,\nC,It is pointless,{SENTENCE}\n",
    "bad json line.jsonl": '{"speaker": "T", "text": "hi"}\n{"speaker": "C", "text": "' + SENTENCE + '" oops}\n',
    "bad cue timing.vtt": f"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nT: hi\n\n00:00:0x.000 --> {SENTENCE}\nC: lost\n\n"
                          "00:00:04.000 --> 00:00:05.000\nC: fine\n",
    "malformed.srt": f"1\n00:00:01,000 --> 00:00:02,000\nT: hi\n\nx\n{SENTENCE} --> ?\nC: a\n",
    "bad turn id.csv": f'turn,speaker,text\n1,T,a\n"{SENTENCE}",C,b\n1,T,c\n',
}
SECRETS = ("Quillfeather", TURN_CANARY)


@pytest.fixture
def malformed(tmp_path) -> Path:
    folder = tmp_path / "malformed"
    folder.mkdir()
    for name, text in MALFORMED.items():
        (folder / name).write_text(text, encoding="utf-8", newline="")
    return folder


def test_privacy_reader_messages_never_quote_transcript_text(malformed):
    results = load_paths([malformed])
    assert len(results) == len(MALFORMED)
    messages = [p.render() for r in results for p in r.problems]
    assert len(messages) >= len(MALFORMED) - 1  # the turn id one is a valid (if odd) id
    leaked = [m for m in messages if any(s in m for s in SECRETS)]
    assert not leaked


@pytest.mark.parametrize("command", [["inspect"], ["inspect", "--json"], ["deid-check", "--no-ner"]])
def test_privacy_cli_messages_never_quote_transcript_text(malformed, command):
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, [*command, str(malformed)])
    assert result.exit_code == 1, result.output
    assert "failed file" in result.output or '"failed_files"' in result.output
    assert not [s for s in SECRETS if s in result.output]


@pytest.mark.slow
def test_privacy_run_json_never_quotes_malformed_transcripts(malformed, tiny_bundle, code_with_tasks, tmp_path):
    from pipeline.run.steps import RunConfig

    out = tmp_path / "run"
    config = RunConfig(out=str(out), model=str(tiny_bundle), phi="warn", cache_dir=str(out / ".cache"))
    code_with_tasks([malformed], config)
    info = (out / "run.json").read_text(encoding="utf-8")
    assert json.loads(info)["counts"]["files_failed"] >= 3
    assert not [s for s in SECRETS if s in info]
