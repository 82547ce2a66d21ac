"""rupture-coder: codes alliance ruptures and repair attempts in psychotherapy transcripts.

The plain-Python library; Prefect flows in ``flows/`` are a thin shell over it.
"""

from pipeline.offline import apply_offline_env

apply_offline_env()

from pipeline.codebook import Codebook, load_codebook  # noqa: E402
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
from pipeline.records import Annotation, Corpus, Provenance, Session, Turn  # noqa: E402
from pipeline.preprocess.segment import SegmentConfig, extract_nonverbal, is_backchannel, segment_session  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Annotation", "Codebook", "CodebookError", "ConfigError", "Corpus", "FORMATS",
    "InputFormatError", "LabelError", "ModelError", "Problem", "Provenance", "ReadOptions",
    "RuptureCoderError", "SegmentConfig", "Session", "SpeakerMappingError", "Turn",
    "extract_nonverbal", "is_backchannel", "load_codebook", "load_corpus", "load_paths",
    "read_file", "segment_session", "__version__",
    # the de-identification gate
    "DeidConfig", "Finding", "active_detectors", "evaluate_gate", "findings_report", "redact_session",
    "scan_session", "scan_texts", "summarise",
]
