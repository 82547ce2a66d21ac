"""Agreement between coders: the model and each annotator, and annotators among themselves.

Coders are the sources of the label layers (``human:<id>``) and, with a run, the model
(``model:<name>@<version>`` from the run's ``turns.jsonl``). An item is a turn; a coder has
coded a client (therapist) turn when it has any code of a client (therapist) layer for it, and
is missing otherwise (Krippendorff's alpha takes missing data; pairwise figures use the turns
both coded).

Per layer (whole layer, nominal) and per code (present/absent, binary) for every pair of coders:
n items, percent agreement, Cohen's kappa (scikit-learn), Krippendorff's alpha (nominal, the
``krippendorff`` package) and the confusion matrix (rows: first coder, columns: second). For
three or more coders, alpha over all of them (and over all humans) with percent agreement as the
mean share of agreeing coder pairs per item. Undefined figures (a single value throughout, no
shared items) are None.

Segment level: 3RS-style salience of withdrawal and confrontation per segment
(:mod:`pipeline.episodes` rules) computed from each coder's rupture codes on the client turns
that every coder of the comparison coded (times and roles from the run), compared by ICC(2,1)
(:func:`icc_2_1`).
"""

from __future__ import annotations

import html
import itertools
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np

from pipeline.codebook import Codebook, load_codebook
from pipeline.episodes import TYPES, CodedTurn, segments
from pipeline.errors import ConfigError, LabelError
from pipeline.io.files import atomic_write, write_json
from pipeline.io.run_folder import RunFolder
from pipeline.records import TurnRecord
from pipeline.review.batch import model_codes
from pipeline.review.importing import read_human_layer

LAYER_CHOICES = ("rupture", "markers", "repair", "strategies", "all")
WHOLE = "*"


def icc_2_1(ratings) -> float | None:
    """ICC(2,1) of Shrout & Fleiss (1979): two-way random effects, absolute agreement, single
    rater, for an ``n targets x k raters`` array without missing values. From the mean squares
    of the two-way ANOVA without replication (m: grand mean, m_i.: target means, m_.j: rater means)::

        MSR = k * sum_i (m_i. - m)^2 / (n - 1)                      targets (rows)
        MSC = n * sum_j (m_.j - m)^2 / (k - 1)                      raters (columns)
        MSE = sum_ij (x_ij - m_i. - m_.j + m)^2 / ((n - 1)(k - 1))  residual
        ICC(2,1) = (MSR - MSE) / (MSR + (k - 1) MSE + k (MSC - MSE) / n)

    None when n < 2, k < 2 or the denominator is 0 (no variance at all)."""
    y = np.asarray(ratings, dtype=float)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2 or np.isnan(y).any():
        return None
    n, k = y.shape
    grand, rows, cols = y.mean(), y.mean(axis=1), y.mean(axis=0)
    msr = k * ((rows - grand) ** 2).sum() / (n - 1)
    msc = n * ((cols - grand) ** 2).sum() / (k - 1)
    mse = ((y - rows[:, None] - cols[None, :] + grand) ** 2).sum() / ((n - 1) * (k - 1))
    denom = msr + (k - 1) * mse + k * (msc - mse) / n
    return None if abs(denom) < 1e-12 else float((msr - mse) / denom)


def _clean(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4) + 0.0  # no -0.0


def alpha(matrix: list[list], labels: list) -> float | None:
    """Krippendorff's alpha (nominal) of a coders x items matrix of labels (None = missing)."""
    import krippendorff

    index = {v: i for i, v in enumerate(labels)}
    data = np.array([[np.nan if v is None else index[v] for v in row] for row in matrix], dtype=float)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return _clean(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal",
                                             value_domain=list(range(len(labels)))))
    except ValueError:  # fewer than two values, or no item coded by two coders
        return None


