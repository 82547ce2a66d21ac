"""What a coding run is asked to do (:class:`RunConfig`) and which model it uses, without the
heavy libraries: ``rupture-coder code`` builds the configuration, checks for an up-to-date run and
hands a job to the background worker (:mod:`pipeline.run.worker`) importing only this, not
scikit-learn, torch or spaCy. :mod:`pipeline.run.steps` re-exports every name here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache

from pipeline.version import __version__
from pipeline.modeling.bundle import file_sha256, heads_sha256, resolve_model_path
from pipeline.errors import ConfigError
from pipeline.io.files import dumps
from pipeline.io.readers import ReadOptions
from pipeline.io.speakers import read_speaker_corrections
from pipeline.preprocess.segment import SegmentConfig

STATE_DIR = ".state"
PHI_MODES = ("fail", "redact", "warn")


@dataclass(frozen=True)
class RunConfig:
    """Everything that changes a run's outputs (saved in run.json)."""

    out: str
    model: str | None = None
    fmt: str | None = None
    roles: tuple[tuple[str, str], ...] = ()
    columns: tuple[tuple[str, str], ...] = ()
    phi: str = "fail"
    chunk_size: int = 16
    merge_same_speaker: bool = True
    cache_dir: str | None = None
    png: bool = True  # timelines/<session>.png (matplotlib, about 50-70 ms a session; --png / --no-png)
    speaker_corrections: tuple[str, ...] = ()  # tables of pipeline.io.speakers, applied by the readers

    def __post_init__(self):
        if self.phi not in PHI_MODES:
            raise ConfigError(f"unknown --phi mode {self.phi!r}", expected=", ".join(PHI_MODES))
        if self.chunk_size < 1:
            raise ConfigError("--chunk-size must be at least 1", found=str(self.chunk_size))

    @property
    def read_options(self) -> ReadOptions:
        fixes = _speaker_table(self.speaker_corrections) if self.speaker_corrections else None
        return ReadOptions(fmt=self.fmt, roles=dict(self.roles), columns=dict(self.columns), speaker_corrections=fixes)

    @property
    def segment(self) -> SegmentConfig:
        return SegmentConfig(merge_same_speaker=self.merge_same_speaker)

    def outputs_hash(self, model_hash: str) -> str:
        relevant = {"model": model_hash, "fmt": self.fmt, "roles": self.roles, "columns": self.columns,
                    "phi": self.phi, "segment": asdict(self.segment), "version": __version__}
        if not self.png:  # only when off, so that fingerprints of runs made before the option stay valid
            relevant["png"] = False
        if self.speaker_corrections:  # likewise; the tables' contents, so an edited table re-codes
            relevant["speaker_corrections"] = [file_sha256(p) for p in self.speaker_corrections]
        return hashlib.sha256(dumps(relevant).encode()).hexdigest()[:16]


@lru_cache(maxsize=4)
def _speaker_table(paths: tuple[str, ...]):
    return read_speaker_corrections(paths)


def model_identity(model: str | None) -> dict:
    path = resolve_model_path(model)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    return {"name": config["name"], "version": config["version"], "path": str(path),
            "heads_sha256": heads_sha256(path), "embedder": config["embedder"]}
