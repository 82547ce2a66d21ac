"""Coding runs through the flow's tasks (``.fn()``, no server): resuming, incremental re-runs,
and sessions that fail alone."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import subprocess

import pytest

from pipeline.io.files import safe_filename
from pipeline.run import steps as lib
from pipeline.run import writer as writer_module
from pipeline.run.local import code_corpus

A_CSV = (
    "session_id,turn,speaker,start,end,text\n"
    "a-1,1,T,0,6,What would you like to focus on today?\n"
    "a-1,2,C,6,12,I don't know. Whatever you think.\n"
    "a-1,3,T,12,20,It sounds like it's hard to choose. Can we stay with that for a moment?\n"
    "a-1,4,C,20,30,\"This is pointless, we keep going over the same thing.\"\n"
    "a-1,5,T,30,40,You're right to say so. I may have been pushing my agenda.\n"
    "a-2,1,T,0,5,How was the week?\n"
    "a-2,2,C,5,9,Fine.\n"
    "a-2,3,C,9,14,\"I mean, it was okay.\"\n"
    "a-2,4,T,14,22,I notice you went quiet just now. What happened for you?\n"
)
B_TXT = (
    "T: Last time we ended on a hard note.\n"
    "C: Yeah. I wasn't sure I wanted to come back.\n"
    "T: I'm glad you told me. What made it hard?\n"
    "C: You didn't seem to get it.\n"
)
# The embedding cache keeps every vector an earlier run computed (docs/formats-and-outputs.md): its bytes depend
# on the folder's history, so incremental runs are compared with fresh ones without it.
CACHE = (".cache/",)
PHI_CSV = (
    "session_id,turn,speaker,text\n"
    "p-1,1,T,Welcome.\n"
    "p-1,2,C,You can reach me at 555-123-4567 or jane.doe@example.com any time.\n"
)


@pytest.fixture
def inputs(tmp_path) -> list[Path]:
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "a.csv").write_text(A_CSV, encoding="utf-8")
    (folder / "b.txt").write_text(B_TXT, encoding="utf-8")
    return [folder / "a.csv", folder / "b.txt"]


def session_ids(out: str | Path) -> list[str]:
    return [json.loads(line)["session_id"] for line in (Path(out) / "sessions.jsonl").read_text().splitlines()]


def test_run_rerun_skips_every_session_and_changes_no_byte(inputs, config, code_with_tasks, snapshot, same_tree):
    cfg = config("out")
    first = code_with_tasks(inputs, cfg)
    assert (first["coded_this_run"], first["sessions_coded"]) == (3, 3)
    before = snapshot(cfg.out)
    again = code_with_tasks(inputs, replace(cfg, chunk_size=1))  # chunking changes no output
    assert (again["coded_this_run"], again["sessions_skipped_unchanged"], again["sessions_coded"]) == (0, 3, 3)
    same_tree(snapshot(cfg.out), before)


def test_run_changed_file_recodes_only_its_sessions(inputs, config, code_with_tasks, snapshot, same_tree):
    cfg = config("out")
    code_with_tasks(inputs, cfg)
    before = snapshot(cfg.out)
    with open(inputs[1], "a", encoding="utf-8") as fh:
        fh.write("T: Can you say more about what I missed?\n")
    summary = code_with_tasks(inputs, cfg)
    assert (summary["coded_this_run"], summary["sessions_skipped_unchanged"]) == (1, 2)
    after = snapshot(cfg.out)
    assert after[".state/a-1.json"] == before[".state/a-1.json"]
    assert after["timelines/b.json"] != before["timelines/b.json"]
    fresh = config("fresh")
    code_with_tasks(inputs, fresh)
    same_tree(snapshot(cfg.out, CACHE), snapshot(fresh.out, CACHE))  # incremental == from scratch


def test_run_changed_config_recodes_every_session(inputs, config, code_with_tasks, snapshot, same_tree):
    cfg = config("out")
    code_with_tasks(inputs, cfg)
    turns_merged = (Path(cfg.out) / "turns.jsonl").read_text()
    split = replace(cfg, merge_same_speaker=False)
    summary = code_with_tasks(inputs, split)
    assert (summary["coded_this_run"], summary["sessions_skipped_unchanged"]) == (3, 0)
    assert (Path(cfg.out) / "turns.jsonl").read_text().count("\n") == turns_merged.count("\n") + 1  # a-2's two C turns
    fresh = config("fresh", merge_same_speaker=False)
    code_with_tasks(inputs, fresh)
    same_tree(snapshot(cfg.out, CACHE), snapshot(fresh.out, CACHE))


def test_run_dropped_input_leaves_no_trace_of_its_sessions(inputs, config, code_with_tasks, snapshot, same_tree):
    cfg = config("out")
    code_with_tasks(inputs, cfg)
    summary = code_with_tasks(inputs[:1], cfg)
    assert (summary["sessions_total"], summary["coded_this_run"]) == (2, 0)
    fresh = config("fresh")
    code_with_tasks(inputs[:1], fresh)
    same_tree(snapshot(cfg.out, CACHE), snapshot(fresh.out, CACHE))  # no timeline, page or state of b is left


def test_run_cleans_up_after_a_killed_writer(inputs, config, code_with_tasks, snapshot, same_tree):
    cfg = config("out")
    code_with_tasks(inputs, cfg)
    out = Path(cfg.out)
    debris = [out / ".turns.jsonl.k1l2.tmp", out / "timelines" / ".b.png.x9.tmp", out / ".state" / ".b.json.q.tmp",
              out / ".turns_dataset.ab12" / "state.json", out / ".turns_dataset.old" / "state.json"]
    for path in debris:  # what SIGKILL leaves behind in the middle of atomic writes
        path.parent.mkdir(exist_ok=True)
        path.write_text("half")
    (out / "turns.jsonl").unlink()
    summary = code_with_tasks(inputs, cfg)
    assert summary["coded_this_run"] == 0
    fresh = config("fresh")
    code_with_tasks(inputs, fresh)
    same_tree(snapshot(out, CACHE), snapshot(fresh.out, CACHE))


def test_run_phi_finding_fails_only_its_session(inputs, config, code_with_tasks, tmp_path):
    phi = tmp_path / "inputs" / "phi.csv"
    phi.write_text(PHI_CSV, encoding="utf-8")
    cfg = config("out")
    summary = code_with_tasks([*inputs, phi], cfg)
    assert (summary["sessions_total"], summary["sessions_coded"], summary["sessions_failed"]) == (4, 3, 1)
    assert session_ids(cfg.out) == ["a-1", "a-2", "b"]
    [message] = summary["failures"]
    assert "session p-1" in message and "possible identifier(s)" in message
    info = json.loads((Path(cfg.out) / "run.json").read_text())
    assert info["failures"] == [message] and info["counts"]["sessions_failed"] == 1
    report = (Path(cfg.out) / "phi_report.json").read_text()
    assert {f["session_id"] for f in json.loads(report)["findings"]} == {"p-1"}
    for name in ("phi_report.json", "run.json", "turns.jsonl"):
        text = (Path(cfg.out) / name).read_text()
        assert "555-123-4567" not in text and "jane.doe" not in text


def test_run_phi_redact_codes_the_session_without_the_identifiers(inputs, config, code_with_tasks, tmp_path):
    phi = tmp_path / "inputs" / "phi.csv"
    phi.write_text(PHI_CSV, encoding="utf-8")
    cfg = config("out", phi="redact")
    summary = code_with_tasks([phi], cfg)
    assert (summary["sessions_coded"], summary["sessions_failed"]) == (1, 0)
    for path in Path(cfg.out).rglob("*"):
        if path.is_file() and ".cache" not in path.parts:
            data = path.read_bytes()
            assert b"555-123-4567" not in data and b"jane.doe" not in data, path


@pytest.mark.parametrize("mode", ["redact", "warn"])
def test_run_phi_report_keeps_findings_of_skipped_and_resumed_sessions(inputs, config, code_with_tasks, tmp_path,
                                                                       snapshot, same_tree, mode):
    """Issue #16 item 5: findings are saved with each session's state, so a re-run that skips
    unchanged sessions, or resumes after a kill, writes the same phi_report.json and run.json."""
    phi = tmp_path / "inputs" / "phi.csv"
    phi.write_text(PHI_CSV.replace("p-1", "p-2") + PHI_CSV.split("\n", 1)[1], encoding="utf-8")
    files = [*inputs, phi]
    cfg = config("out", phi=mode, chunk_size=1)
    code_with_tasks(files, cfg)
    out = Path(cfg.out)
    report = json.loads((out / "phi_report.json").read_text())
    assert len({f["session_id"] for f in report["findings"]}) == 2 and len(report["findings"]) == 4
    before = snapshot(cfg.out)
    again = code_with_tasks(files, cfg)  # everything skipped as unchanged
    assert again["coded_this_run"] == 0
    same_tree(snapshot(cfg.out), before)
    # as after a SIGKILL between two sessions: one session's state lost, the run marker gone
    states = sorted((out / ".state").glob("*.json"))
    p2 = next(p for p in states if "p-2" in p.read_text().splitlines()[0])
    p2.unlink()
    (out / "turns.jsonl").unlink()
    resumed = code_with_tasks(files, cfg)
    assert resumed["coded_this_run"] == 1
    same_tree(snapshot(cfg.out, CACHE), {k: v for k, v in before.items() if not k.startswith(".cache/")})


def test_run_phi_report_goes_when_the_findings_are_fixed(config, code_with_tasks, tmp_path):
    phi = tmp_path / "phi.csv"
    phi.write_text(PHI_CSV, encoding="utf-8")
    cfg = config("out", phi="warn")
    code_with_tasks([phi], cfg)
    assert (Path(cfg.out) / "phi_report.json").is_file()
    phi.write_text(PHI_CSV.replace("555-123-4567 or jane.doe@example.com", "the usual number"), encoding="utf-8")
    code_with_tasks([phi], cfg)
    assert not (Path(cfg.out) / "phi_report.json").exists()


def _fail_for(session_id: str, real):
    def patched(arg, *rest):
        sessions = arg if isinstance(arg, list) else [arg]
        if any(getattr(s, "session_id", None) == session_id or
               getattr(getattr(s, "session", None), "session_id", None) == session_id for s in sessions):
            raise RuntimeError("boom: secret transcript words")
        return real(arg, *rest)

    return patched


@pytest.mark.parametrize("function, step", [("segment_session", "segment"), ("code_sessions", "classify"),
                                            ("session_timeline", "timelines")])
def test_run_one_failing_session_does_not_stop_the_others(inputs, config, code_with_tasks, monkeypatch,
                                                         snapshot, same_tree, function, step):
    cfg = config("out")
    monkeypatch.setattr(lib, function, _fail_for("a-2", getattr(lib, function)))
    summary = code_with_tasks(inputs, cfg)
    assert (summary["sessions_coded"], summary["sessions_failed"], summary["coded_this_run"]) == (2, 1, 2)
    assert session_ids(cfg.out) == ["a-1", "b"]
    [message] = summary["failures"]
    assert "session a-2" in message and f"RuntimeError during {step}" in message
    assert "secret" not in message  # never transcript text from an exception message
    assert json.loads((Path(cfg.out) / "run.json").read_text())["failures"] == [message]
    monkeypatch.undo()
    retry = code_with_tasks(inputs, cfg)  # the failed session is coded on the next run
    assert (retry["coded_this_run"], retry["sessions_failed"]) == (1, 0)
    fresh = config("fresh")
    code_with_tasks(inputs, fresh)
    same_tree(snapshot(cfg.out, CACHE), snapshot(fresh.out, CACHE))


def test_run_failing_session_loses_its_old_outputs(inputs, config, code_with_tasks, monkeypatch):
    cfg = config("out")
    code_with_tasks(inputs, cfg)
    with open(inputs[0], "a", encoding="utf-8") as fh:
        fh.write("a-2,5,C,22,30,I guess I felt dismissed.\n")
    monkeypatch.setattr(lib, "code_sessions", _fail_for("a-2", lib.code_sessions))
    summary = code_with_tasks(inputs, cfg)
    assert (summary["coded_this_run"], summary["sessions_failed"]) == (1, 1)
    out = Path(cfg.out)
    assert session_ids(out) == ["a-1", "b"]
    assert not [p for p in out.rglob("a-2*")]  # no stale timeline, page or state of the old a-2


def test_run_plan_reports_missing_inputs_as_failed_files(inputs, config, code_with_tasks, tmp_path):
    cfg = config("out")
    summary = code_with_tasks([*inputs, tmp_path / "missing.csv"], cfg)
    assert (summary["sessions_coded"], summary["files_failed"]) == (3, 1)
    info = json.loads((Path(cfg.out) / "run.json").read_text())
    assert any("missing.csv" in f and "no such file" in f for f in info["failures"])


def test_run_state_key_names_are_safe_and_distinct():
    assert safe_filename("mi-02") == "mi-02"
    names = {safe_filename(k) for k in ("a/b", "a_b", "a:b", "../x", "", "x" * 200)}
    assert len(names) == 6 and all("/" not in n and not n.startswith(".") for n in names)


def test_run_same_session_id_in_two_files_gets_distinct_ids_everywhere(tmp_path, config, code_with_tasks):
    folder = tmp_path / "dup"
    folder.mkdir()
    for name in ("a.csv", "b.csv"):
        (folder / name).write_text("session_id,speaker,text\n27,T,How was the week?\n27,C,Fine. Whatever.\n",
                                   encoding="utf-8")
    cfg = config("dup-out")
    summary = code_with_tasks([str(folder / "a.csv"), str(folder / "b.csv")], cfg)
    assert summary["sessions_coded"] == 2
    out = Path(cfg.out)
    rows = [json.loads(line) for line in (out / "turns.jsonl").read_text().splitlines()]
    assert sorted({r["session_id"] for r in rows}) == ["a:27", "b:27"]
    sessions = [json.loads(line)["session_id"] for line in (out / "sessions.jsonl").read_text().splitlines()]
    assert sorted(sessions) == ["a:27", "b:27"]
    assert any(p.code == "session.id_renamed" for p in summary["plan_problems"])


def test_run_plan_holds_where_sessions_are_not_their_text(inputs, config):
    """Memory stays flat with corpus size: the plan keeps file, index and counts, and chunks read
    their sessions when they start (exactly the sessions a direct read gives)."""
    import pickle

    from pipeline.io.readers import read_file

    plan = lib.plan_run([str(p) for p in inputs], config("out"))
    assert b"Whatever you think" not in pickle.dumps(plan)  # no transcript text in the plan
    assert [(t.key, Path(t.path).name, t.index, t.turns) for t in plan.tasks] == [
        ("a-1", "a.csv", 0, 5), ("a-2", "a.csv", 1, 4), ("b", "b.txt", 0, 4)]
    [chunk] = lib.chunks(plan.tasks, 16)
    assert chunk.sessions == ()
    read = lib.read_chunk(chunk, config("out"))
    assert list(read.sessions) == [*read_file(inputs[0]).sessions, *read_file(inputs[1]).sessions]
    assert read.failures == ()


def test_run_reads_a_many_session_file_once_for_consecutive_chunks(inputs, config, monkeypatch):
    calls = []
    real = lib.read_file
    monkeypatch.setattr(lib, "read_file", lambda path, *a: calls.append(Path(path).name) or real(path, *a))
    lib._LAST_READ.clear()
    cfg = config("out")
    plan = lib.plan_run([str(p) for p in inputs], cfg)
    calls.clear()
    for chunk in lib.chunks(plan.tasks, 1):
        assert len(lib.read_chunk(chunk, cfg).sessions) == 1
    assert calls == ["a.csv", "b.txt"]


def test_run_file_changed_after_planning_fails_only_its_sessions(inputs, config, code_with_tasks, monkeypatch):
    """A file edited while a long run is going: its sessions fail with a clear message (never
    coded from content other than the planned one), the others are coded, the next run codes it."""
    cfg = config("out")
    real_plan = lib.plan_run

    def plan_then_edit(*args):
        plan = real_plan(*args)
        with open(inputs[1], "a", encoding="utf-8") as fh:
            fh.write("T: One more thing.\n")
        return plan

    lib._LAST_READ.clear()
    monkeypatch.setattr(lib, "plan_run", plan_then_edit)
    summary = code_with_tasks(inputs, cfg)
    assert (summary["sessions_coded"], summary["sessions_failed"]) == (2, 1)
    [message] = summary["failures"]
    assert "b.txt" in message and "changed while the run was going" in message and "run the same command again" in message
    monkeypatch.undo()
    again = code_with_tasks(inputs, cfg)
    assert (again["coded_this_run"], again["sessions_failed"], again["sessions_coded"]) == (1, 0, 3)


def test_run_check_deid_refuses_a_chunk_whose_sessions_were_not_read(inputs, config):
    from pipeline.run.gate import check_deid

    plan = lib.plan_run([str(p) for p in inputs], config("out"))
    with pytest.raises(ValueError, match="call read_chunk first"):
        check_deid(lib.chunks(plan.tasks, 16)[0], "warn")


def test_run_session_keys_never_merge_two_sessions(tmp_path):
    """Issue 16, item 2: a/s.csv and b/s.csv with the same session id were coded as one."""
    from pipeline.run.steps import session_keys

    a, b, c = tmp_path / "site_a" / "s.csv", tmp_path / "site_b" / "s.csv", tmp_path / "site_b" / "t.csv"
    keys = session_keys([(a, "x"), (b, "x"), (c, "x"), (c, "y")])
    assert keys == ["site_a/s:x", "site_b/s:x", "t:x", "y"]
    assert len(set(session_keys([(a, "x"), (a, "x")]))) == 2


def test_run_same_session_id_in_two_folders_keeps_both(tmp_path, config, code_with_tasks):
    for site, n in (("site_a", 3), ("site_b", 5)):
        rows = "".join(f"x,{'therapist' if i % 2 == 0 else 'client'},turn {i} of {site}\n" for i in range(n))
        (tmp_path / "in" / site).mkdir(parents=True)
        (tmp_path / "in" / site / "session.csv").write_text("session_id,speaker,text\n" + rows)
    cfg = config("out")
    summary = code_with_tasks([str(tmp_path / "in")], cfg)
    assert summary["sessions_coded"] == 2
    lines = [json.loads(line) for line in (Path(cfg.out) / "turns.jsonl").read_text().splitlines()]
    assert sorted({r["session_id"] for r in lines}) == ["site_a/session:x", "site_b/session:x"]
    assert len(lines) == 8


def test_run_rerun_after_one_file_changed_parses_only_that_file(inputs, config, code_with_tasks, monkeypatch,
                                                                 snapshot, same_tree):
    """Issue #15: planning remembers each input file's sessions by its SHA-256 (.state/plan-cache),
    so a re-run parses only the files that changed; the outputs equal a fresh run's."""
    cfg = config("out")
    code_with_tasks(inputs, cfg)
    parsed = []
    real = lib.read_file
    monkeypatch.setattr(lib, "read_file", lambda path, *a, **k: parsed.append(Path(path).name) or real(path, *a, **k))
    lib._LAST_READ.clear()
    code_with_tasks(inputs, cfg)  # nothing changed: nothing parsed
    assert parsed == []
    with open(inputs[1], "a", encoding="utf-8") as fh:
        fh.write("T: Can you say more about what I missed?\n")
    summary = code_with_tasks(inputs, cfg)
    assert summary["coded_this_run"] == 1 and set(parsed) == {"b.txt"}
    fresh = config("fresh")
    code_with_tasks(inputs, fresh)
    same_tree(snapshot(cfg.out, CACHE), snapshot(fresh.out, CACHE))


