"""Annotators' corrections as training data: a human layer joined with the run it corrects.

``rupture-coder review import`` writes what annotators coded as a human layer (JSON lines
``{session_id, turn, layer, code, score, source: "human:<id>", scheme}``) keyed by the turns of
a run. To learn from it, the codes need their turns: text, speaker roles and order (a turn's
features include the turns before it). These come from the run's ``turns.jsonl``, which holds
the turns exactly as the model saw them when it coded them: already segmented, so the human
layer's turn numbers are those turns and nothing is segmented again.

Rules (also in docs/review-loop.md):

* **Only reviewed turns are gold.** A session built here holds every turn of the run (they are
  context), but annotations only on reviewed turns. :func:`pipeline.modeling.estimator.gold_arrays`
  leaves the other turns ``None``, and neither ``RuptureCoder.fit`` nor
  :func:`pipeline.modeling.evaluate.collect` uses a turn without a gold code: an unreviewed turn is never
  a negative example. (Its text still feeds its neighbours' context features, and its predicted
  rupture probability the therapist head's exchange context, as at coding time.)
* **Several annotators on one turn**, per role: the single layer (``rupture`` / ``repair``) takes
  the code most annotators chose; a tie goes to the tied code chosen by the first annotator in
  source-id order (``human:a`` before ``human:b``). The multi layer (``markers`` /
  ``strategies``) comes from the annotators who chose that code: every code more than half of
  them chose, or, when that leaves no code of the chosen family, the list of the first of them.
  Turns are counted as unanimous, majority or tie. The result has source ``human:corrections``.
* **Errors** (:class:`LabelError` / :class:`ConfigError`, naming file and line): no run, a
  session or turn the run does not have, a code for the other role's layers, a non-human
  source, another scheme, unknown codes. These mean the layer does not belong to this run.
* **Skipped and counted** (never silently): one annotator's coding of a turn that breaks the
  coding manual's rules (no rupture/repair code, two of them, markers with ``none``, no marker
  of the chosen family): other annotators' codings of the turn still count, and a turn or
  session left with none is skipped. Held-out sessions (:meth:`Corrections.split`) are skipped
  from training too. Each skipped coding is also a warning naming its file and line.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping

from pipeline.codebook import Codebook, load_codebook
from pipeline.errors import ConfigError, InputFormatError, LabelError, Problem
from pipeline.records import Annotation, Provenance, Session, Turn, TurnRecord
from pipeline.io.run_folder import RunFolder
from pipeline.review.importing import check_coding, read_human_layer
from pipeline.modeling.training import TrainingData, _file_entry

SOURCE = "human:corrections"
RULE = ("single layer: majority of annotators, ties to the tied code of the first annotator by source id; "
        "multi layer: codes chosen by more than half of the annotators who chose that code, else the first "
        "of them (by id); unreviewed turns carry no gold code")
MAX_EXAMPLES = 20
RUN_ROLE = "transcripts (run)"  # role of the run's turns.jsonl in a data manifest


@dataclass
class Corrections:
    """Corrected sessions (every run turn, gold only on reviewed turns) and what was used."""

    data: TrainingData
    stats: dict = field(default_factory=dict)

    @property
    def sessions(self) -> list[Session]:
        return self.data.sessions

    def split(self, held_out: Iterable[str]) -> tuple["Corrections", list[Session]]:
        """(training corrections, held-out sessions): held-out sessions leave the training data
        and are counted as skipped ("held out for testing")."""
        held = set(held_out)
        train = [s for s in self.sessions if s.session_id not in held]
        test = [s for s in self.sessions if s.session_id in held]
        stats = json.loads(json.dumps(self.stats))
        turns = sum(n_gold_turns(s) for s in test)
        stats["sessions"]["used"] -= len(test)
        stats["turns"]["used"] -= turns
        if test:
            stats["sessions"]["skipped"]["held out for testing"] = len(test)
            stats["turns"]["skipped"]["held out for testing"] = turns
        stats["held_out_sessions"] = sorted(s.session_id for s in test)
        stats["session_ids"] = [s.session_id for s in train]
        files = [dict(f, sessions=len(train), turns=sum(len(s.turns) for s in train)) if f["role"] == RUN_ROLE else f
                 for f in self.data.files]
        return Corrections(replace(self.data, sessions=train, files=files), stats), test


def n_gold_turns(session: Session) -> int:
    return len({a.turn for a in session.annotations if not a.source.startswith("model:")})


def run_sessions(run_dir: str | Path, records: list[TurnRecord] | None = None) -> dict[str, Session]:
    """The run's turns as unannotated Sessions, by session id (turns in run order)."""
    folder = RunFolder(run_dir)
    records = folder.turns() if records is None else records
    sources = folder.session_sources()
    grouped: dict[str, list[TurnRecord]] = {}
    for r in records:
        grouped.setdefault(r.session_id, []).append(r)
    out = {}
    for sid, rows in grouped.items():
        if [r.turn for r in rows] != list(range(len(rows))):
            raise InputFormatError("the run's turns of a session are not numbered 0, 1, 2... in order",
                                   path=folder.turns_path, session_id=sid,
                                   fix="use turns.jsonl as `rupture-coder code` wrote it")
        src = sources.get(sid)
        source_file = src.source_file if src else ""
        out[sid] = Session(sid, tuple(_turn(r, source_file or str(folder.turns_path)) for r in rows), source_file,
                           src.format if src else "")
    return out