def pair_stats(a: list, b: list, labels: list) -> dict:
    """Pairwise figures for two aligned label lists (None = not coded)."""
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    both = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    out = {"n_items": len(both), "percent_agreement": None, "cohen_kappa": None,
           "krippendorff_alpha": alpha([a, b], labels), "confusion": None}
    if both:
        xs, ys = [x for x, _ in both], [y for _, y in both]
        out["percent_agreement"] = round(100.0 * sum(x == y for x, y in both) / len(both), 2)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out["cohen_kappa"] = _clean(cohen_kappa_score(xs, ys, labels=labels))
        out["confusion"] = {"labels": [str(v) for v in labels],
                            "matrix": confusion_matrix(xs, ys, labels=labels).tolist()}
    return out


def group_stats(matrix: list[list], labels: list) -> dict:
    """Figures for three or more coders: alpha and mean pairwise percent agreement per item."""
    shares = []
    for values in zip(*matrix):
        present = [v for v in values if v is not None]
        pairs = list(itertools.combinations(present, 2))
        if pairs:
            shares.append(sum(x == y for x, y in pairs) / len(pairs))
    return {"n_items": len(shares), "percent_agreement": round(100.0 * sum(shares) / len(shares), 2) if shares else None,
            "cohen_kappa": None, "krippendorff_alpha": alpha(matrix, labels), "confusion": None}


# ---------------------------------------------------------------- loading coders

def load_coders(label_paths: list[str | Path], run_turns: list[TurnRecord] | None, book: Codebook) -> dict[str, dict]:
    """``{source: {(session_id, turn): {layer: codes}}}`` from layer files and the run's model."""
    coders: dict[str, dict] = {}
    for record in run_turns or ():
        if record.model and any(l.applies_to == record.speaker for l in book.layers.values()):
            coders.setdefault(f"model:{record.model}", {})[record.key] = model_codes(record, book)
    for path in label_paths:
        for record in read_human_layer(path, book):
            turn = coders.setdefault(record["source"], {}).setdefault((record["session_id"], record["turn"]), {})
            codes = turn.setdefault(record["layer"], ())
            if record["code"] not in codes:
                turn[record["layer"]] = codes + (record["code"],)
            if book.layer(record["layer"]).kind == "single" and len(turn[record["layer"]]) > 1:
                raise LabelError(f"{record['source']} gives session {record['session_id']} turn {record['turn']} "
                                 f"two {record['layer']} codes", path=path, found=", ".join(turn[record["layer"]]))
    if not coders:
        raise ConfigError("no coders found", fix="name label files (and --run RUN_DIR for the model)")
    return dict(sorted(coders.items(), key=lambda kv: (not kv[0].startswith("model:"), kv[0])))


def _coded(codes: Mapping, layer: str, book: Codebook) -> bool:
    role = book.layer(layer).applies_to
    return any(n in codes for n, l in book.layers.items() if l.applies_to == role)


def _values(coders: dict, names: list[str], layer: str, code: str, book: Codebook) -> tuple[list[list], list]:
    """Aligned values per coder over the items any of them coded, and the label set."""
    items = sorted({k for n in names for k, c in coders[n].items() if _coded(c, layer, book)})
    single = code == WHOLE
    matrix = []
    for n in names:
        row = []
        for key in items:
            codes = coders[n].get(key)
            if codes is None or not _coded(codes, layer, book):
                row.append(None)
            elif single:
                row.append((codes.get(layer) or (book.layer(layer).default,))[0])
            else:
                row.append(int(code in codes.get(layer, ())))
        matrix.append(row)
    return matrix, (list(book.layer(layer).values) if single else [0, 1])


def comparisons(names: list[str]) -> list[tuple[str, list[str]]]:
    out = [(f"{a} vs {b}", [a, b]) for a, b in itertools.combinations(names, 2)]
    humans = [n for n in names if not n.startswith("model:")]
    if len(names) >= 3:
        out.append(("all coders", list(names)))
    if len(humans) >= 3 and len(humans) < len(names):
        out.append(("all humans", humans))
    return out