# --- per-session writes in a second process (pipeline/run/writer.py) -------------------------------


def spy_processes(monkeypatch) -> list[subprocess.Popen]:
    started: list[subprocess.Popen] = []
    real = writer_module.ChunkWriter._start

    def start(self):
        real(self)
        started.append(self._proc)

    monkeypatch.setattr(writer_module.ChunkWriter, "_start", start)
    return started


def test_writer_process_writes_the_bytes_of_the_flows_tasks(inputs, config, code_with_tasks, snapshot, same_tree,
                                                             monkeypatch):
    started = spy_processes(monkeypatch)
    monkeypatch.setattr(writer_module.ChunkWriter, "_fallback", lambda self: (_ for _ in ()).throw(
        AssertionError("the writer process was not used")))
    background = config("background", chunk_size=1)  # three chunks: two overlap the next chunk's coding
    summary = code_corpus([str(p) for p in inputs], background)
    assert summary["coded_this_run"] == 3 and summary["sessions_failed"] == 0
    assert len(started) == 1 and started[0].returncode == 0  # one writer, stopped at the end
    assert started[0].args[-1] == "--png"  # told to warm matplotlib up while the first chunk is coded
    flow = config("flow")
    code_with_tasks(inputs, flow)
    same_tree(snapshot(background.out, CACHE), snapshot(flow.out, CACHE))


