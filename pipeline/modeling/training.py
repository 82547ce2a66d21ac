"""Training data: the shipped constructed corpus, the team's real-data labels, user data.

Every source is read through the ordinary readers and segmentation, so training sees turns
exactly as coding does. ``data_manifest`` records which files (with hashes) went in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline.modeling.augment import augment
from pipeline.modeling.bundle import file_sha256
from pipeline.errors import LabelError, Problem
from pipeline.io.labels import attach_labels, read_label_table
from pipeline.io.speakers import read_speaker_corrections
from pipeline.io.readers import ReadOptions, load_paths
from pipeline.records import Session
from pipeline.resources import project_home
from pipeline.preprocess.segment import SegmentConfig, segment_session

REAL_LABEL_GLOB = "v2/primary_*.csv"  # the primary coders' tables (scheme rupture_v1, reference-aligned)
AUGMENTED_GLOB = "v1/*.csv"  # rewrite tables (corpus/augmented/), see pipeline/modeling/augment.py


@dataclass
class TrainingData:
    """Labelled sessions, plus augmented variants of some of them (trained on, never scored:
    :mod:`pipeline.modeling.augment`)."""

    sessions: list[Session] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    augmented: list[Session] = field(default_factory=list)

    def extend(self, other: "TrainingData") -> "TrainingData":
        return TrainingData(self.sessions + other.sessions, self.problems + other.problems,
                            self.files + other.files, self.augmented + other.augmented)


def constructed_paths() -> list[Path]:
    return sorted(p for p in (project_home() / "corpus" / "constructed").glob("*.jsonl")
                  if not p.name.endswith(".sessions.jsonl"))


def real_label_paths() -> list[Path]:
    return sorted((project_home() / "corpus" / "real_labels").glob(REAL_LABEL_GLOB))


def augmentation_paths() -> list[Path]:
    """The team's rewrite tables of the real transcripts (target-style augmentation)."""
    return sorted((project_home() / "corpus" / "augmented").glob(AUGMENTED_GLOB))


def with_augmentation(data: TrainingData, paths: list[str | Path] | None = None) -> TrainingData:
    """``data`` plus the variants the rewrite tables make of its sessions."""
    paths = [Path(p) for p in (augmentation_paths() if paths is None else paths)]
    variants, problems = augment(data.sessions, paths)
    return TrainingData(data.sessions, data.problems + problems,
                        data.files + [_file_entry(p, "augmentation") for p in paths], data.augmented + variants)


def speaker_correction_paths() -> list[Path]:
    """The primary coders' speaker corrections of the real transcripts (always applied with their labels)."""
    return [project_home() / "corpus" / "speaker_corrections" / "speakers.csv"]


def _file_entry(path: Path, role: str, **extra) -> dict:
    return {"path": os.path.relpath(path.resolve(), project_home()), "name": path.name, "role": role, "sha256": file_sha256(path),
            "bytes": path.stat().st_size, **extra}


def load_labelled_transcripts(paths: list[str | Path], options: ReadOptions | None = None,
                              segment: SegmentConfig | None = None, tag: str = "user") -> TrainingData:
    """Transcripts whose rows carry label columns (canonical CSV/JSONL, the constructed corpus)."""
    results = load_paths(paths, options or ReadOptions(label_source=f"human:{tag}"))
    data = TrainingData()
    for r in results:
        data.problems.extend(r.problems)
        data.sessions.extend(segment_session(s, segment) for s in r.sessions)
        if r.sessions:
            data.files.append(_file_entry(Path(r.path), "transcripts+labels", source=tag,
                                          sessions=len(r.sessions), turns=sum(len(s.turns) for s in r.sessions)))
    return data


def load_constructed(segment: SegmentConfig | None = None) -> TrainingData:
    return load_labelled_transcripts(constructed_paths(), ReadOptions(label_source="human:constructed"),
                                     segment, tag="constructed")


def load_real(data_dir: str | Path, label_paths: list[str | Path] | None = None, coder: str = "team",
              segment: SegmentConfig | None = None,
              speaker_corrections: list[str | Path] | None = None) -> TrainingData:
    """Real transcripts from ``data_dir`` joined with label tables; only sessions with labels
    are kept. Speaker corrections (default: the team's) are applied before the labels are
    attached, so codes go to the turn of the speaker who actually speaks; turns flagged as
    holding both speakers get no labels. Raises when a label table names turns the transcripts
    do not have."""
    label_paths = [Path(p) for p in (label_paths or real_label_paths())]
    fix_paths = [Path(p) for p in (speaker_corrections if speaker_corrections is not None
                                   else speaker_correction_paths())]
    table: dict = {}
    for p in label_paths:
        table.update(read_label_table(p))
    wanted = {(k[0], k[1]) for k in table}
    results = load_paths([data_dir], ReadOptions(speaker_corrections=read_speaker_corrections(fix_paths)))
    data = TrainingData(files=[_file_entry(p, "labels", rows=None) for p in label_paths]
                        + [_file_entry(p, "speaker corrections") for p in fix_paths])
    matched = 0
    for r in results:
        data.problems.extend(r.problems)
        used = [s for s in r.sessions if (s.source_format, s.session_id) in wanted]
        for s in used:
            s = replace(s, meta={**s.meta, "corpus": corpus_of(s)})
            s, n = attach_labels(segment_session(s, segment), table, coder)
            matched += sum(len(t.source.turn_ids) for t in s.turns if any(a.turn == t.index for a in s.annotations))
            data.sessions.append(s)
        if used:
            data.files.append(_file_entry(Path(r.path), "transcripts", sessions=len(used),
                                          turns=sum(len(s.turns) for s in used)))
    if not data.sessions:
        raise LabelError("no labelled real sessions found", path=data_dir,
                         fix="point --real-data at the shared data folder (../shared/data)")
    unmatched = len(table) - matched
    if unmatched > 0:
        data.problems.append(Problem("warning", "labels.unmatched",
                                     f"{unmatched} label row(s) matched no input turn", str(label_paths[0])))
    return data


def corpus_of(session: Session) -> str:
    """The corpus of a session of the shared data: HLQC splits into its low- and high-quality
    halves (session ids ``low_*`` / ``high_*``), whose rupture rates differ five-fold; the other
    datasets are one corpus each (AnnoMI here holds high-quality sessions only)."""
    if session.source_format == "hlqc":
        return "hlqc_low" if session.session_id.startswith("low") else "hlqc_high"
    return session.source_format


def data_manifest(data: TrainingData, scheme: str, recipe: str) -> dict:
    counts = {"sessions": len(data.sessions), "turns": sum(len(s.turns) for s in data.sessions)}
    if data.augmented:
        counts["augmented_variants"] = len(data.augmented)
        counts["augmented_turns"] = len({(a.session_id, a.turn) for s in data.augmented for a in s.annotations})
    return {"scheme": scheme, "recipe": recipe, "counts": counts, "files": data.files,
            "warnings": len([p for p in data.problems if p.level == "warning"])}