def code_rows(coders: dict, layers: list[str], book: Codebook) -> list[dict]:
    rows = []
    for label, names in comparisons(list(coders)):
        for layer in layers:
            codes = ([WHOLE] if book.layer(layer).kind == "single" else []) + list(book.layer(layer).values)
            for code in codes:
                matrix, labels = _values(coders, names, layer, code, book)
                stats = pair_stats(matrix[0], matrix[1], labels) if len(names) == 2 else group_stats(matrix, labels)
                counts = {n: sum(1 for v in row if v is not None and (v == 1 if code != WHOLE else v != book.layer(layer).default))
                          for n, row in zip(names, matrix)}
                rows.append({"comparison": label, "coders": names, "layer": layer, "code": code, **stats,
                             "positives": counts})
    return rows


def segment_rows(coders: dict, run_turns: list[TurnRecord] | None, book: Codebook) -> list[dict]:
    """ICC(2,1) of segment salience per comparison and rupture type (needs the run)."""
    if not run_turns:
        return []
    rupture = next(n for n, l in book.layers.items() if l.kind == "single" and l.applies_to == "client")
    sessions: dict[str, list[TurnRecord]] = {}
    for r in run_turns:
        if r.speaker == "client":
            sessions.setdefault(r.session_id, []).append(r)
    rows = []
    for label, names in comparisons(list(coders)):
        targets = {kind: [] for kind in TYPES}
        for sid, turns in sessions.items():
            common = [r for r in turns if all(rupture in coders[n].get(r.key, {}) for n in names)]
            if not common:
                continue
            per_coder = [segments([_coded_turn(r, coders[n][r.key], n, rupture) for r in common]) for n in names]
            for segs in zip(*per_coder):
                for kind in TYPES:
                    targets[kind].append([s.salience[kind] for s in segs])
        for kind in TYPES:
            rows.append({"comparison": label, "coders": names, "type": kind, "n_segments": len(targets[kind]),
                         "icc_2_1": _clean(icc_2_1(targets[kind])) if targets[kind] else None,
                         "mean_salience": {n: round(float(np.mean([t[j] for t in targets[kind]])), 3) if targets[kind] else None
                                           for j, n in enumerate(names)}})
    return rows


def _coded_turn(record: TurnRecord, codes: Mapping, source: str, rupture: str) -> CodedTurn:
    code = (codes.get(rupture) or (None,))[0]
    score = 1.0
    if source.startswith("model:") and record.rupture_scores:
        score = 1.0 - float(record.rupture_scores.get("none") or 0.0)
    return CodedTurn(record.turn, "client", record.start, record.end, code, score)


def agreement(label_paths: list[str | Path], run_dir: str | Path | None = None, layer: str = "all",
              book: Codebook | None = None) -> dict:
    """The agreement report (JSON-ready): code-level rows and segment-level ICC rows."""
    if layer not in LAYER_CHOICES:
        raise ConfigError(f"unknown --layer {layer!r}", expected=", ".join(LAYER_CHOICES))
    book = book or load_codebook()
    run_turns = RunFolder(run_dir).turns() if run_dir else None
    coders = load_coders(label_paths, run_turns, book)
    if len(coders) < 2:
        raise ConfigError("agreement needs at least two coders", found=", ".join(coders),
                          fix="add another annotator's labels, or --run RUN_DIR for the model")
    layers = list(book.layers) if layer == "all" else [layer]
    with_segments = layer in ("all", "rupture")  # salience comes from the rupture codes
    return {"scheme": f"{book.scheme}@{book.version}", "coders": list(coders),
            "label_files": [str(p) for p in label_paths], "run": str(run_dir) if run_dir else None,
            "layers": layers, "rows": code_rows(coders, layers, book),
            "segments": segment_rows(coders, run_turns, book) if with_segments else [],
            "segment_note": "segment salience per annotation_guides/segment_ratings.md on the client turns every coder "
                            "of a comparison coded; ICC(2,1) Shrout & Fleiss" if run_turns and with_segments
            else ("needs --run RUN_DIR" if with_segments else "only with --layer rupture or all")}


# ---------------------------------------------------------------- rendering

def fmt(x, digits: int = 3) -> str:
    return "–" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def informative(row: dict) -> bool:
    """Whole-layer rows, and code rows where some coder used the code."""
    return row["code"] == WHOLE or any(row["positives"].values())


