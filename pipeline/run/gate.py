"""The de-identification gate as a run step: scan each session before anything is embedded.

``fail`` (default): sessions with findings are not coded and are reported as failures;
``redact``: findings are replaced by typed placeholders before embedding or writing;
``warn``: sessions are coded unchanged. Reports hold positions and kinds, never found values.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from pipeline.errors import Problem
from pipeline.run.steps import Chunk


def check_deid(chunk: Chunk, mode: str, cache_dir: str | None = None) -> Chunk:
    """``cache_dir``: the run's cache folder, where the verdict on each scanned text is recorded
    (hashes, positions and kinds, :class:`pipeline.preprocess.deid.ScanVerdicts`) so that a re-run
    does not scan it again."""
    from pipeline.preprocess.deid import DeidConfig, ScanVerdicts

    if len(chunk.sessions) != len(chunk.tasks):  # a caller skipped run.read_chunk: never lose sessions silently
        raise ValueError(f"chunk of {len(chunk.tasks)} sessions has {len(chunk.sessions)} read; call read_chunk first")
    config = DeidConfig(mode=mode)
    verdicts = None
    if cache_dir:
        # the clean-only file of earlier versions: superseded, never read
        for suffix in ("", "-wal", "-shm"):
            (Path(cache_dir) / f"{ScanVerdicts.OLD_FILE}{suffix}").unlink(missing_ok=True)
        verdicts = ScanVerdicts(Path(cache_dir) / ScanVerdicts.FILE)
    try:
        sessions, failures, findings = _scan_chunk(chunk, mode, config, verdicts)
    finally:
        if verdicts is not None:
            verdicts.close()
    chunk = replace(chunk, sessions=tuple(sessions), failures=chunk.failures + tuple(failures),
                    findings=chunk.findings + tuple(findings))
    return chunk.without({p.session_id for p in failures})


def _scan_chunk(chunk: Chunk, mode: str, config, verdicts) -> tuple[list, list, list]:
    from pipeline.preprocess.deid import findings_report, redact_session, scan_sessions

    sessions, failures, findings = [], [], []
    for task, session, found in zip(chunk.tasks, chunk.sessions, scan_sessions(chunk.sessions, config, verdicts)):
        for row in findings_report(found):
            source = session.turns[row["turn"]].source
            findings.append({**row, "session_id": task.key, "file": source.path,
                             "input_turn_ids": list(source.turn_ids), "lines": list(source.lines),
                             "action": {"fail": "session not coded", "redact": "redacted",
                                        "warn": "coded unchanged"}[mode]})
        if found and mode == "fail":
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(Counter(f.kind for f in found).items()))
            failures.append(Problem("error", "phi.found",
                                    f"{len(found)} possible identifier(s) ({kinds}); session not coded; "
                                    "see phi_report.json, then fix the transcript or use --phi redact",
                                    session.source_path, None, task.key))
            sessions.append(session)
        elif found and mode == "redact":
            sessions.append(redact_session(session, found))
        else:
            sessions.append(session)
    return sessions, failures, findings
