"""Shared fixtures: tiny sessions built in code, and files written into tmp_path."""

from __future__ import annotations

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