def _turn(r: TurnRecord, source_file: str) -> Turn:
    return Turn(r.session_id, r.turn, r.speaker, r.speaker_id, r.text, clean_text=r.clean_text, start_s=r.start,
                end_s=r.end, nonverbal=r.nonverbal, source=Provenance(source_file, r.source_lines, r.source_turns))


def read_layer(path: Path, book: Codebook) -> list[tuple[dict, int]]:
    """Records of a human layer with their line numbers (validated by ``read_human_layer``)."""
    if not path.is_file():
        raise LabelError("corrections file not found", path=path,
                         fix="pass the human layer written by `rupture-coder review import --out`")
    records = read_human_layer(path, book)
    lines = [n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if text.strip()]
    return list(zip(records, lines))


def _check_record(r: dict, path: Path, line: int, run: Mapping[str, Session], book: Codebook) -> Turn:
    if not str(r["source"]).startswith("human:"):
        raise LabelError(f"source {r['source']!r} is not an annotator", path=path, line=line, expected="human:<id>",
                         fix="train on human layers written by `rupture-coder review import`, never on model codes")
    if r.get("scheme", book.scheme) != book.scheme:
        raise LabelError(f"code of scheme {r['scheme']!r}", path=path, line=line, expected=book.scheme,
                         fix="use corrections coded under the current label scheme")
    session = run.get(r["session_id"])
    if session is None:
        raise LabelError(f"session {r['session_id']!r} is not in the run", path=path, line=line,
                         fix="pass --run with the run folder the review batch was exported from")
    if not 0 <= r["turn"] < len(session.turns):
        raise LabelError(f"session {r['session_id']!r} has no turn {r['turn']} in the run", path=path, line=line,
                         expected=f"turns 0-{len(session.turns) - 1}",
                         fix="pass --run with the run folder the review batch was exported from")
    turn = session.turns[r["turn"]]
    if book.layer(r["layer"]).applies_to != turn.speaker_role:
        raise LabelError(f"turn {r['turn']} of session {r['session_id']!r} has speaker role {turn.speaker_role!r} in "
                         f"the run, but gets a {r['layer']} code (a {book.layer(r['layer']).applies_to} layer)",
                         path=path, line=line,
                         fix="pass --run with the run folder the review batch was exported from")
    return turn


def resolve(codings: Mapping[str, Mapping[str, tuple[str, ...]]], role: str, book: Codebook) -> tuple[dict, str]:
    """One turn's codes from its annotators' (valid) codings, by the module's rule; returns the
    codes by layer and ``single``, ``unanimous``, ``majority`` or ``tie``."""
    sources = sorted(codings)
    layers = [n for n, layer in book.layers.items() if layer.applies_to == role]
    single = next(book.layer(n) for n in layers if book.layer(n).kind == "single")
    if len(sources) == 1:
        return {n: tuple(codings[sources[0]].get(n, ())) for n in layers}, "single"
    chosen = {s: codings[s][single.name][0] for s in sources}
    counts = Counter(chosen.values())
    top = max(counts.values())
    winner = next(chosen[s] for s in sources if counts[chosen[s]] == top)
    outcome = "unanimous" if len(counts) == 1 else ("tie" if list(counts.values()).count(top) > 1 else "majority")
    agree = [s for s in sources if chosen[s] == winner]
    out = {single.name: (winner,)}
    for name in (n for n in layers if n != single.name):
        multi = book.layer(name)
        votes = Counter(c for s in agree for c in codings[s].get(name, ()))
        kept = tuple(c for c in multi.values if 2 * votes[c] > len(agree))
        if winner != single.default and not any(_family(book, name, c) == winner for c in kept):
            kept = tuple(codings[agree[0]].get(name, ()))
        out[name] = () if winner == single.default else kept
    return out, outcome


def _family(book: Codebook, layer: str, code: str) -> str | None:
    return next((c.family for c in book.layer(layer).codes if c.code == code), None)