def markdown(report: dict) -> str:
    lines = [f"# Agreement ({report['scheme']})", "", f"Coders: {', '.join(report['coders'])}", "",
             "| comparison | layer | code | n | % agree | kappa | alpha | positives |", "|---|---|---|---:|---:|---:|---:|---|"]
    for r in report["rows"]:
        pos = "; ".join(f"{k}: {v}" for k, v in r["positives"].items())
        lines.append(f"| {r['comparison']} | {r['layer']} | {r['code']} | {r['n_items']} | {fmt(r['percent_agreement'])} | "
                     f"{fmt(r['cohen_kappa'])} | {fmt(r['krippendorff_alpha'])} | {pos} |")
    lines += ["", "## Segment salience (ICC(2,1))", "", f"{report['segment_note']}", "",
              "| comparison | type | segments | ICC(2,1) |", "|---|---|---:|---:|"]
    lines += [f"| {s['comparison']} | {s['type']} | {s['n_segments']} | {fmt(s['icc_2_1'])} |" for s in report["segments"]]
    lines += ["", "Codes with few positives give unstable alpha and kappa: read them with their counts.", ""]
    return "\n".join(lines)


def html_page(report: dict) -> str:
    """A small self-contained HTML page (everything escaped, no external URLs)."""
    e = lambda x: html.escape(fmt(x) if not isinstance(x, str) else x)  # noqa: E731
    rows = "".join(
        f"<tr><td>{e(r['comparison'])}</td><td>{e(r['layer'])}</td><td>{e(r['code'])}</td><td>{r['n_items']}</td>"
        f"<td>{e(r['percent_agreement'])}</td><td>{e(r['cohen_kappa'])}</td><td>{e(r['krippendorff_alpha'])}</td>"
        f"<td>{e('; '.join(f'{k}: {v}' for k, v in r['positives'].items()))}</td></tr>" for r in report["rows"])
    segs = "".join(f"<tr><td>{e(s['comparison'])}</td><td>{e(s['type'])}</td><td>{s['n_segments']}</td>"
                   f"<td>{e(s['icc_2_1'])}</td></tr>" for s in report["segments"])
    confusions = "".join(_confusion_html(r) for r in report["rows"] if r["code"] == WHOLE and r["confusion"])
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Agreement</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}</style></head><body>"
            f"<h1>Agreement ({e(report['scheme'])})</h1><p>Coders: {e(', '.join(report['coders']))}</p>"
            "<table><tr><th>comparison</th><th>layer</th><th>code</th><th>n</th><th>% agree</th><th>kappa</th>"
            f"<th>alpha</th><th>positives</th></tr>{rows}</table><h2>Segment salience, ICC(2,1)</h2>"
            f"<p>{e(report['segment_note'])}</p><table><tr><th>comparison</th><th>type</th><th>segments</th>"
            f"<th>ICC(2,1)</th></tr>{segs}</table><h2>Confusion matrices</h2>{confusions}</body></html>\n")


def _confusion_html(row: dict) -> str:
    labels = row["confusion"]["labels"]
    head = "".join(f"<th>{html.escape(v)}</th>" for v in labels)
    body = "".join(f"<tr><th>{html.escape(v)}</th>{''.join(f'<td>{n}</td>' for n in counts)}</tr>"
                   for v, counts in zip(labels, row["confusion"]["matrix"]))
    title = f"{row['comparison']}: {row['layer']} (rows {row['coders'][0]}, columns {row['coders'][1]})"
    return f"<h3>{html.escape(title)}</h3><table><tr><th></th>{head}</tr>{body}</table>"


def write_report(report: dict, out_dir: str | Path) -> list[Path]:
    """Write agreement.json, agreement.md and agreement.html into ``out_dir``."""
    out_dir = Path(out_dir)
    paths = [out_dir / "agreement.json", out_dir / "agreement.md", out_dir / "agreement.html"]
    write_json(paths[0], report)
    atomic_write(paths[1], markdown(report))
    atomic_write(paths[2], html_page(report))
    return paths
