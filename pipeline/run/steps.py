"""A coding run as plain library steps (the Prefect flow in ``flows/`` calls these).

plan_run -> for each chunk of sessions: read_chunk + check_deid -> segment_chunk -> embed_chunk ->
classify_chunk -> build_timelines -> write_session_states -> finish_run.

Resumable and incremental: each coded session is stored under ``DIR/.state/`` with a
fingerprint of its input file hash, session id, model and configuration; a re-run skips
sessions whose fingerprint is unchanged. ``finish_run`` rebuilds every corpus-level output
from the stored states in input order, so an interrupted run that is resumed ends with the same
bytes as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import json
import logging
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from pipeline.version import __version__
from pipeline.modeling.bundle import file_sha256, load_bundle
from pipeline.modeling.embed import EmbeddingCache, complete_embedding, get_embedder, plan_embedding
from pipeline.errors import Problem, RuptureCoderError
from pipeline.modeling.features import turn_text
from pipeline.io.files import dumps, safe_filename
from pipeline.io.readers import expand_paths, read_file
from pipeline.records import Session
from pipeline.preprocess.segment import segment_session
from pipeline.run.config import (PHI_MODES, STATE_DIR, RunConfig, _speaker_table,  # noqa: F401  (re-exported)
                                 model_identity)

log = logging.getLogger(__name__)


@dataclass
class SessionTask:
    """A session to code, by where it is: the plan never holds transcripts, so that a run's
    memory does not grow with the corpus (:func:`read_chunk` reads them chunk by chunk)."""

    key: str  # unique session id in this run
    path: str  # the input file
    index: int  # the session's position among the file's sessions
    file_sha256: str
    fingerprint: str
    turns: int = 0  # turns as read at planning (progress, benchmarks)


@dataclass
class RunPlan:
    tasks: list[SessionTask] = field(default_factory=list)  # to code
    order: list[tuple[str, str]] = field(default_factory=list)  # (key, fingerprint) of all sessions
    inputs: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: int = 0
    model: dict = field(default_factory=dict)


def state_path(out: Path, key: str) -> Path:
    return Path(out) / STATE_DIR / f"{safe_filename(key)}.json"


def plan_run(inputs: list[str], config: RunConfig) -> RunPlan:
    """Read every input, make session keys unique, skip sessions already coded unchanged. The
    plan keeps where each session is, not its turns: :func:`read_chunk` reads them again."""
    plan = RunPlan(model=model_identity(config.model))
    files, problems = expand_paths(inputs)
    plan.problems.extend(problems)
    plan.inputs.extend({"path": p.path, "sha256": None, "format": None, "sessions": 0, "failed": True}
                       for p in problems if p.code == "input.missing")
    outputs_hash = config.outputs_hash(plan.model["heads_sha256"])
    cache, fresh_cache = _read_plan_cache(Path(config.out), outputs_hash), {}
    read = []
    for path in files:
        try:
            try:
                sha = file_sha256(path)  # hashing is cheap beside parsing: an unchanged file is not parsed
            except OSError:
                read_file(path, config.read_options)  # the reader's own, clearer error (not a regular file...)
                raise
            hit = cache.get(f"{path}|{sha}")
            if hit is None:
                result = read_file(path, config.read_options)
                hit = {"format": result.format, "sessions": [[s.session_id, len(s.turns)] for s in result.sessions],
                       "problems": [asdict(p) for p in result.problems]}
                del result  # one file's transcripts at a time
        except (RuptureCoderError, OSError) as err:
            if not isinstance(err, RuptureCoderError):
                err = RuptureCoderError("cannot read the file", path=str(path), found=err.strerror or type(err).__name__)
            plan.problems.append(Problem.from_error(err, "input.failed"))
            plan.inputs.append({"path": str(path), "sha256": None, "format": None, "sessions": 0, "failed": True})
            continue
        fresh_cache[f"{path}|{sha}"] = hit
        plan.problems.extend(Problem(**p) for p in hit["problems"])
        plan.inputs.append({"path": str(path), "sha256": sha, "format": hit["format"],
                            "sessions": len(hit["sessions"]), "failed": False})
        read.extend((path, sha, i, sid, turns) for i, (sid, turns) in enumerate(hit["sessions"]))
    _write_plan_cache(Path(config.out), outputs_hash, fresh_cache)
    keys = session_keys([(path, session_id) for path, _, _, session_id, _ in read])
    for (path, sha, index, session_id, turns), key in zip(read, keys):
        if key != session_id:
            plan.problems.append(Problem("warning", "session.id_renamed",
                                         f"session id also used in another file; coded as {key!r}",
                                         str(path), None, session_id))
        fingerprint = hashlib.sha256(f"{sha}|{key}|{outputs_hash}".encode()).hexdigest()[:24]
        plan.order.append((key, fingerprint))
        if state_fingerprint(Path(config.out), key) == fingerprint:
            plan.skipped += 1
            continue
        plan.tasks.append(SessionTask(key, str(path), index, sha, fingerprint, turns))
    return plan


PLAN_CACHE = "plan-cache"  # in OUT/.state/: what planning learnt of each input file (JSON; no .json
# suffix, so that it is never taken for a session state, as uptodate's marker)


def _read_plan_cache(out: Path, outputs_hash: str) -> dict:
    """Sessions (ids, turn counts) and reader problems of the input files planned last time, by
    ``path|sha256``; valid only for the same options, model and version (else empty)."""
    try:
        record = json.loads((out / STATE_DIR / PLAN_CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or record.get("key") != f"{__version__}|{outputs_hash}":
        return {}
    files = record.get("files")
    return files if isinstance(files, dict) else {}


def _write_plan_cache(out: Path, outputs_hash: str, files: dict) -> None:
    """Only this plan's files (a file that changed or went is dropped); written only when it
    changed, so an unchanged re-run changes no byte of the folder."""
    from pipeline.io.files import atomic_write

    path = out / STATE_DIR / PLAN_CACHE
    text = dumps({"key": f"{__version__}|{outputs_hash}", "files": dict(sorted(files.items()))}) + "\n"
    try:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            return
        atomic_write(path, text)
    except OSError as err:  # a cache: the run goes on without it
        log.warning("plan cache not written (%s)", type(err).__name__)


def session_keys(sessions: list[tuple[Path, str]]) -> list[str]:
    """A unique key per (file, session id): the session id when no other file uses it, else
    ``<file stem>:<id>``, else ``<path relative to the inputs' common folder, no suffix>:<id>``
    (``site_a/session:x`` and ``site_b/session:x``), else that with ``#<n>``. Two sessions never
    share a key, so none is silently merged with another."""
    counts = Counter(sid for _, sid in sessions)
    keys = [sid if counts[sid] == 1 else f"{Path(path).stem}:{sid}" for path, sid in sessions]
    clash = {k for k, n in Counter(keys).items() if n > 1}
    if clash:
        paths = [Path(path).resolve() for path, _ in sessions]
        root = Path(os.path.commonpath([str(p.parent) for p in paths]))
        keys = [f"{paths[i].relative_to(root).with_suffix('').as_posix()}:{sid}" if keys[i] in clash else keys[i]
                for i, (_, sid) in enumerate(sessions)]
    seen: Counter = Counter()
    out = []
    for key in keys:
        seen[key] += 1
        out.append(key if seen[key] == 1 else f"{key}#{seen[key]}")
    return out


_READ_LOCK = threading.Lock()
_LAST_READ: dict = {}  # the last file read for a chunk: files with many sessions span chunks


def _file_sessions(path: str, sha256: str, config: RunConfig) -> tuple[Session, ...]:
    key = (path, sha256, config.fmt, config.roles, config.columns)
    with _READ_LOCK:
        if key in _LAST_READ:
            return _LAST_READ[key]
        if file_sha256(Path(path)) != sha256:
            raise RuptureCoderError("the input file changed while the run was going; its sessions were not coded",
                                    path=path, fix="run the same command again: it codes the new content")
        sessions = tuple(read_file(Path(path), config.read_options).sessions)
        _LAST_READ.clear()
        _LAST_READ[key] = sessions
        return sessions


def read_session(task: SessionTask, config: RunConfig) -> Session:
    """The task's session as planned, read again from its file (which must be unchanged)."""
    session = _file_sessions(task.path, task.file_sha256, config)[task.index]
    if task.key != session.session_id:  # renamed for a duplicate id: the turns carry the id too
        session = replace(session, session_id=task.key,
                          turns=tuple(replace(t, session_id=task.key) for t in session.turns))
    return session