def load_corrections(paths: list[str | Path], run_dir: str | Path | None, book: Codebook | None = None) -> Corrections:
    """Sessions with gold codes from human layers and the run they correct (module docstring)."""
    book = book or load_codebook()
    if not paths:
        raise ConfigError("no corrections files given", fix="add --corrections HUMAN.jsonl")
    if run_dir is None:
        raise ConfigError("--corrections needs --run", fix="add --run RUN_DIR: the run folder the review batch came from")
    run = run_sessions(run_dir)
    codings: dict[tuple[str, int], dict[str, dict]] = {}  # (sid, turn) -> source -> {layer: codes, "@": (path, line)}
    annotators: Counter = Counter()
    for path in map(Path, paths):
        for r, line in read_layer(path, book):
            _check_record(r, path, line, run, book)
            coding = codings.setdefault((r["session_id"], r["turn"]), {}).setdefault(r["source"], {"@": (path, line)})
            if r["code"] not in coding.get(r["layer"], ()):
                coding[r["layer"]] = coding.get(r["layer"], ()) + (r["code"],)
    if not codings:
        raise LabelError("the corrections hold no coded turns", path=", ".join(map(str, paths)),
                         fix="import the annotators' work with `rupture-coder review import` first")
    stats = _new_stats(paths, run_dir, len(run))
    problems: list[Problem] = []
    gold: dict[str, list[Annotation]] = {}
    for (sid, turn), by_source in sorted(codings.items()):
        role = run[sid].turns[turn].speaker_role
        valid = {}
        for source, coding in sorted(by_source.items()):
            annotators[source] += 1
            message = _invalid(coding, source, sid, turn, role, book)
            if message:
                path, line = coding["@"]
                problems.append(Problem("warning", "corrections.coding_skipped", message, str(path), line, sid))
                _count(stats["codings_skipped"], "breaks the coding manual's rules")
                if len(stats["examples"]) < MAX_EXAMPLES:
                    stats["examples"].append(f"{path}:{line}: {message}")
                continue
            valid[source] = {k: v for k, v in coding.items() if k != "@"}
        if not valid:
            _count(stats["turns"]["skipped"], "every coding breaks the coding manual's rules")
            continue
        codes, outcome = resolve(valid, role, book)
        if outcome != "single":
            stats["multi_annotator_turns"][outcome] += 1
        stats["turns"]["used"] += 1
        gold.setdefault(sid, []).extend(Annotation(sid, turn, layer, code, 1.0, SOURCE, book.scheme)
                                        for layer, values in codes.items() for code in values)
    stats["turns"]["reviewed"] = len(codings)
    stats["annotators"] = dict(sorted(annotators.items()))
    corrected = {sid for sid, _ in codings}
    stats["sessions"].update(with_corrections=len(corrected), used=len(gold),
                             run_sessions_without_corrections=len(run) - len(corrected))
    if len(corrected) > len(gold):
        stats["sessions"]["skipped"]["no usable coded turn"] = len(corrected) - len(gold)
    sessions = [run[sid].with_annotations(gold[sid]) for sid in run if sid in gold]  # run order
    stats["session_ids"] = [s.session_id for s in sessions]  # ids only: lets a later round spot overlaps
    files = [_file_entry(Path(p), "corrections") for p in paths]
    files.append(_file_entry(Path(run_dir) / "turns.jsonl", RUN_ROLE, sessions=len(sessions),
                             turns=sum(len(s.turns) for s in sessions)))
    return Corrections(TrainingData(sessions, problems, files), stats)


def _new_stats(paths, run_dir, run_sessions_n: int) -> dict:
    return {"files": [str(p) for p in paths], "run": str(run_dir), "rule": RULE, "source": SOURCE,
            "annotators": {}, "run_sessions": run_sessions_n,
            "sessions": {"with_corrections": 0, "used": 0, "skipped": {}},
            "turns": {"reviewed": 0, "used": 0, "skipped": {}},
            "codings_skipped": {}, "multi_annotator_turns": {"unanimous": 0, "majority": 0, "tie": 0},
            "examples": []}


def _count(counter: dict, reason: str) -> None:
    counter[reason] = counter.get(reason, 0) + 1


def _invalid(coding: dict, source: str, sid: str, turn: int, role: str, book: Codebook) -> str | None:
    """Why one annotator's coding of a turn breaks the manual's rules (None when it does not)."""
    where = f"{source}, session {sid} turn {turn}"
    codes = {k: v for k, v in coding.items() if k != "@"}
    for name, values in codes.items():
        if book.layer(name).kind == "single" and len(values) > 1:
            return f"{where}, layer {name}: {len(values)} codes ({', '.join(values)}); a turn takes one"
    try:
        check_coding(book, role, codes, None, where, "layer")
    except LabelError as err:
        return str(err)
    return None
