"""Fixtures shared by the coding-run tests."""

from __future__ import annotations

import pytest

from pipeline.run import steps as lib


@pytest.fixture
def config(tiny_bundle, tmp_path):
    """``config(name, **options)``: a RunConfig writing to tmp_path/name (its own cache folder)."""

    def make(name: str, **options) -> lib.RunConfig:
        out = tmp_path / name
        return lib.RunConfig(out=str(out), model=str(tiny_bundle), cache_dir=str(out / ".cache"), **options)

    return make