def test_writer_process_takes_a_second_chunk_before_the_first_is_written(inputs, config, monkeypatch):
    """Two chunks may be in flight: the run hands over the next chunk without waiting for the
    writer; whatever the writer's pace, the chunks come back in the order they were coded."""
    assert writer_module.IN_FLIGHT == 2
    real_submit, real_finish = writer_module.ChunkWriter.submit, writer_module.ChunkWriter.finish
    returned, handed = [], []

    def submit(self, chunk, last=False):
        done = real_submit(self, chunk, last)
        handed.append(self._in_writer())
        returned.extend(c.tasks[0].key for c in done)
        return done

    def finish(self):
        done = real_finish(self)
        returned.extend(c.tasks[0].key for c in done)
        return done

    monkeypatch.setattr(writer_module.ChunkWriter, "submit", submit)
    monkeypatch.setattr(writer_module.ChunkWriter, "finish", finish)
    summary = code_corpus([str(p) for p in inputs], config("out", chunk_size=1))
    assert summary["coded_this_run"] == 3 and summary["sessions_failed"] == 0
    assert handed[0] == 1 and returned == ["a-1", "a-2", "b"]  # the first chunk went to the writer; in order


def test_writer_shares_the_writing_while_the_writer_process_is_behind(monkeypatch, tmp_path):
    """Issue 15: on a cached run the writer process was the critical path (about 37 ms a
    session) while this process waited for it. With ``IN_FLIGHT`` chunks in the writer, this
    process writes the next chunks itself (up to ``SHARED`` held back behind the writer's), then
    waits for the oldest; chunks are returned in the order they were submitted."""
    from types import SimpleNamespace

    sent, here = [], []
    monkeypatch.setattr(writer_module, "_send", lambda stream, value: sent.append(value[1][0]))
    monkeypatch.setattr(writer_module, "write_chunk", lambda out, chunk, png: here.append(chunk.tasks[0]) or chunk)
    monkeypatch.setattr(writer_module, "with_write_failures", lambda chunk, failed: chunk)
    assert (writer_module.IN_FLIGHT, writer_module.SHARED) == (2, 2)
    w = writer_module.ChunkWriter(tmp_path, png=False, background=False)
    w._proc = SimpleNamespace(stdin=None)  # a writer process that never answers unless told below
    keys = lambda chunks: [c.tasks[0] for c in chunks]  # noqa: E731
    assert keys(w.submit(lib.Chunk(("a",)))) == [] and keys(w.submit(lib.Chunk(("b",)))) == []
    assert sent == ["a", "b"] and here == []
    # the writer holds two: c and d are written here, held back behind a and b
    assert keys(w.submit(lib.Chunk(("c",)))) == [] and keys(w.submit(lib.Chunk(("d",)))) == []
    assert here == ["c", "d"]
    # four chunks not returned: e waits for the oldest, then goes to the writer
    w._replies.put(("ok", ()))
    assert keys(w.submit(lib.Chunk(("e",)))) == ["a"] and sent == ["a", "b", "e"]
    w._replies.put(("ok", ()))
    w._replies.put(("ok", ()))
    w._proc = None  # nothing to stop
    assert keys(w.finish()) == ["b", "c", "d", "e"] and here == ["c", "d"]


