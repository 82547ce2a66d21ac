"""Cases of a coded run: group its sessions by a sessions manifest and write ``cases.jsonl``,
``cases.csv``, ``cases/<case>.png`` (the rating trend) and the case pages of the report
(``report/cases.html``, ``report/case-<case>.html``); the index page gains a link to them."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.coding.cases import SESSION_COLUMNS, build_cases
from pipeline.errors import ConfigError
from pipeline.io.files import atomic_write, dumps, safe_filename, write_csv
from pipeline.io.manifest import read_manifest
from pipeline.io.run_folder import RunFolder


def write_cases(run_dir: str | Path, manifest_path: str | Path, png: bool = True) -> dict:
    """Build the cases of ``run_dir`` from the manifest and write every case output; returns the
    result of :func:`pipeline.coding.cases.build_cases` (without the per-session lists)."""
    from pipeline.report.cases import write_case_pages
    from pipeline.report.html import render_index
    from pipeline.report.plots import case_trend_png

    run_dir = Path(run_dir)
    if not (run_dir / "sessions.jsonl").is_file():
        raise ConfigError("run folder has no sessions.jsonl", path=str(run_dir),
                          fix="point at the --out folder of `rupture-coder code`")
    sessions = RunFolder(run_dir).session_rows()
    result = build_cases(sessions, read_manifest(manifest_path))
    atomic_write(run_dir / "cases.jsonl", "".join(dumps(c) + "\n" for c in result["cases"]))
    write_csv(run_dir / "cases.csv", SESSION_COLUMNS, [e for c in result["cases"] for e in c["sessions"]])
    timelines = {}
    for c in result["cases"]:
        for e in c["sessions"]:
            path = run_dir / "timelines" / f"{safe_filename(e['session_id'])}.json"
            if path.is_file():
                timelines[e["session_id"]] = json.loads(path.read_text(encoding="utf-8"))
    if png:
        for c in result["cases"]:
            atomic_write(run_dir / "cases" / f"{safe_filename(c['case_id'])}.png", case_trend_png(c))
    write_case_pages(run_dir / "report", result, timelines)
    run_info = json.loads((run_dir / "run.json").read_text(encoding="utf-8")) if (run_dir / "run.json").is_file() else {}
    atomic_write(run_dir / "report" / "index.html", render_index(sessions, run_info, cases=True))
    return {k: v for k, v in result.items() if k != "cases"} | {"n_cases": len(result["cases"])}