def read_chunk(chunk: Chunk, config: RunConfig) -> Chunk:
    """The chunk with its sessions read (the first step of every chunk). A file that changed,
    vanished or became unreadable since planning fails its sessions alone."""
    sessions, failed = [], []
    for task in chunk.tasks:
        try:
            sessions.append(read_session(task, config))
        except (RuptureCoderError, OSError, IndexError) as err:
            failed.append(failure(task, err, "read"))
            sessions.append(None)
    chunk = replace(chunk, sessions=tuple(sessions), failures=chunk.failures + tuple(failed))
    return chunk.without({p.session_id for p in failed})


def state_fingerprint(out: Path, key: str) -> str | None:
    """The fingerprint on the first line of the session's stored state (None without one)."""
    path = state_path(out, key)
    try:
        with open(path, encoding="utf-8") as fh:
            fingerprint = json.loads(fh.readline()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
    return fingerprint if isinstance(fingerprint, str) else None


@dataclass(frozen=True)
class Chunk:
    """A batch of sessions moving through the steps; each step returns a new Chunk."""

    tasks: tuple[SessionTask, ...]
    sessions: tuple[Session, ...] = ()
    coded: tuple = ()
    results: tuple[dict, ...] = ()
    failures: tuple[Problem, ...] = ()
    findings: tuple[dict, ...] = ()
    embed_stats: dict = field(default_factory=dict)

    def without(self, keys: set[str]) -> "Chunk":
        keep = [i for i, t in enumerate(self.tasks) if t.key not in keys]
        pick = lambda seq: tuple(seq[i] for i in keep) if seq else seq  # noqa: E731
        return replace(self, tasks=pick(self.tasks), sessions=pick(self.sessions),
                       coded=pick(self.coded), results=pick(self.results))

    def slim(self) -> "Chunk":
        """What ``finish_run`` needs of a written chunk (failures, findings and how many sessions
        it coded) without its sessions and records, so that a long run never holds them all."""
        return replace(self, tasks=(), sessions=(), coded=(), results=tuple({} for _ in self.results))


def chunks(tasks: list[SessionTask], size: int) -> list[Chunk]:
    """The tasks in chunks of ``size``, sessions not read yet (see :func:`read_chunk`)."""
    return [Chunk(tuple(tasks[i:i + size])) for i in range(0, len(tasks), size)]


def failure(task: SessionTask, err: BaseException, step: str) -> Problem:
    """A failed session, described without transcript text."""
    message = str(err) if isinstance(err, RuptureCoderError) else f"{type(err).__name__} during {step}"
    if isinstance(err, OSError) and err.strerror:  # e.g. "No space left on device": no transcript text
        message += f" ({err.strerror})"
    return Problem("error", f"session.{step}_failed", message, task.path, None, task.key)


_BUNDLE_LOCK = threading.Lock()


def cached_bundle(model: str | None, cache_dir: str | None):
    """One loaded bundle per process (each Dask worker loads the model once; a warm-up thread
    and the first task never load it twice)."""
    with _BUNDLE_LOCK:
        return _load_bundle_once(model, cache_dir)


@lru_cache(maxsize=4)
def _load_bundle_once(model: str | None, cache_dir: str | None):
    return load_bundle(model, cache_dir=cache_dir)


def embed_chunk(chunk: Chunk, config: RunConfig) -> Chunk:
    """Embed the chunk's unique texts into the cache (classification then reads them back)."""
    return end_embed(begin_embed(chunk, config))


@dataclass
class PendingEmbed:
    """A chunk whose new texts are being encoded (:func:`begin_embed`)."""

    chunk: Chunk
    plan: object = None  # pipeline.modeling.embed.EmbedPlan
    cache: EmbeddingCache | None = None
    vectors: object = None  # the new texts' vectors, or a callable that waits for them


def begin_embed(chunk: Chunk, config: RunConfig, encoder=None) -> PendingEmbed:
    """The first half of :func:`embed_chunk`: read the cache and start encoding the texts it
    lacks, in ``encoder`` (a :class:`pipeline.run.encoder.EncoderProcess`: this returns at once,
    and :func:`end_embed` waits) or here and now."""
    if config.cache_dir is None or not chunk.sessions:
        return PendingEmbed(chunk)
    bundle = cached_bundle(config.model, config.cache_dir)
    cache = EmbeddingCache(Path(config.cache_dir) / "embeddings.sqlite")
    try:
        embedder = get_embedder(bundle.model.embedder)
        plan = plan_embedding([turn_text(t) for s in chunk.sessions for t in s.turns], embedder, cache)
        if not plan.todo:
            return PendingEmbed(chunk, plan, cache)
        if encoder is not None:
            encoder.submit(plan.todo)
            return PendingEmbed(chunk, plan, cache, encoder.result)
        return PendingEmbed(chunk, plan, cache, embedder.encode(plan.todo))
    except BaseException:
        cache.close()
        raise


def end_embed(pending: PendingEmbed) -> Chunk:
    """The second half of :func:`embed_chunk`: the new vectors into the cache."""
    if pending.cache is None:
        return pending.chunk
    stats: dict = {}
    try:
        vectors = pending.vectors() if callable(pending.vectors) else pending.vectors
        complete_embedding(pending.plan, vectors, pending.cache, stats)
    finally:
        pending.cache.close()
    return replace(pending.chunk, embed_stats=stats)


def classify_chunk(chunk: Chunk, config: RunConfig) -> Chunk:
    """Code the chunk in one batch; if that fails, session by session so that one bad session
    fails alone."""
    bundle = cached_bundle(config.model, config.cache_dir)
    try:
        return replace(chunk, coded=tuple(code_sessions(list(chunk.sessions), bundle)))
    except Exception:  # isolate the failing session(s) below
        log.warning("chunk coding failed; retrying session by session")
    coded, failed = [], []
    for task, session in zip(chunk.tasks, chunk.sessions):
        try:
            coded.append(code_sessions([session], bundle)[0])
        except Exception as err:  # noqa: BLE001 - reported per session, never silently
            failed.append(failure(task, err, "classify"))
            coded.append(None)
    chunk = replace(chunk, coded=tuple(coded), failures=chunk.failures + tuple(failed))
    return chunk.without({p.session_id for p in failed})


def _per_session(chunk: Chunk, step: str, fn, items) -> tuple[tuple, tuple[Problem, ...]]:
    """``fn(item)`` for each session of the chunk; a session whose step raises is reported
    failed (its value None), so that one bad session never fails its whole chunk."""
    values, failed = [], []
    for task, item in zip(chunk.tasks, items):
        try:
            values.append(fn(item))
        except Exception as err:  # noqa: BLE001 - reported per session, never silently
            failed.append(failure(task, err, step))
            values.append(None)
    return tuple(values), tuple(failed)


def segment_chunk(chunk: Chunk, config: RunConfig) -> Chunk:
    sessions, failed = _per_session(chunk, "segment", lambda s: segment_session(s, config.segment),
                                    chunk.sessions)
    chunk = replace(chunk, sessions=sessions, failures=chunk.failures + failed)
    return chunk.without({p.session_id for p in failed})


def code_sessions(sessions: list[Session], bundle) -> list:
    """:func:`pipeline.coding.apply.code_sessions`, imported on first use: the coding modules
    bring scikit-learn (about 1 s to import), which the writer process (:mod:`pipeline.run.writer`,
    it imports this module for the state files) never needs."""
    from pipeline.coding.apply import code_sessions as code

    return code(sessions, bundle)


def session_timeline(coded) -> dict:
    """:func:`pipeline.coding.apply.session_timeline`, imported on first use (as above)."""
    from pipeline.coding.apply import session_timeline as timeline

    return timeline(coded)


def _session_outputs(coded) -> dict:
    from pipeline.coding.apply import session_record, turn_records

    tl = session_timeline(coded)
    return {"turns": [r.to_dict() for r in turn_records(coded)], "timeline": tl, "session": session_record(coded, tl)}


def build_outputs(chunk: Chunk) -> Chunk:
    """Per-session outputs: turn records, timeline and session row."""
    results, failed = _per_session(chunk, "timelines", _session_outputs, chunk.coded)
    chunk = replace(chunk, results=results, failures=chunk.failures + failed)
    return chunk.without({p.session_id for p in failed})


def write_session_state(out: Path, task: SessionTask, result: dict) -> None:
    """Store one coded session atomically (the commit point of a session): line 1 the
    fingerprint, line 2 the outputs."""
    from pipeline.io.files import atomic_write

    header = dumps({"fingerprint": task.fingerprint, "key": task.key})
    atomic_write(state_path(out, task.key), header + "\n" + dumps(result) + "\n")


def read_state(out: Path, key: str) -> dict | None:
    try:
        with open(state_path(out, key), encoding="utf-8") as fh:
            fh.readline()
            return json.loads(fh.readline())
    except (OSError, ValueError):
        return None
