"""Shared fixtures: tiny sessions built in code, and files written into tmp_path."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import pytest

from pipeline.records import Annotation, Provenance, Session, Turn


def _session(turns, session_id: str = "s1", annotations: tuple[Annotation, ...] = ()) -> Session:
    """A Session from ``(speaker_id, text)`` or ``(speaker_id, text, start_s, end_s)`` tuples.

    Speaker ids starting with "T" are therapists, the rest clients; input turn ids are "1", "2"...
    """
    built = []
    for index, spec in enumerate(turns):
        speaker, text, start, end = (*spec, None, None)[:4]
        role = "therapist" if speaker.startswith("T") else "client"
        built.append(Turn(
            session_id=session_id, index=index, speaker_role=role, speaker_id=speaker, text=text,
            start_s=start, end_s=end,
            source=Provenance("memory.csv", (index + 2,), (str(index + 1),)),
        ))
    return Session(session_id, tuple(built), "memory.csv", "csv", tuple(annotations))


def _closed_stream(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None) or getattr(getattr(handler, "console", None), "file", None)
    return bool(getattr(stream, "closed", False))


@pytest.fixture(autouse=True)
def _no_handler_left_on_a_closed_stream():
    """A Prefect run inside typer's CliRunner configures logging handlers on the runner's
    streams, which the runner closes when the command ends; a later test's warning would then
    print "--- Logging error ---" (a traceback) into that test's output. Such handlers are
    removed after each test (a real process keeps its streams open)."""
    yield
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in [h for h in logger.handlers if _closed_stream(h)]:
            logger.removeHandler(handler)


@pytest.fixture(autouse=True)
def _encode_in_the_test_process(request, monkeypatch):
    """`rupture-coder code` run inside the test process (typer's CliRunner) encodes in this
    process, which keeps one model loaded across tests, instead of starting an encoder process
    that loads it again each time (pipeline/run/encoder.py). Tests marked ``encoder_process``,
    and every `code` run in a fresh process, get the default: the encoder process."""
    if request.node.get_closest_marker("encoder_process") is None:
        from pipeline.run import encoder

        monkeypatch.setattr(encoder, "start_for_model", lambda model, defer=False: None)


@pytest.fixture
def make_session() -> Callable[..., Session]:
    """Build a tiny Session in code (see ``_session``)."""
    return _session


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """Write text (UTF-8) or bytes to ``tmp_path / name`` and return the path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
        return path

    return write


@pytest.fixture(scope="session", autouse=True)
def _private_worker_folder():
    """No test talks to a background worker the developer runs (`rupture-coder worker start`):
    the worker's folder is a fresh private one for the test session (short: a socket's path
    holds about 100 bytes)."""
    import os
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="rc-rt-")
    previous = os.environ.get("RUPTURE_CODER_RUNTIME_DIR")
    os.environ["RUPTURE_CODER_RUNTIME_DIR"] = folder
    yield folder
    if previous is None:
        os.environ.pop("RUPTURE_CODER_RUNTIME_DIR", None)
    else:
        os.environ["RUPTURE_CODER_RUNTIME_DIR"] = previous
    shutil.rmtree(folder, ignore_errors=True)


# --- coding runs (tests/flows, tests/run) ------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A small, fast model bundle: the hashing embedder trained on 12 constructed sessions
    (3 per constructed file); about 15 s, once per test session."""
    from pipeline.modeling.bundle import save_bundle
    from pipeline.modeling.estimator import RuptureCoder
    from pipeline.modeling.training import data_manifest, load_constructed

    data = load_constructed()
    by_file: dict[str, list] = {}
    for session in data.sessions:
        by_file.setdefault(session.source_path, []).append(session)
    picked = [s for sessions in by_file.values() for s in sessions[:3]]
    model = RuptureCoder(embedder="hashing.v1", cv=3).fit(picked)
    data.sessions = picked
    out = tmp_path_factory.mktemp("bundles") / "tiny" / "0.0.1"
    return save_bundle(model, out, "tiny", "0.0.1", data_manifest(data, "rupture_v1@test", "tests"))


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API server and database for the whole test session (about 15 s)."""
    import os

    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


class _Finished:
    """What ``collect_chunk`` needs of a Prefect future: ``result()`` returns or raises."""

    def __init__(self, value=None, error: BaseException | None = None):
        self.value, self.error = value, error

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


@pytest.fixture(scope="session")
def code_with_tasks() -> Callable:
    """Run the ``code_corpus`` flow body with each task's ``.fn()`` (no Prefect server):
    ``code_with_tasks(inputs, config)`` returns the run summary."""
    from flows import code_corpus as flow_module
    from flows._glue import Sealed, collect_chunk
    from pipeline.run import steps as lib

    f = flow_module

    def run(inputs, config) -> dict:
        plan = f.read_inputs.fn([str(p) for p in inputs], config)
        done = []
        for original in lib.chunks(plan.tasks, config.chunk_size):
            try:
                chunk = f.deid_check.fn(Sealed(original), config)
                for step in (f.segment, f.embed, f.classify):
                    chunk = step.fn(chunk, config)
                chunk = f.write_sessions.fn(f.timelines.fn(chunk), config)
                future = _Finished(chunk)
            except Exception as err:  # noqa: BLE001 - the flow reports it per session
                future = _Finished(error=err)
            done.append(collect_chunk(future, original))
        return {**f.write_corpus.fn(Sealed(plan), config, Sealed(done)), "plan_problems": plan.problems}

    return run


def tree_bytes(folder: Path, exclude: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under ``folder`` (recursively) as {relative posix path: bytes}."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and not p.relative_to(folder).as_posix().startswith(exclude)}


def assert_same_tree(a: dict[str, bytes], b: dict[str, bytes]) -> None:
    """Two ``tree_bytes`` snapshots hold the same files with the same bytes; the gate's scan
    verdicts (a cache, not an output: its bytes depend on the order in which concurrent
    chunks inserted) hold the same verdicts."""
    assert sorted(a) == sorted(b)
    differ = [name for name in a if a[name] != b[name]
              and not (name.endswith("deid_verdicts.sqlite") and _verdicts(a[name]) == _verdicts(b[name]))]
    assert not differ, f"files differ: {differ}"


def _verdicts(data: bytes) -> set[str]:
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.sqlite"
        path.write_bytes(data)
        conn = sqlite3.connect(path)
        try:
            return set(conn.execute("SELECT key, found FROM verdicts"))
        finally:
            conn.close()


@pytest.fixture(scope="session")
def snapshot() -> Callable[..., dict[str, bytes]]:
    """``snapshot(folder, exclude=())``: every file under a folder as {relative path: bytes}."""
    return tree_bytes


@pytest.fixture(scope="session")
def prefect_env() -> Callable[[Path], dict[str, str]]:
    """``prefect_env(home)``: the environment for a fresh ``rupture-coder`` process that runs
    the flow on its own temporary Prefect server, with its Prefect files under ``home`` (not
    the test session's harness, whose settings other tests change)."""
    import os

    def env(home: Path) -> dict[str, str]:
        values = {**os.environ, "PREFECT_HOME": str(home), "DO_NOT_TRACK": "1",
                  "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
                  "PREFECT_LOGGING_LEVEL": "WARNING", "COLUMNS": "200"}
        values.pop("PREFECT_API_URL", None)
        return values

    return env


@pytest.fixture(scope="session")
def same_tree() -> Callable[[dict, dict], None]:
    """``same_tree(a, b)``: two snapshots hold the same files, byte for byte."""
    return assert_same_tree
