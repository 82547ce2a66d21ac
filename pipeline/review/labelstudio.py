"""Label Studio round trips: labeling configuration, tasks with predictions, parsing exports.

The labeling configuration is generated from the label file, so the choices on screen are
always the scheme's codes: one ``Choices`` group per layer (named like the layer; single layers
as radio buttons, multi layers as check boxes), each code a ``Choice`` whose hint is its display
name and description. Layers are grouped by the role they apply to; a ``speaker`` choice
(pre-selected by the task's prediction) shows only the groups of the turn's role, and a multi
layer (``markers``, ``strategies``) shows only once its role's single layer holds a code other
than its default. A ``TextArea`` named ``note`` takes free text. The context turns (HTML-escaped)
stand above the highlighted turn being coded.

Tasks (:func:`tasks`) hold the review item in ``data`` and the model's codes as one prediction
(``model_version`` = the run's ``name@version``, ``score`` = 1 - uncertainty).

Exports (:func:`parse_export`) are Label Studio's JSON export: a list of tasks, each with
``annotations[]`` whose ``result[]`` items are ``{from_name, to_name, type, value}``. Label Studio
does not validate choice values; :mod:`pipeline.review.importing` validates everything.
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from pipeline.codebook import Codebook
from pipeline.errors import LabelError
from pipeline.review.items import ReviewItem, parse_item_id

TEXT_NAME = "text"
CONTEXT_NAME = "context"
SPEAKER_NAME = "speaker"
NOTE_NAME = "note"
TURN_STYLE = "background:#fff4c2;border-left:6px solid #e0a800;padding:8px 12px;margin:4px 0 12px 0"


def roles(book: Codebook) -> list[str]:
    """The roles that have layers, in label-file order."""
    return list(dict.fromkeys(layer.applies_to for layer in book.layers.values()))


def labeling_config(book: Codebook) -> str:
    """The labeling configuration XML for the scheme (see the module docstring)."""
    root = ET.Element("View")
    ET.SubElement(root, "Header", value=f"Scheme {book.scheme} {book.version}: code only the highlighted turn", size="5")
    ET.SubElement(root, "Header", value="Context (turns before, oldest first)", size="6")
    ET.SubElement(root, "HyperText", name=CONTEXT_NAME, value="$context_html")
    ET.SubElement(root, "Header", value="$turn_label", size="5")
    turn = ET.SubElement(root, "View", style=TURN_STYLE)
    ET.SubElement(turn, "Text", name=TEXT_NAME, value="$text")
    speaker = ET.SubElement(root, "Choices", name=SPEAKER_NAME, toName=TEXT_NAME, choice="single-radio",
                            showInline="true", required="true")
    for role in roles(book):
        ET.SubElement(speaker, "Choice", value=role, hint=f"{role} turn (set from the transcript)")
    for role in roles(book):
        _role_block(root, book, role)
    ET.SubElement(root, "Header", value="Note (uncertainty, reasons, transcript problems; no names)", size="6")
    ET.SubElement(root, "TextArea", name=NOTE_NAME, toName=TEXT_NAME, rows="2", maxSubmissions="1",
                  editable="true", placeholder="optional note")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _role_block(root: ET.Element, book: Codebook, role: str) -> None:
    block = ET.SubElement(root, "View", visibleWhen="choice-selected", whenTagName=SPEAKER_NAME, whenChoiceValue=role)
    layers = [layer for layer in book.layers.values() if layer.applies_to == role]
    single = next((layer for layer in layers if layer.kind == "single"), None)
    for layer in layers:
        ET.SubElement(block, "Header", value=f"{layer.name} ({'choose one' if layer.kind == 'single' else 'choose any'})", size="6")
        attrs = {"name": layer.name, "toName": TEXT_NAME,
                 "choice": "single-radio" if layer.kind == "single" else "multiple"}
        if layer.kind == "multi" and single is not None:
            shown = [c for c in single.values if c != single.default]
            attrs.update(visibleWhen="choice-selected", whenTagName=single.name, whenChoiceValue=",".join(shown))
        group = ET.SubElement(block, "Choices", attrs)
        for code in layer.codes:
            hint = f"{code.display}: {code.description}" if code.description else code.display
            ET.SubElement(group, "Choice", value=code.code, hint=hint)


def context_html(item: ReviewItem) -> str:
    """The context turns as escaped HTML, oldest first."""
    if not item.context:
        return "<p><em>(start of session: no turns before this one)</em></p>"
    return "".join(f"<p><b>{html.escape(who)}</b>: {html.escape(text)}</p>" for who, text in item.context)


def _choice(from_name: str, values) -> dict:
    return {"from_name": from_name, "to_name": TEXT_NAME, "type": "choices", "value": {"choices": list(values)}}


def task(item: ReviewItem, book: Codebook) -> dict:
    """One Label Studio task: the item as data, the model's codes as a prediction."""
    data = {
        "item_id": item.item_id, "session_id": item.session_id, "turn": item.turn, "speaker": item.speaker,
        "speaker_id": item.speaker_id, "text": item.text,
        "context": [{"speaker_id": who, "text": text} for who, text in item.context],
        "context_html": context_html(item),
        "turn_label": f"Turn {item.turn} of session {item.session_id}: {item.speaker_id} ({item.speaker})",
    }
    result = [_choice(SPEAKER_NAME, [item.speaker])]
    for name, layer in book.layers.items():
        codes = item.model_codes.get(name, ())
        if layer.applies_to == item.speaker and codes:
            result.append(_choice(name, codes))
    score = None if item.uncertainty is None else round(1.0 - float(item.uncertainty), 4)
    return {"data": data, "predictions": [{"model_version": item.model, "score": score, "result": result}]}


