"""The codebook: the bundled label file, its agreement with LABELS.md, validation, bad files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipeline.codebook import LAYERS, load_codebook
from pipeline.errors import CodebookError

REPO = Path(__file__).resolve().parents[1]
LABELS_MD = REPO / ".." / "shared" / "LABELS.md"


def _spec_codes() -> dict[str, set[str]]:
    """The codes of each layer as LABELS.md specifies them (tables and the value lists)."""
    if not LABELS_MD.exists():
        pytest.skip(f"{LABELS_MD} not present")
    text = LABELS_MD.read_text(encoding="utf-8")
    client, therapist = text.split("## Therapist turns")
    table = re.compile(r"^\| ([a-z_]+\.[a-z_]+) \|", re.M)
    rupture = re.search(r"`rupture`: one of ([^(]*)", client).group(1)
    repair = re.search(r"`repair`: (.*?)\. ", therapist).group(1)
    return {
        "rupture": set(re.findall(r"`([a-z_]+)`", rupture)),
        "markers": set(table.findall(client)),
        "repair": set(re.findall(r"`([a-z_]+)`", repair)),
        "strategies": set(table.findall(therapist)),
    }


def test_codebook_loads_default_scheme():
    book = load_codebook()
    assert (book.scheme, tuple(book.layers)) == ("rupture_v1", LAYERS)
    assert book.layer("rupture").values == ("none", "withdrawal", "confrontation")
    assert book.rupture_types == ("withdrawal", "confrontation")
    assert (len(book.markers), len(book.strategies)) == (14, 9)
    assert book.layer("repair").values == ("none", "repair")
    assert {n: (layer.applies_to, layer.kind) for n, layer in book.layers.items()} == {
        "rupture": ("client", "single"), "markers": ("client", "multi"),
        "repair": ("therapist", "single"), "strategies": ("therapist", "multi")}
    assert load_codebook() is load_codebook()  # cached


def test_codebook_codes_are_exactly_those_of_labels_md():
    spec = _spec_codes()
    assert (len(spec["rupture"]), len(spec["markers"]), len(spec["strategies"])) == (3, 14, 9)
    book = load_codebook()
    assert {name: set(book.layer(name).values) for name in LAYERS} == spec


def test_codebook_code_families_and_speaker_roles():
    book = load_codebook()
    assert {book.code(c).family for c in book.markers} == {"withdrawal", "confrontation"}
    assert all(c.startswith(f"{book.code(c).family}.") for c in book.markers + book.strategies)
    assert {book.role_aliases[a] for a in ("t", "counsellor", "p", "client", "interpreter")} == {
        "therapist", "client", "other"}


def test_codebook_validate_accepts_valid_codes():
    book = load_codebook()
    assert book.validate("markers", [" withdrawal.denial ", "", "confrontation.defends_self"]) == [
        "withdrawal.denial", "confrontation.defends_self"]
    assert book.validate("rupture", "withdrawal") == ["withdrawal"]  # a single code, not its letters


def test_codebook_validate_errors():
    book = load_codebook()
    with pytest.raises(CodebookError, match=r"row 3: invalid markers code\(s\) 'withdrawal\.sulking'; "
                                            r"expected codes of rupture_v1 layer 'markers': .*withdrawal\.denial"):
        book.validate("markers", ["withdrawal.denial", "withdrawal.sulking"], where="row 3")
    with pytest.raises(CodebookError, match=r"layer 'rupture' takes one code, got 2"):
        book.validate("rupture", ["withdrawal", "confrontation"])
    with pytest.raises(CodebookError, match=r"unknown layer 'ruptures'"):
        book.validate("ruptures", ["none"])
    with pytest.raises(CodebookError, match=r"unknown code 'repair\.nothing'"):
        book.code("repair.nothing")


def _label_file(tmp_path, mutate) -> Path:
    raw = yaml.safe_load(Path(load_codebook().path).read_text(encoding="utf-8"))
    mutate(raw)
    path = tmp_path / "labels.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_codebook_loads_a_label_file_by_path(tmp_path):
    path = _label_file(tmp_path, lambda raw: raw.update(version="9.9.9"))
    book = load_codebook(path)
    assert (book.version, book.path, book.markers) == ("9.9.9", str(path), load_codebook().markers)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw.pop("scheme"), r"missing a required field; .*found missing or malformed 'scheme'"),
        (lambda raw: raw["layers"]["markers"]["codes"][0].pop("display"), r"missing or malformed 'display'"),
        (lambda raw: raw["layers"]["rupture"].pop("applies_to"), r"missing or malformed 'applies_to'"),
        (lambda raw: raw.update(layers=["rupture"]), r"missing a required field"),
        (lambda raw: raw["layers"].pop("strategies"), r"label file lacks layers; found strategies"),
        (lambda raw: raw["layers"]["markers"].update(kind="many"), r"layer 'markers' has an unknown kind"),
        (lambda raw: raw["layers"]["repair"].update(applies_to="patient"),
         r"layer 'repair' applies to an unknown role"),
        (lambda raw: raw["layers"]["rupture"].update(default="nothing"),
         r"layer 'rupture' has a default that is not one of its codes"),
    ],
    ids=["scheme", "display", "applies_to", "layers-list", "layer-missing", "kind", "role", "default"],
)
def test_codebook_bad_label_file(tmp_path, mutate, message):
    path = _label_file(tmp_path, mutate)
    with pytest.raises(CodebookError, match=message) as info:
        load_codebook(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("scheme: [unclosed\n", r"labels\.yaml: label file is not valid YAML"),
        ("- just\n- a list\n", r"labels\.yaml: label file is not a mapping"),
        ("", r"labels\.yaml: label file is not a mapping"),
        (b"scheme: \xff\xfe\x00bad\n", r"labels\.yaml: label file is not UTF-8 text"),
    ],
    ids=["invalid-yaml", "list", "empty", "not-utf8"],
)
def test_codebook_unparseable_label_file(tmp_path, content, message):
    path = tmp_path / "labels.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(CodebookError, match=message):
        load_codebook(path)


def test_codebook_missing_label_file(tmp_path):
    with pytest.raises(CodebookError, match=r"nope\.yaml: cannot read label file"):
        load_codebook(tmp_path / "nope.yaml")
