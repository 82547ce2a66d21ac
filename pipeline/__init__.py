"""rupture-coder: codes alliance ruptures and repair attempts in psychotherapy transcripts.

The plain-Python library; Prefect flows in ``flows/`` are a thin shell over it. What a library
user needs is importable from here:

- reading transcripts: :func:`read_file`, :func:`load_paths`, :func:`load_corpus`, :class:`ReadOptions`;
- the records: :class:`Corpus`, :class:`Session`, :class:`Turn`, :class:`Annotation`;
- the codebook: :func:`load_codebook`;
- the de-identification gate: :func:`scan_session`, :func:`redact_session`, ...;
- models: :class:`RuptureCoder` (the estimator), :func:`load_bundle`, :func:`code_sessions`,
  :class:`Trainer` and :class:`TrainingArguments`;
- coding a corpus without Prefect: :func:`code_corpus` with a :class:`RunConfig`.

The model and run parts are imported on first use (they pull in scikit-learn and, when a model
loads, torch), so ``import pipeline`` stays quick.
"""

from pipeline.offline import apply_offline_env

apply_offline_env()

from pipeline.codebook import Codebook, load_codebook  # noqa: E402
from pipeline.errors import (  # noqa: E402
    CodebookError,
    ConfigError,
    InputFormatError,
    LabelError,
    ModelError,
    Problem,
    RuptureCoderError,
    SpeakerMappingError,
)
from pipeline.io.readers import FORMATS, ReadOptions, load_corpus, load_paths, read_file  # noqa: E402
from pipeline.preprocess.deid import (  # noqa: E402
    DeidConfig,
    Finding,
    active_detectors,
    evaluate_gate,
    findings_report,
    redact_session,
    scan_session,
    scan_texts,
    summarise,
)
from pipeline.preprocess.segment import SegmentConfig, extract_nonverbal, is_backchannel, segment_session  # noqa: E402
from pipeline.io.run_folder import RunFolder  # noqa: E402
from pipeline.records import Annotation, CodeScore, Corpus, Provenance, Session, Turn, TurnRecord  # noqa: E402
from pipeline.version import __version__  # noqa: E402

_LAZY = {
    "RuptureCoder": "pipeline.modeling.estimator",
    "load_bundle": "pipeline.modeling.bundle",
    "Trainer": "pipeline.modeling.trainer",
    "TrainingArguments": "pipeline.modeling.trainer",
    "code_sessions": "pipeline.coding.apply",
    "RunConfig": "pipeline.run.steps",
    "code_corpus": "pipeline.run.local",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


__all__ = [
    "Annotation", "Codebook", "CodebookError", "ConfigError", "Corpus", "FORMATS",
    "InputFormatError", "LabelError", "ModelError", "Problem", "Provenance", "ReadOptions",
    "RuptureCoderError", "SegmentConfig", "Session", "SpeakerMappingError", "Turn",
    "extract_nonverbal", "is_backchannel", "load_codebook", "load_corpus", "load_paths",
    "read_file", "segment_session", "__version__",
    # coded runs on disk
    "CodeScore", "RunFolder", "TurnRecord",
    # the de-identification gate
    "DeidConfig", "Finding", "active_detectors", "evaluate_gate", "findings_report", "redact_session",
    "scan_session", "scan_texts", "summarise",
    # models and runs (imported on first use)
    *_LAZY,
]
