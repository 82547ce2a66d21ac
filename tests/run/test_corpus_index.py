"""Issue #15: a re-run copies the corpus rows of the sessions it finds unchanged
(``pipeline/run/corpus_index.py``) instead of rebuilding them from their states, with the bytes
of a run from scratch; an index that does not describe the files any more is not used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.io.turn_table import TurnTableWriter
from pipeline.run import corpus_index
from pipeline.run import finish as finish_module
from pipeline.run import steps as lib

CACHE = (".cache/",)  # the embedding cache depends on the folder's history (see test_run_resume.py)
TEXTS = ("I don't know. Whatever you think.", "This is pointless, we keep going over the same thing.",
         "Fine.", "You didn't seem to get it.", "I mean, it was okay.", "Yeah, maybe. I guess so.")


def transcript(n: int, turns: int = 6) -> str:
    lines = []
    for t in range(turns):
        if t % 2 == 0:
            lines.append(f"T: Session {n}, question {t}: what would you like to look at next?")
        else:
            lines.append(f"C: {TEXTS[(n + t) % len(TEXTS)]}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def inputs(tmp_path) -> list[Path]:
    folder = tmp_path / "inputs"
    folder.mkdir()
    paths = []
    for n in range(6):
        path = folder / f"s{n}.txt"
        path.write_text(transcript(n, turns=4 + n), encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture
def states_read(monkeypatch) -> list[str]:
    """The session keys whose stored state the corpus rebuild reads."""
    read = []
    real = finish_module.read_state
    monkeypatch.setattr(finish_module, "read_state", lambda out, key: read.append(key) or real(out, key))
    return read


def change(path: Path) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("C: Can you say more about what I missed?\n")


def test_rerun_after_one_file_changed_copies_the_other_sessions_rows(inputs, config, code_with_tasks, snapshot,
                                                                     same_tree, states_read):
    cfg = config("out")
    code_with_tasks(inputs, cfg)
    assert len(states_read) == 6  # the first run builds every session from its state
    assert corpus_index.index_path(cfg.out).is_file()
    states_read.clear()
    change(inputs[2])
    summary = code_with_tasks(inputs, cfg)
    assert summary["coded_this_run"] == 1
    assert states_read == ["s2"]  # the five others come from the previous files
    fresh = config("fresh")
    code_with_tasks(inputs, fresh)
    same_tree(snapshot(cfg.out, CACHE), snapshot(fresh.out, CACHE))  # index included


def test_rerun_with_inputs_added_dropped_and_reordered_equals_a_fresh_run(inputs, config, code_with_tasks, snapshot,
                                                                         same_tree, states_read, tmp_path):
    cfg = config("out")
    code_with_tasks(inputs, cfg)
    extra = tmp_path / "inputs" / "a_new.txt"  # sorts first: every row moves
    extra.write_text(transcript(9), encoding="utf-8")
    states_read.clear()
    now = [extra, *reversed(inputs[1:])]  # s0 dropped
    code_with_tasks(now, cfg)
    assert states_read == ["a_new"]
    fresh = config("fresh")
    code_with_tasks(now, fresh)
    same_tree(snapshot(cfg.out, CACHE), snapshot(fresh.out, CACHE))


@pytest.mark.parametrize("name", ["turns.jsonl", "turns.csv", "sessions.jsonl",
                                  "turns_dataset/data-00000-of-00001.arrow"])
def test_a_corpus_file_changed_since_means_a_rebuild_from_the_states(inputs, config, code_with_tasks, snapshot,
                                                                    same_tree, states_read, name):
    cfg = config("out")
    code_with_tasks(inputs, cfg)
    path = Path(cfg.out) / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1  # one bit, same size
    path.write_bytes(bytes(data))
    states_read.clear()
    change(inputs[0])
    code_with_tasks(inputs, cfg)
    assert sorted(states_read) == [f"s{n}" for n in range(6)]  # none copied from the altered file
    fresh = config("fresh")
    code_with_tasks(inputs, fresh)
    same_tree(snapshot(cfg.out, CACHE), snapshot(fresh.out, CACHE))


@pytest.mark.parametrize("damage", ["version", "garbage", "missing", "bad_range"])
def test_an_index_of_another_version_or_unreadable_is_not_used(inputs, config, code_with_tasks, snapshot, same_tree,
                                                              states_read, damage):
    cfg = config("out")
    code_with_tasks(inputs, cfg)
    path = corpus_index.index_path(cfg.out)
    record = json.loads(path.read_text(encoding="utf-8"))
    if damage == "version":
        record["version"] = "0.0.1"
        path.write_text(json.dumps(record), encoding="utf-8")
    elif damage == "garbage":
        path.write_bytes(b"\x00not json")
    elif damage == "missing":
        path.unlink()
    else:
        record["sessions"]["s1"][1] = [5, 2]
        path.write_text(json.dumps(record), encoding="utf-8")
    states_read.clear()
    change(inputs[0])
    code_with_tasks(inputs, cfg)
    assert sorted(states_read) == [f"s{n}" for n in range(6)]
    fresh = config("fresh")
    code_with_tasks(inputs, fresh)
    same_tree(snapshot(cfg.out, CACHE), snapshot(fresh.out, CACHE))


def test_a_session_recoded_with_another_fingerprint_is_built_from_its_state(inputs, config, code_with_tasks,
                                                                           states_read):
    cfg = config("out")
    code_with_tasks(inputs, cfg)
    record = json.loads(corpus_index.index_path(cfg.out).read_text(encoding="utf-8"))
    assert set(record["sessions"]) == {f"s{n}" for n in range(6)}
    assert all(entry[0] == lib.state_fingerprint(Path(cfg.out), key) for key, entry in record["sessions"].items())
    states_read.clear()
    change(inputs[3])
    code_with_tasks(inputs, cfg)
    after = json.loads(corpus_index.index_path(cfg.out).read_text(encoding="utf-8"))
    assert after["sessions"]["s3"][0] != record["sessions"]["s3"][0] and states_read == ["s3"]


def test_an_interrupted_rebuild_leaves_no_index(inputs, config, code_with_tasks,
                                                                      monkeypatch, states_read):
    cfg = config("out")
    code_with_tasks(inputs, cfg)

    def full_disk(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TurnTableWriter, "close", full_disk)
    change(inputs[0])
    with pytest.raises(OSError):
        code_with_tasks(inputs, cfg)
    assert not corpus_index.index_path(cfg.out).exists()
    monkeypatch.undo()
    states_read.clear()
    monkeypatch.setattr(finish_module, "read_state",
                        lambda out, key, real=finish_module.read_state: states_read.append(key) or real(out, key))
    code_with_tasks(inputs, cfg)
    assert sorted(states_read) == [f"s{n}" for n in range(6)]  # no index: every session from its state


def test_the_index_holds_no_transcript_text(inputs, config, code_with_tasks):
    cfg = config("out")
    code_with_tasks(inputs, cfg)
    text = corpus_index.index_path(cfg.out).read_text(encoding="utf-8")
    for words in (*TEXTS, "what would you like to look at next"):
        assert words not in text
    assert "Session 0" not in text


def test_writer_batches_copied_rows_exactly_as_records(tmp_path, snapshot, same_tree):
    """Rows given as slices of an earlier dataset, some batches inside one slice and some across
    slices and records, give the bytes of the same rows given one record at a time."""
    import pyarrow as pa

    from pipeline.records import TURN_RECORD_FIELDS

    def record(i: int) -> dict:
        kinds = {"string": f"s{i}", "string?": None if i % 3 else f"o{i}", "int": i, "number?": None if i % 4 else i / 7,
                 "list<string>": [f"t{i}"] * (i % 3), "list<int>": list(range(i % 4)),
                 "list<code>": [{"code": "c", "score": i / 9}] * (i % 2),
                 "scores?": None if i % 5 == 0 else {"none": 0.5, "withdrawal": i / 100, "confrontation": 0.1}}
        return {f.name: kinds[f.metadata["kind"]] for f in TURN_RECORD_FIELDS}

    records = [record(i) for i in range(60)]

    def write(folder: Path, parts) -> None:
        w = TurnTableWriter(folder / "turns.parquet", folder / "turns_dataset", batch_rows=7)
        for part in parts:
            if isinstance(part, dict):
                w.add(part)
            else:
                w.add_rows(part)
        w.close()

    write(tmp_path / "ref", records)
    files = corpus_index._dataset_files(tmp_path / "ref")
    old = pa.concat_tables([pa.ipc.open_stream(pa.memory_map(str(p))).read_all() for p in files])
    parts = [old.slice(0, 20), *records[20:23], old.slice(23, 2), *records[25:26], old.slice(26, 30), *records[56:]]
    write(tmp_path / "mixed", parts)
    same_tree(snapshot(tmp_path / "mixed"), snapshot(tmp_path / "ref"))


def test_the_previous_files_are_hashed_only_when_a_session_can_be_copied(inputs, config, code_with_tasks,
                                                                        monkeypatch):
    from dataclasses import replace

    cfg = config("out")
    code_with_tasks(inputs, cfg)
    hashed = []
    real = corpus_index.file_sha256
    monkeypatch.setattr(corpus_index, "file_sha256", lambda path: hashed.append(Path(path).name) or real(path))
    change(inputs[0])
    code_with_tasks(inputs, cfg)
    assert hashed.count("turns.jsonl") == 1 and hashed.count("turns.csv") == 1  # once, not once a session
    hashed.clear()
    code_with_tasks(inputs, replace(cfg, merge_same_speaker=False))  # every session re-coded: nothing to copy
    assert "turns.jsonl" not in hashed and "turns.csv" not in hashed


def test_previous_rows_read_forward_in_any_order_across_batches_and_files(tmp_path):
    """The dataset is read one record batch at a time; spans across batches and files, and spans
    before the current batch (inputs reordered), give the rows they name."""
    import random

    import pyarrow as pa

    files, values = [], list(range(50))
    for f, (lo, hi) in enumerate(((0, 23), (23, 50))):
        path = tmp_path / f"data-{f}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, pa.schema([("v", pa.int64())])) as writer:
            for start in range(lo, hi, 4):  # batches of 4 rows, the last of each file shorter
                writer.write_batch(pa.record_batch([pa.array(values[start:min(start + 4, hi)])], names=["v"]))
        files.append(path)
    previous = corpus_index.PreviousOutputs(tmp_path, {}, {}, files)
    rng = random.Random(3)
    spans = [(0, 3), (3, 9), (9, 30), (30, 50), (5, 6), (22, 24), (49, 50), (0, 50)]
    spans += [tuple(sorted(rng.sample(range(51), 2))) for _ in range(30)]
    for start, end in spans:
        assert previous.rows((start, end)).column("v").to_pylist() == values[start:end]
    with pytest.raises(OSError):
        previous.rows((48, 51))  # beyond the files: the index does not describe them


def test_the_index_keeps_findings_as_positions_never_the_found_values(tmp_path, config, code_with_tasks):
    folder = tmp_path / "phi"
    folder.mkdir()
    (folder / "p.csv").write_text("session_id,turn,speaker,text\np-1,1,T,Welcome.\n"
                                  "p-1,2,C,You can reach me at 555-123-4567 or jane.doe@example.com any time.\n",
                                  encoding="utf-8")
    cfg = config("out", phi="warn")
    code_with_tasks([folder / "p.csv"], cfg)
    record = json.loads(corpus_index.index_path(cfg.out).read_text(encoding="utf-8"))
    (key,) = record["sessions"]  # the one session, named after its file and id
    findings = record["sessions"][key][5]
    report = json.loads((Path(cfg.out) / "phi_report.json").read_text(encoding="utf-8"))["findings"]
    assert findings and findings == report  # what phi_report.json holds, kept for the next run
    text = corpus_index.index_path(cfg.out).read_text(encoding="utf-8")
    assert "555-123-4567" not in text and "jane.doe" not in text and "reach me" not in text