def tasks(items: list[ReviewItem], book: Codebook) -> list[dict]:
    return [task(item, book) for item in items]


@dataclass(frozen=True)
class LSAnnotation:
    """One annotator's submitted coding of one task, as found in an export (not yet validated)."""

    path: str
    task_id: object
    item_id: str
    session_id: str
    turn: int
    speaker: str
    completed_by: str  # Label Studio user id
    codes: Mapping[str, tuple[str, ...]]  # from_name -> chosen values, for every choices group present
    note: str = ""

    @property
    def where(self) -> str:
        return f"task {self.task_id} (item {self.item_id})"


def read_export(path: str | Path) -> list:
    """The task list of a Label Studio JSON export."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as err:
        raise LabelError("cannot read Label Studio export", path=path, found=err.strerror) from None
    except ValueError as err:
        raise LabelError("Label Studio export is not valid JSON", path=path, found=str(err),
                         fix="export the project as JSON (not JSON_MIN or CSV)") from None
    if not isinstance(data, list):
        raise LabelError("Label Studio export is not a list of tasks", path=path, found=type(data).__name__,
                         fix="export the project as JSON (not JSON_MIN)")
    return data


def parse_export(path: str | Path, book: Codebook) -> list[LSAnnotation]:
    """Every submitted (not cancelled) annotation of every task of an export."""
    out = []
    for position, raw in enumerate(read_export(path), start=1):
        if not isinstance(raw, dict) or not isinstance(raw.get("data"), dict):
            raise LabelError(f"task #{position} has no data object", path=path, fix="export the project as JSON")
        task_id = raw.get("id", f"#{position}")
        key = _task_key(path, task_id, raw["data"])
        for annotation in raw.get("annotations") or []:
            if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
                continue
            out.append(_annotation(path, task_id, key, raw["data"], annotation, book))
    return out


def _task_key(path, task_id, data: dict) -> tuple[str, str, int]:
    item = str(data.get("item_id", ""))
    key = parse_item_id(item)
    if key is None:
        raise LabelError(f"task {task_id}: data.item_id is not a rupture-coder item id", path=path,
                         expected="'<session_id>:<turn>' as exported by `rupture-coder review export`",
                         found=repr(item))
    return (item, *key)


def _annotation(path, task_id, key, data: dict, annotation: dict, book: Codebook) -> LSAnnotation:
    item, session_id, turn = key
    user = annotation.get("completed_by")
    user = user.get("id") if isinstance(user, dict) else user
    where = f"task {task_id} (item {item})"
    if user is None:
        raise LabelError(f"{where}: annotation {annotation.get('id')} has no completed_by", path=path)
    codes, note = {}, ""
    allowed = set(book.layers) | {SPEAKER_NAME}
    for result in annotation.get("result") or []:
        name = result.get("from_name") if isinstance(result, dict) else None
        value = result.get("value") if isinstance(result, dict) else None
        if name == NOTE_NAME:
            texts = (value or {}).get("text") or []
            note = "\n".join(texts) if isinstance(texts, list) else str(texts)
            continue
        if name not in allowed or not isinstance(value, dict) or not isinstance(value.get("choices"), list):
            raise LabelError(f"{where}: result from {name!r} is not one of the configuration's choice groups",
                             path=path, expected=f"choices from {', '.join(sorted(allowed))}, or note",
                             found=repr(result)[:200], fix="use the labeling config from `rupture-coder review export`")
        codes[name] = codes.get(name, ()) + tuple(str(v) for v in value["choices"])
    return LSAnnotation(str(path), task_id, item, session_id, turn, str(data.get("speaker", "")), str(user), codes, note)
