"""The no-op re-run: recognise, without reading a transcript, that a run's outputs are current.

``finish_run`` ends by writing ``OUT/.state/complete``: a digest of what the outputs depend on
(every input file's path and SHA-256, the options that change outputs, the model's identity and
the rupture-coder version) and the run summary. :func:`inspect` recomputes the digest from the
inputs' bytes and, when it matches and the corpus files are all there, returns the stored
summary: ``rupture-coder code`` then skips parsing, Prefect and the model (a second or two for a
thousand sessions, against tens of seconds for a run that finds every session unchanged).

Only runs whose outcome is a function of their inputs get a marker: no unreadable input, and no
failed session other than ``phi.found`` (the de-identification gate gives the same answer on
the same text); a run with any other failure is retried in full next time. The marker is
removed before any run writes into the folder (:func:`clear`), so an interrupted run never
leaves one that claims its outputs are complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

from pipeline.version import __version__
from pipeline.errors import Problem, RuptureCoderError
from pipeline.io.files import atomic_write, dumps, file_sha256

log = logging.getLogger(__name__)
MARKER = "complete"  # in OUT/.state/; no .json suffix, so it is never taken for a session state
CORPUS_FILES = ("run.json", "turns.jsonl", "turns.csv", "turns.parquet", "turns_dataset/state.json",
                "sessions.jsonl", "sessions.csv", "report/index.html")
DETERMINISTIC_FAILURES = ("phi.found",)
IGNORED_OPTIONS = ("out", "cache_dir", "chunk_size")  # change no output byte
PER_RUN_COUNTS = ("coded_this_run", "sessions_skipped_unchanged")  # describe a run, not its outputs


def marker_path(out: str | Path) -> Path:
    from pipeline.run.config import STATE_DIR

    return Path(out) / STATE_DIR / MARKER


def run_digest(files: list[tuple[str, str]], config, model: dict) -> str:
    """What the corpus outputs depend on, hashed: input files (path, SHA-256), options, model."""
    options = {k: v for k, v in asdict(config).items() if k not in IGNORED_OPTIONS}
    fixes = options.pop("speaker_corrections", ())
    if fixes:  # recorded by content (an edited table re-codes), and only when given (older digests stay valid)
        options["speaker_corrections"] = [file_sha256(p) for p in fixes]
    identity = {k: model.get(k) for k in ("name", "version", "heads_sha256", "embedder")}
    payload = {"files": [list(f) for f in files], "options": options, "model": identity, "version": __version__}
    return hashlib.sha256(dumps(payload).encode("utf-8")).hexdigest()


def clear(out: str | Path) -> None:
    marker_path(out).unlink(missing_ok=True)


def write_marker(out: str | Path, plan, config, summary: dict, failures: list[Problem]) -> bool:
    """Record that the corpus outputs are complete for these inputs; False when the run's
    outcome may differ next time (a failed input or a failure other than ``phi.found``)."""
    if any(i["failed"] or not i["sha256"] for i in plan.inputs) or any(p.level == "error" for p in plan.problems):
        return False
    if any(p.code not in DETERMINISTIC_FAILURES for p in failures):
        return False
    files = [(i["path"], i["sha256"]) for i in plan.inputs]
    stable = {k: v for k, v in summary.items() if k not in PER_RUN_COUNTS}  # a re-run rewrites the same bytes
    record = {"digest": run_digest(files, config, plan.model), "summary": stable,
              "plan_problems": [asdict(p) for p in plan.problems],
              # what the next run compares against to size the work left (see changed_bytes)
              "setting": run_digest([], config, plan.model), "files": [list(f) for f in files]}
    atomic_write(marker_path(out), dumps(record) + "\n")
    return True


def inspect(inputs: list[str], config) -> tuple[dict | None, int | None]:
    """``(summary, changed_bytes)``. ``summary``: the stored run summary when ``config.out`` is
    complete and current for ``inputs`` (nothing to do), else None. ``changed_bytes``, when
    there is something to do: the size of the input files that are new or changed since the
    complete run recorded in ``config.out``, when that run had the same options and model (files
    removed since cost nothing); None when that is not known (no complete run there, other options
    or model, a marker written before this was recorded). ``rupture-coder code --runner auto``
    uses it to code a re-run with little left to do in process, without starting Prefect.
    Reads only the input files' bytes, never parses them."""
    from pipeline.modeling.bundle import file_sha256
    from pipeline.io.readers import expand_paths
    from pipeline.run.config import model_identity

    path = marker_path(config.out)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    out = Path(config.out)
    if not all((out / name).exists() for name in CORPUS_FILES):
        return None, None
    files, problems = expand_paths(inputs)
    if problems:
        return None, None
    try:
        model = model_identity(config.model)
        hashed = [(str(f), file_sha256(f)) for f in files]
    except (OSError, RuptureCoderError, ValueError, KeyError):
        return None, None  # the full run reports it properly
    if record.get("digest") != run_digest(hashed, config, model):
        if not isinstance(record.get("files"), list) or record.get("setting") != run_digest([], config, model):
            return None, None
        before = {tuple(f) for f in record["files"] if isinstance(f, list) and len(f) == 2}
        try:
            return None, sum(f.stat().st_size for f, h in zip(files, hashed) if h not in before)
        except OSError:
            return None, None
    summary = dict(record["summary"])
    summary.update(sessions_skipped_unchanged=summary["sessions_total"] - summary["sessions_failed"], coded_this_run=0,
                   plan_problems=[Problem(**p) for p in record.get("plan_problems", [])], up_to_date=True)
    log.info("outputs in %s are current for these inputs: nothing to do", out)
    return summary, None
