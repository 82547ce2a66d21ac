"""The codebook: loads the machine-readable label file of a scheme (``annotation_guides/``).

The label file is the single source of truth for codes, their families, which speaker role
they apply to, display names and report colours. Nothing else in the code lists codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import yaml

from pipeline.errors import CodebookError
from pipeline.resources import resource

DEFAULT_SCHEME = "rupture_v1"
LAYERS = ("rupture", "markers", "repair", "strategies")


@dataclass(frozen=True)
class Code:
    code: str
    layer: str
    display: str
    colour: str
    family: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Layer:
    name: str
    applies_to: str
    kind: str  # "single" | "multi"
    codes: tuple[Code, ...]
    default: str | None = None

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.codes)


@dataclass(frozen=True)
class Codebook:
    scheme: str
    version: str
    layers: dict[str, Layer]
    role_aliases: dict[str, str]
    path: str = ""

    def layer(self, name: str) -> Layer:
        try:
            return self.layers[name]
        except KeyError:
            raise CodebookError(
                f"unknown layer {name!r}", path=self.path, expected=f"one of {sorted(self.layers)}"
            ) from None

    def code(self, code: str) -> Code:
        for layer in self.layers.values():
            for c in layer.codes:
                if c.code == code:
                    return c
        raise CodebookError(f"unknown code {code!r}", path=self.path)

    @property
    def rupture_types(self) -> tuple[str, ...]:
        return tuple(c for c in self.layer("rupture").values if c != "none")

    @property
    def markers(self) -> tuple[str, ...]:
        return self.layer("markers").values

    @property
    def strategies(self) -> tuple[str, ...]:
        return self.layer("strategies").values

    def validate(self, layer: str, codes: Iterable[str], where: str = "") -> list[str]:
        """Return the codes if all are valid for ``layer``; else raise a CodebookError naming
        the bad ones and the valid choices."""
        allowed = set(self.layer(layer).values)
        codes = [codes] if isinstance(codes, str) else codes  # one code, not its characters
        codes = [c.strip() for c in codes if c and c.strip()]
        bad = [c for c in codes if c not in allowed]
        if bad:
            raise CodebookError(
                f"{where + ': ' if where else ''}invalid {layer} code(s) {', '.join(map(_quote_code, bad))}",
                expected=f"codes of {self.scheme} layer {layer!r}: {', '.join(sorted(allowed))}",
                fix="use the exact codes of the label file (see `rupture-coder codes`)",
            )
        if self.layer(layer).kind == "single" and len(codes) > 1:
            raise CodebookError(
                f"{where + ': ' if where else ''}layer {layer!r} takes one code, got {len(codes)}",
                fix="keep only one code",
            )
        return codes


def _quote_code(value: str) -> str:
    """A bad code as shown in an error: quoted when it looks like a code (a typo such as
    'withdrawl'), else only its length, so that transcript text that slipped into a label
    column (a shifted CSV row) is never quoted."""
    return repr(value) if re.fullmatch(r"[\w.:-]{1,40}", value) else f"<a value of {len(value)} characters>"


def _parse(raw: dict, path: str) -> Codebook:
    try:
        layers = {}
        for name, spec in raw["layers"].items():
            codes = tuple(
                Code(
                    code=c["code"],
                    layer=name,
                    display=c["display"],
                    colour=c["colour"],
                    family=c.get("family"),
                    description=c.get("description", ""),
                )
                for c in spec["codes"]
            )
            layers[name] = Layer(name, spec["applies_to"], spec["kind"], codes, spec.get("default"))
        aliases = {}
        for entry in raw["speaker_roles"]:
            for alias in entry["aliases"]:
                aliases[str(alias).lower()] = entry["role"]
        book = Codebook(str(raw["scheme"]), str(raw["version"]), layers, aliases, path)
    except (KeyError, TypeError, AttributeError) as err:
        raise CodebookError(
            "label file is missing a required field",
            path=path,
            expected="scheme, version, speaker_roles and layers with codes",
            found=f"missing or malformed {err}",
        ) from None
    missing = [name for name in LAYERS if name not in book.layers]
    if missing:
        raise CodebookError("label file lacks layers", path=path, found=", ".join(missing))
    for layer in book.layers.values():
        _check_layer(layer, set(book.role_aliases.values()), path)
    return book


def _check_layer(layer: Layer, roles: set[str], path: str) -> None:
    """A layer's kind, role and default must be ones the code can act on."""
    if layer.kind not in ("single", "multi"):
        raise CodebookError(f"layer {layer.name!r} has an unknown kind", path=path,
                            expected="kind single or multi", found=repr(layer.kind))
    if layer.applies_to not in roles:
        raise CodebookError(f"layer {layer.name!r} applies to an unknown role", path=path,
                            expected=f"one of {', '.join(sorted(roles))}", found=repr(layer.applies_to))
    if layer.default is not None and layer.default not in layer.values:
        raise CodebookError(f"layer {layer.name!r} has a default that is not one of its codes",
                            path=path, found=repr(layer.default))


def load_codebook(path: str | Path | None = None) -> Codebook:
    """Load a label file (default: the bundled ``rupture_v1`` file)."""
    if path is None:
        return _default_codebook()
    return _load(Path(path))


@lru_cache(maxsize=1)
def _default_codebook() -> Codebook:
    return _load(resource("annotation_guides", f"{DEFAULT_SCHEME}.labels.yaml"))


def _load(path: Path) -> Codebook:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise CodebookError("cannot read label file", path=path, found=err.strerror) from None
    except UnicodeDecodeError as err:
        raise CodebookError("label file is not UTF-8 text", path=path,
                            found=f"undecodable bytes at byte offset {err.start}") from None
    except yaml.YAMLError as err:
        raise CodebookError("label file is not valid YAML", path=path, found=str(err)) from None
    if not isinstance(raw, dict):
        raise CodebookError("label file is not a mapping", path=path)
    return _parse(raw, str(path))
