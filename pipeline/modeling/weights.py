"""Bundle format 2: a fitted estimator as ``heads.json`` (structure and parameters) plus
``heads.safetensors`` (every array), so that loading a bundle never unpickles code.

Only the classes in :data:`ALLOWED` can be written or read: the estimator and its parts
(:class:`~pipeline.modeling.estimator.RuptureCoder`, ``CalibratedHead``, ``TextView``) and the
scikit-learn pieces they are made of (``Pipeline``, ``StandardScaler``, ``LogisticRegression``,
``LinearSVC``, ``HashingVectorizer``, ``TfidfTransformer``). A reader rebuilds each object from
its class in that list, its constructor parameters and its fitted attributes; a name outside
the list is an error, never an import. Objects of other classes (the ``hgb`` head) cannot be
saved in format 2.

JSON nodes: a JSON scalar is itself; ``{"tuple": [...]}``, ``{"list": [...]}``, ``{"dict": {...}}``;
``{"tensor": key}`` an array in the safetensors file; ``{"dtype": name}`` a NumPy scalar type;
``{"object": class, "params": {...}, "state": {...}}`` an allowed object.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from pipeline.errors import ModelError
from pipeline.io.files import _umask

FORMAT = 2
ALLOWED = {
    "sklearn.pipeline.Pipeline", "sklearn.preprocessing.StandardScaler",
    "sklearn.linear_model.LogisticRegression", "sklearn.svm.LinearSVC",
    "sklearn.feature_extraction.text.HashingVectorizer", "sklearn.feature_extraction.text.TfidfTransformer",
    "pipeline.modeling.estimator.RuptureCoder", "pipeline.modeling.heads.CalibratedHead",
    "pipeline.modeling.context.TextView",
}
DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "int64": np.int64}
_PUBLIC_MODULE = {  # where the allowed classes are imported from (their defining modules may be private)
    "Pipeline": "sklearn.pipeline", "StandardScaler": "sklearn.preprocessing",
    "LogisticRegression": "sklearn.linear_model", "LinearSVC": "sklearn.svm",
    "HashingVectorizer": "sklearn.feature_extraction.text", "TfidfTransformer": "sklearn.feature_extraction.text",
}


class Unsupported(ModelError):
    """An object that bundle format 2 cannot hold."""


def _class_name(obj) -> str:
    cls = type(obj)
    return f"{_PUBLIC_MODULE.get(cls.__name__, cls.__module__)}.{cls.__name__}"


def _encode(value, key: str, tensors: dict[str, np.ndarray]):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiub":
            raise Unsupported("an array that is not numeric cannot be saved in bundle format 2",
                              found=f"{key}: dtype {value.dtype}")
        tensors[key] = np.ascontiguousarray(value)
        return {"tensor": key}
    if isinstance(value, type) and value.__name__ in DTYPES:
        return {"dtype": value.__name__}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return {"list": [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, f"{key}.{k}", tensors) for k, v in value.items()}}
    name = _class_name(value)
    if name not in ALLOWED:
        raise Unsupported("this model part cannot be saved in bundle format 2", found=f"{key}: {name}",
                          fix="use a linear head (logreg or svm), or save in format 1")
    if dataclasses.is_dataclass(value):
        params = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    elif hasattr(value, "get_params"):
        params = value.get_params(deep=False)
    else:
        params = {k: v for k, v in vars(value).items() if not k.endswith("_")}
    state = {k: v for k, v in vars(value).items() if k not in params}
    return {"object": name,
            "params": {k: _encode(v, f"{key}.{k}", tensors) for k, v in params.items()},
            "state": {k: _encode(v, f"{key}.{k}", tensors) for k, v in state.items()}}


def _decode(node, tensors, where: str):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict) or len(node) not in (1, 3):
        raise ModelError("bundle weights: unreadable node", path=where)
    if "tensor" in node:
        if node["tensor"] not in tensors:
            raise ModelError("bundle weights: array missing", path=where, found=str(node["tensor"]))
        return tensors[node["tensor"]]
    if "dtype" in node:
        if node["dtype"] not in DTYPES:
            raise ModelError("bundle weights: unknown dtype", path=where, found=str(node["dtype"])[:40])
        return DTYPES[node["dtype"]]
    if "tuple" in node:
        return tuple(_decode(v, tensors, where) for v in node["tuple"])
    if "list" in node:
        return [_decode(v, tensors, where) for v in node["list"]]
    if "dict" in node:
        return {k: _decode(v, tensors, where) for k, v in node["dict"].items()}
    name = node.get("object")
    if name not in ALLOWED:
        raise ModelError("bundle weights name a class outside the allowed list", path=where,
                         found=str(name)[:80], expected=", ".join(sorted(ALLOWED)))
    module, _, cls_name = name.rpartition(".")
    import importlib

    cls = getattr(importlib.import_module(module), cls_name)
    params = {k: _decode(v, tensors, where) for k, v in node["params"].items()}
    obj = cls(**params)
    for k, v in node["state"].items():
        setattr(obj, k, _decode(v, tensors, where))
    return obj


def tree_of(estimator) -> tuple[str, dict[str, bytes]]:
    """The JSON structure and array bytes of an estimator (equal for equal fitted heads)."""
    tensors: dict[str, np.ndarray] = {}
    tree = json.dumps(_encode(estimator, "model", tensors), sort_keys=True)
    return tree, {k: (str(v.dtype), v.shape, v.tobytes()) for k, v in tensors.items()}


def save_weights(estimator, folder: Path) -> list[str]:
    """Write ``heads.json`` and ``heads.safetensors`` for ``estimator`` into ``folder``; returns the
    file names. Raises :class:`Unsupported` for parts format 2 cannot hold."""
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {}
    tree = _encode(estimator, "model", tensors)
    (folder / "heads.json").write_text(json.dumps({"format": FORMAT, "model": tree}, indent=1, sort_keys=True) + "\n",
                                       encoding="utf-8")
    save_file(tensors, str(folder / "heads.safetensors"), metadata={"format": str(FORMAT)})
    os.chmod(folder / "heads.safetensors", 0o666 & ~_umask())  # safetensors writes 0600
    return ["heads.json", "heads.safetensors"]


def load_weights(folder: Path):
    """The estimator of a format-2 bundle (no unpickling)."""
    from safetensors.numpy import load_file

    where = str(folder / "heads.json")
    try:
        doc = json.loads((folder / "heads.json").read_text(encoding="utf-8"))
        tensors = load_file(str(folder / "heads.safetensors"))
    except Exception as err:  # noqa: BLE001 - OS, JSON and safetensors' own errors alike
        raise ModelError("unreadable bundle weights", path=str(folder), found=type(err).__name__,
                         fix="re-train or re-download the bundle") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelError("bundle weights of an unknown format", path=where, expected=f"format {FORMAT}")
    return _decode(doc.get("model"), tensors, where)