def test_writer_writes_the_last_chunk_here_while_the_writer_process_holds_one(monkeypatch, tmp_path):
    """At the last chunk nothing else is left to do here: waiting for a writer that still holds
    a chunk would leave a core idle (a cached HLQC dev run, alternated: 6.8-7.4 s against
    7.5-8.0 s)."""
    from types import SimpleNamespace

    sent, here = [], []
    monkeypatch.setattr(writer_module, "_send", lambda stream, value: sent.append(value[1][0]))
    monkeypatch.setattr(writer_module, "write_chunk", lambda out, chunk, png: here.append(chunk.tasks[0]) or chunk)
    monkeypatch.setattr(writer_module, "with_write_failures", lambda chunk, failed: chunk)
    w = writer_module.ChunkWriter(tmp_path, png=False, background=False)
    w._proc = SimpleNamespace(stdin=None)
    w.submit(lib.Chunk(("a",)))
    w.submit(lib.Chunk(("b",)), last=True)
    assert sent == ["a"] and here == ["b"]
    w._replies.put(("ok", ()))
    w.submit(lib.Chunk(("c",)), last=True)  # the writer holds none now: it takes the chunk
    assert sent == ["a", "c"] and here == ["b"]


def test_writer_shared_writing_gives_the_same_bytes(inputs, config, code_with_tasks, snapshot, same_tree, monkeypatch):
    """The first chunk in the writer process, the next two written here while it is "behind"
    (its replies are looked at only when the run waits): the same files as the flow's."""
    started = spy_processes(monkeypatch)
    monkeypatch.setattr(writer_module, "IN_FLIGHT", 1)
    real_take, real_write = writer_module.ChunkWriter._take_reply, writer_module.write_chunk
    monkeypatch.setattr(writer_module.ChunkWriter, "_take_reply", lambda self, block: block and real_take(self, block))
    here = []
    monkeypatch.setattr(writer_module, "write_chunk",
                        lambda out, chunk, png: here.append(chunk.tasks[0].key) or real_write(out, chunk, png))
    cfg = config("shared", chunk_size=1)
    summary = code_corpus([str(p) for p in inputs], cfg)
    assert summary["coded_this_run"] == 3 and summary["sessions_failed"] == 0
    assert len(started) == 1 and started[0].returncode == 0 and here == ["a-2", "b"]
    flow = config("flow")
    code_with_tasks(inputs, flow)
    same_tree(snapshot(cfg.out, CACHE), snapshot(flow.out, CACHE))


def test_run_keeps_loaded_objects_out_of_full_collections_and_hands_them_back(inputs, config, code_with_tasks, snapshot,
                                                                           same_tree, monkeypatch):
    """Issue 15: the collector's full passes walked every object of the loaded libraries and
    model (0.2-0.25 s each, one to three times in a cached HLQC dev run). During a run the objects
    that existed at its start, and those there after its first chunk was classified (the model),
    are frozen; after it nothing is, also when the run fails; the outputs do not change."""
    import gc

    seen = []
    real_classify = lib.classify_chunk

    def classify(chunk, cfg):
        seen.append(gc.get_freeze_count())
        return real_classify(chunk, cfg)

    monkeypatch.setattr(lib, "classify_chunk", classify)
    assert gc.get_freeze_count() == 0
    frozen_run = config("frozen", chunk_size=1)
    summary = code_corpus([str(p) for p in inputs], frozen_run)
    assert summary["coded_this_run"] == 3 and gc.get_freeze_count() == 0
    assert len(seen) == 3 and all(n > 0 for n in seen) and seen[1] >= seen[0]
    monkeypatch.setattr(lib, "classify_chunk", lambda chunk, cfg: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        code_corpus([str(p) for p in inputs], config("failed", chunk_size=1))
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(lib, "classify_chunk", real_classify)
    flow = config("flow")
    code_with_tasks(inputs, flow)
    same_tree(snapshot(frozen_run.out, CACHE), snapshot(flow.out, CACHE))


def test_run_leaves_a_callers_own_frozen_objects_alone(monkeypatch):
    import gc

    from pipeline.run.processes import collector_skips_old_objects

    calls = []
    real_freeze, real_unfreeze = gc.freeze, gc.unfreeze
    monkeypatch.setattr(gc, "freeze", lambda: (calls.append("freeze"), real_freeze())[1])
    monkeypatch.setattr(gc, "unfreeze", lambda: (calls.append("unfreeze"), real_unfreeze())[1])
    real_freeze()
    try:
        before = gc.get_freeze_count()
        with collector_skips_old_objects() as freeze_loaded:
            kept = [object() for _ in range(3)] + [[]]  # tracked objects made in the run
            freeze_loaded()
            assert calls == [] and 0 < gc.get_freeze_count() <= before  # nothing frozen on the caller's behalf
        # nor unfrozen (the count may only fall: another thread may free one of the frozen objects)
        assert calls == [] and 0 < gc.get_freeze_count() <= before and kept
    finally:
        real_unfreeze()


def test_writer_one_chunk_or_background_off_starts_no_process(inputs, config, monkeypatch):
    started = spy_processes(monkeypatch)
    code_corpus([str(p) for p in inputs], config("one"))  # the default chunk holds all three sessions
    code_corpus([str(p) for p in inputs], config("off", chunk_size=1), background_writes=False)
    assert started == []


def test_writer_process_without_png_does_not_warm_matplotlib_up(inputs, config, monkeypatch):
    started = spy_processes(monkeypatch)
    summary = code_corpus([str(p) for p in inputs], config("nopng", chunk_size=1, png=False))
    assert summary["coded_this_run"] == 3 and len(started) == 1 and "--png" not in started[0].args
    assert not list((Path(config("nopng").out) / "timelines").glob("*.png"))


def test_writer_process_imports_neither_scikit_learn_nor_torch():
    """The writer process is on a cached run's critical path from its start: importing the
    coding modules (scikit-learn, about 1 s) there cost the run as much."""
    import subprocess
    import sys

    code = ("import sys, pipeline.run.writer, pipeline.report.html, pipeline.report.plots\n"
            "print(sorted(m for m in ('sklearn', 'torch', 'spacy', 'sentence_transformers', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_writer_process_reports_a_session_that_cannot_be_written_and_writes_the_others(inputs, config):
    cfg = config("out", chunk_size=1)
    blocked = Path(cfg.out) / "timelines" / "a-2.json"
    blocked.mkdir(parents=True)  # a folder where the session's timeline goes: its write fails
    summary = code_corpus([str(p) for p in inputs], cfg)
    assert (summary["sessions_coded"], summary["sessions_failed"]) == (2, 1)
    [message] = summary["failures"]
    assert "session a-2" in message and "during write" in message
    assert session_ids(cfg.out) == ["a-1", "b"]


@pytest.mark.parametrize("kill_at", [1, 2])
def test_writer_process_killed_mid_run_the_run_writes_in_process(inputs, config, code_with_tasks, snapshot,
                                                                same_tree, monkeypatch, caplog, kill_at):
    real = writer_module.ChunkWriter.submit
    submitted = []

    def submit_then_kill(self, chunk, last=False):
        done = real(self, chunk, last)
        submitted.append(chunk)
        if self._proc is not None and len(submitted) == kill_at:
            self._proc.kill()  # as the OOM killer would, with one or two chunks in flight
            self._proc.wait()
        return done

    monkeypatch.setattr(writer_module.ChunkWriter, "submit", submit_then_kill)
    cfg = config("out", chunk_size=1)
    summary = code_corpus([str(p) for p in inputs], cfg)
    assert summary["coded_this_run"] == 3 and summary["sessions_failed"] == 0
    assert "writing the rest of this run in process" in caplog.text
    flow = config("flow")
    code_with_tasks(inputs, flow)
    same_tree(snapshot(cfg.out, CACHE), snapshot(flow.out, CACHE))


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="bound to its parent on Linux only")
def test_writer_process_does_not_outlive_a_killed_run():
    """A busy child would finish its chunk before it saw the end of its input: the kernel's
    parent-death signal (``die_with_parent``, which the writer is started with) ends it at once.
    Shown with a child that never reads its input."""
    import os
    import signal
    import sys
    import time

    script = ("import subprocess, time\nfrom pipeline.run.processes import die_with_parent\n"
              "child = subprocess.Popen(['sleep', '600'], preexec_fn=die_with_parent())\n"
              "print(child.pid, flush=True)\ntime.sleep(600)\n")
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(run.stdout.readline())
    os.kill(run.pid, signal.SIGKILL)  # as the OOM killer or `kill -9` would
    run.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:  # a zombie (ended, not yet reaped by init) counts as ended
            if open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except OSError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the writer process outlived the killed run")


def test_writer_process_that_cannot_start_means_writing_in_process(inputs, config, code_with_tasks, snapshot,
                                                                  same_tree, monkeypatch, caplog):
    monkeypatch.setattr(writer_module.sys, "executable", "/nonexistent/python")
    cfg = config("out", chunk_size=1)
    summary = code_corpus([str(p) for p in inputs], cfg)
    assert summary["coded_this_run"] == 3 and "no writer process (FileNotFoundError)" in caplog.text
    flow = config("flow")
    code_with_tasks(inputs, flow)
    same_tree(snapshot(cfg.out, CACHE), snapshot(flow.out, CACHE))


def test_run_check_deid_keeps_every_verdict_in_the_cache_folder(tmp_path, config, monkeypatch):
    """A cached re-run scans no text again, those with findings included (issue 15: they were
    the gate's whole cost in a cached HLQC dev run); the clean-only file of earlier versions is
    removed; the findings are the same."""
    from pipeline.preprocess import deid
    from pipeline.run.gate import check_deid

    src = tmp_path / "in.csv"
    src.write_text("speaker,text\nT,What brings you here?\nC,Call me on 07700 900123 tonight.\nT,Okay.\n",
                   encoding="utf-8")
    cfg = config("out")
    cache = Path(cfg.cache_dir)
    cache.mkdir(parents=True)
    for name in ("deid_clean.sqlite", "deid_clean.sqlite-wal"):
        (cache / name).write_bytes(b"stale")
    plan = lib.plan_run([str(src)], cfg)
    scanned = []
    real = deid.find_candidates
    monkeypatch.setattr(deid, "find_candidates", lambda text, *a, **k: scanned.append(1) or real(text, *a, **k))
    runs = []
    for _ in range(2):
        deid._SCAN_MEMO.clear()  # as a fresh process
        chunk = lib.read_chunk(lib.chunks(plan.tasks, 16)[0], cfg)
        runs.append((check_deid(chunk, "warn", cfg.cache_dir).findings, len(scanned)))
    (first, n_first), (second, n_second) = runs
    assert n_first == 3 and n_second == 3  # three texts scanned by the first run, none by the second
    assert first == second and [f["kind"] for f in first] == ["phone"]
    assert sorted(p.name for p in cache.iterdir()) == ["deid_verdicts.sqlite"]
    assert b"07700" not in (cache / "deid_verdicts.sqlite").read_bytes()
