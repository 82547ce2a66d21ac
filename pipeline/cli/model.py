"""CLI commands for models and training data: ``train``, ``evaluate``, ``adapt``, ``corpus-stats``, ``upgrade-bundle``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli._app import ColumnsOpt, FormatOpt, RolesOpt, app, console, read_options, user_errors
from pipeline.errors import ConfigError
from pipeline.io.files import atomic_write

DataArg = Annotated[Optional[list[Path]], typer.Argument(help="Labelled transcripts (CSV/JSONL with label columns). Default: the shipped constructed corpus.")]
RealOpt = Annotated[Optional[Path], typer.Option("--real-data", help="Folder of real transcripts (e.g. ../shared/data) to join with --labels.")]
LabelsOpt = Annotated[Optional[list[Path]], typer.Option("--labels", help="Label tables keyed by dataset, session_id, turn_id (default with --real-data: corpus/real_labels/coder_a_*.csv).")]
CorrectionsOpt = Annotated[Optional[list[Path]], typer.Option("--corrections", help="Human layer (JSON lines from `review import`) of annotators' corrected codes; needs --run. Repeatable.")]
RunOpt = Annotated[Optional[Path], typer.Option("--run", help="The run folder (turns.jsonl) the corrections belong to: turn text, roles and order.")]


def _training_data(data, constructed, real_data, labels, fmt, roles, columns, corrections=None, run_dir=None):
    """Training data from every named source; returns it and the corrections' counts (or None)."""
    from pipeline.modeling.training import TrainingData, load_constructed, load_labelled_transcripts, load_real

    if run_dir is not None and not corrections:
        raise ConfigError("--run is only used with --corrections", fix="add --corrections HUMAN.jsonl, or drop --run")
    out, stats = TrainingData(), None
    if corrections:  # first: bad corrections fail before anything slow is read
        from pipeline.review.corrections import load_corrections

        loaded = load_corrections(corrections, run_dir)
        out, stats = out.extend(loaded.data), loaded.stats
    if data:
        opts = read_options(fmt, roles, columns)
        out = out.extend(load_labelled_transcripts(data, opts))
    if constructed or (not data and not real_data and not corrections):
        out = out.extend(load_constructed())
    if real_data:
        out = out.extend(load_real(real_data, labels))
    if not out.sessions:
        raise ConfigError("no training sessions", fix="name labelled files, or use --constructed / --real-data / --corrections")
    return out, stats


def print_corrections(stats: dict) -> None:
    """What the corrections gave: turns and sessions used and skipped (with reasons)."""
    t, s = stats["turns"], stats["sessions"]
    skipped = lambda d: "; ".join(f"{n} {why}" for why, n in d.items()) or "none"  # noqa: E731
    multi = stats["multi_annotator_turns"]
    console.print(f"corrections: {t['used']} of {t['reviewed']} reviewed turn(s) used in {s['used']} session(s) "
                  f"(annotators: {escape(', '.join(f'{k} {v} turns' for k, v in stats['annotators'].items()))}); "
                  f"run sessions without corrections: {s['run_sessions_without_corrections']}", highlight=False)
    console.print(f"  skipped turns: {skipped(t['skipped'])}; skipped sessions: {skipped(s['skipped'])}; "
                  f"skipped codings: {skipped(stats['codings_skipped'])}", highlight=False)
    if sum(multi.values()):
        console.print(f"  turns with several annotators: {multi['unanimous']} unanimous, {multi['majority']} by "
                      f"majority, {multi['tie']} ties (to the first annotator by id)", highlight=False)
    for example in stats["examples"][:5]:
        console.print(f"  [yellow]skipped[/yellow] {escape(example)}", highlight=False)


@app.command()
def train(
    data: DataArg = None,
    out: Annotated[Path, typer.Option("--out", help="New bundle folder, e.g. models/NAME/VERSION.")] = ...,
    constructed: Annotated[bool, typer.Option("--constructed", help="Add the shipped constructed corpus.")] = False,
    real_data: RealOpt = None,
    labels: LabelsOpt = None,
    corrections: CorrectionsOpt = None,
    run_dir: RunOpt = None,
    base_model: Annotated[Optional[str], typer.Option("--base-model", help="Take the model configuration (embedder, head, C, features, folds) from this bundle; the heads are trained anew.")] = None,
    head: Annotated[Optional[str], typer.Option(help="Classifier head: logreg, svm or hgb (default logreg).")] = None,
    embedder: Annotated[Optional[str], typer.Option(help="Embedder registry name (default minilm-l6.v1).")] = None,
    cv: Annotated[int, typer.Option(help="Folds for cross-validated evaluation written into the bundle (0: skip).")] = 5,
    cv_repeats: Annotated[Optional[int], typer.Option("--cv-repeats", help="Draw the inner folds that calibrate the heads and choose the thresholds N times and average their out-of-fold scores: the bundle then does not depend on the order of the training sessions (N times the fitting time of those folds; default: the base model's, else 1).")] = None,
    cache_dir: Annotated[Path, typer.Option(help="Embedding cache folder.")] = Path(".cache/rupture-coder"),
    fmt: FormatOpt = None, roles: RolesOpt = None, columns: ColumnsOpt = None,
) -> None:
    """Train a model bundle and evaluate it by session-grouped cross-validation."""
    with user_errors():
        _train(data, out, constructed, real_data, labels, head, embedder, cv, cache_dir, fmt, roles, columns,
               corrections, run_dir, base_model, cv_repeats)


def model_params(base_model, head, embedder, cache_dir):
    """The parameters of the untrained coder, and the base bundle's ``name@version`` (or None).
    With a base bundle the new model differs from it in its training data only."""
    from pipeline.modeling.bundle import load_bundle

    if base_model is None:
        return {"embedder": embedder or "minilm-l6.v1", "head": head or "logreg", "cache_dir": str(cache_dir)}, None
    bundle = load_bundle(base_model, cache_dir=str(cache_dir))
    params = {**bundle.model.get_params(), "cache_dir": str(cache_dir)}
    for name, value in (("head", head), ("embedder", embedder)):
        if value is not None and value != params[name]:
            raise ConfigError(f"--{name} {value!r} differs from the base model's {params[name]!r}",
                              fix=f"drop --{name}: --base-model fixes the configuration")
    return params, f"{bundle.config['name']}@{bundle.config['version']}"


def _train(data, out, constructed, real_data, labels, head, embedder, cv, cache_dir, fmt, roles, columns,
           corrections=None, run_dir=None, base_model=None, cv_repeats=None) -> None:
    from pipeline.modeling.evaluate import metrics_markdown
    from pipeline.modeling.trainer import Trainer, TrainingArguments

    args = TrainingArguments(out=out, cv_folds=cv, recipe="rupture-coder train")  # checked before any work
    params, base = model_params(base_model, head, embedder, cache_dir)
    if cv_repeats is not None:
        if cv_repeats < 1:
            raise ConfigError("--cv-repeats must be at least 1", found=str(cv_repeats), fix="use --cv-repeats 3")
        params["cv_repeats"] = cv_repeats
    extra = {"base_model": base} if base else {}
    data_, stats = _training_data(data, constructed, real_data, labels, fmt, roles, columns, corrections, run_dir)
    if stats:
        print_corrections(stats)
        extra["corrections"] = stats
    trainer = Trainer(replace(args, params=params, manifest_extra=extra), data_)
    with console.status("training...") as status:
        trainer.progress = lambda message: status.update(f"{message}...")
        path = trainer.train()
    console.print(f"wrote model bundle {path}")
    metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    if metrics.get("cv"):
        console.print(metrics_markdown("Cross-validation (session-grouped)", metrics["cv"]))


@app.command()
def evaluate(
    data: DataArg = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Bundle path or NAME/VERSION (default: the shipped model).")] = None,
    constructed: Annotated[bool, typer.Option("--constructed", help="Evaluate on the shipped constructed corpus.")] = False,
    real_data: RealOpt = None,
    labels: LabelsOpt = None,
    corrections: CorrectionsOpt = None,
    run_dir: RunOpt = None,
    cv: Annotated[int, typer.Option(help="0: score the bundle's fitted model on DATA as held-out data; N: retrain the bundle's configuration in N session-grouped folds of DATA.")] = 0,
    by_corpus: Annotated[bool, typer.Option("--leave-one-corpus-out", help="Retrain the bundle's configuration once per corpus (with --real-data: HLQC low/high, AnnoMI, HOPE, Rogers; else each input file) with that corpus held out, and score it on the held-out corpus.")] = False,
    orders: Annotated[int, typer.Option("--orders", help="With --leave-one-corpus-out: fit each split this many times, the training sessions shuffled, and report each headline figure's minimum, median and maximum (the model's own variance; N times the time).")] = 1,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write metrics JSON and Markdown here (a folder).")] = None,
    cache_dir: Annotated[Path, typer.Option(help="Embedding cache folder.")] = Path(".cache/rupture-coder"),
    fmt: FormatOpt = None, roles: RolesOpt = None, columns: ColumnsOpt = None,
) -> None:
    """Evaluate a model on labelled data (held out), or cross-validate its configuration."""
    with user_errors():
        _evaluate(data, model, constructed, real_data, labels, cv, out, cache_dir, fmt, roles, columns,
                  corrections, run_dir, by_corpus, orders)


def _evaluate(data, model, constructed, real_data, labels, cv, out, cache_dir, fmt, roles, columns,
              corrections=None, run_dir=None, by_corpus=False, orders=1) -> None:
    from pipeline.modeling.bundle import load_bundle
    from pipeline.modeling.estimator import RuptureCoder
    from pipeline.modeling.evaluate import collect, cross_validate, metrics_markdown, score

    if out is not None:
        _check_metrics_out(out)
    if by_corpus and cv:
        raise ConfigError("--leave-one-corpus-out and --cv are two evaluations", fix="choose one")
    if orders != 1 and not by_corpus:
        raise ConfigError("--orders is for --leave-one-corpus-out", found=f"--orders {orders}",
                          fix="add --leave-one-corpus-out, or drop --orders")
    if orders < 1:
        raise ConfigError("--orders must be at least 1", found=str(orders), fix="use --orders 5")
    bundle = load_bundle(model, cache_dir=str(cache_dir))
    data_, stats = _training_data(data, constructed, real_data, labels, fmt, roles, columns, corrections, run_dir)
    if stats:
        print_corrections(stats)
    params = {**bundle.model.get_params(), "cache_dir": str(cache_dir)}
    if by_corpus:
        return _evaluate_by_corpus(bundle, data_.sessions, params, out, orders)
    if cv:
        result = cross_validate(data_.sessions, lambda: RuptureCoder(**params), folds=cv)
    else:
        result = score(collect(bundle.model, data_.sessions))
    title = f"{bundle.config['name']}@{bundle.config['version']} on {len(data_.sessions)} sessions" + (
        f" ({cv}-fold CV)" if cv else " (held out)")
    text = metrics_markdown(title, result)
    console.print(text)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "metrics.json", json.dumps(result, indent=2, default=float) + "\n")
        atomic_write(out / "metrics.md", text)


@app.command()
def adapt(
    data: Annotated[Optional[list[Path]], typer.Argument(help="Labelled transcripts of your corpus (CSV/JSONL with label columns), instead of or besides --corrections.")] = None,
    out: Annotated[Path, typer.Option("--out", help="New bundle folder, e.g. models/my-corpus/2.1.0-a1.")] = ...,
    model: Annotated[Optional[str], typer.Option("--model", help="Bundle path or NAME/VERSION to adapt (default: the shipped model).")] = None,
    real_data: RealOpt = None,
    labels: LabelsOpt = None,
    corrections: CorrectionsOpt = None,
    run_dir: RunOpt = None,
    min_positives: Annotated[int, typer.Option("--min-positives", help="A head keeps its threshold unless the reviewed turns hold at least this many positive turns (ruptures; repairs).")] = 20,
    held_out_check: Annotated[bool, typer.Option("--held-out-check/--no-held-out-check", help="A head keeps its threshold unless the adapted one beats it with each reviewed session left out in turn (needs two or more sessions).")] = True,
    cache_dir: Annotated[Path, typer.Option(help="Embedding cache folder.")] = Path(".cache/rupture-coder"),
    fmt: FormatOpt = None, roles: RolesOpt = None, columns: ColumnsOpt = None,
) -> None:
    """Set a model's rupture and repair thresholds on reviewed sessions of your corpus (a new bundle)."""
    with user_errors():
        _adapt(data, out, model, real_data, labels, corrections, run_dir, min_positives, held_out_check, cache_dir,
               fmt, roles, columns)


def _adapt(data, out, model, real_data, labels, corrections, run_dir, min_positives, held_out_check, cache_dir,
           fmt, roles, columns) -> None:
    from pipeline.modeling.adapt import TABLE_COLUMNS, adapt_thresholds, check_min_positives, save_adapted, table_rows
    from pipeline.modeling.bundle import check_new_bundle_path, load_bundle

    if not data and not real_data and not corrections:
        raise ConfigError("adapt needs reviewed sessions of the corpus to code",
                          fix="give --corrections HUMAN.jsonl --run RUN (from the review loop) or labelled files")
    check_new_bundle_path(out)  # before anything slow
    check_min_positives(min_positives)
    bundle = load_bundle(model, cache_dir=str(cache_dir))
    data_, stats = _training_data(data, False, real_data, labels, fmt, roles, columns, corrections, run_dir)
    if stats:
        print_corrections(stats)
    with console.status(f"scoring {len(data_.sessions)} reviewed session(s)..."):
        adapted, changes = adapt_thresholds(bundle.model, data_.sessions, min_positives, held_out_check)
    table = Table(title=f"thresholds of {bundle.config['name']}@{bundle.config['version']} on "
                        f"{len(data_.sessions)} reviewed session(s)")
    for column in TABLE_COLUMNS:
        table.add_column(column)
    for row in table_rows(changes):
        table.add_row(*map(escape, row))
    console.print(table)
    console.print("F1 is on the reviewed turns themselves (in sample); held-out F1 codes each reviewed session "
                  "with the threshold set on the other reviewed sessions.", highlight=False)
    for c in changes:
        if c.adapted and c.reviewed_turns < c.turns_in_sessions:
            console.print(f"[yellow]warning[/yellow] {c.head}: {c.reviewed_turns} of the {c.turns_in_sessions} "
                          f"turns of the reviewed sessions have a human code; review whole sessions (turns picked "
                          f"by uncertainty bias the threshold)", highlight=False)
    if not any(c.adapted for c in changes):
        raise ConfigError("no threshold could be adapted; no bundle written",
                          found="; ".join(c.kept_because for c in changes if c.kept_because),
                          fix="review more sessions (or lower --min-positives, at the price of a noisier threshold)")
    source = {"corrections": stats} if stats else {}
    path = save_adapted(bundle, adapted, changes, out, len(data_.sessions), source)
    console.print(f"wrote model bundle {path}; code with --model {path}", highlight=False)


def _evaluate_by_corpus(bundle, sessions, params, out, orders=1) -> None:
    from pipeline.modeling.estimator import RuptureCoder
    from pipeline.modeling.evaluate import leave_one_corpus_out, metrics_markdown

    # a corpus: the shared data's corpus (HLQC low/high, AnnoMI, HOPE, Rogers), else the input file
    sessions = [s if s.meta.get("corpus") else replace(s, meta={**s.meta, "corpus": Path(s.source_path).stem or "input"})
                for s in sessions]
    corpora = sorted({str(s.meta["corpus"]) for s in sessions})
    if len(corpora) < 2:
        raise ConfigError("--leave-one-corpus-out needs sessions of at least two corpora",
                          found=f"only {', '.join(corpora)}", fix="add data of another corpus, or use --cv")
    splits = {f"without {c} -> {c}": ([o for o in corpora if o != c], [c]) for c in corpora}
    with console.status(f"leave-one-corpus-out over {len(corpora)} corpora..."):
        result = leave_one_corpus_out(sessions, lambda: RuptureCoder(**params), splits, orders=orders)
    name = f"{bundle.config['name']}@{bundle.config['version']} configuration"
    text = "\n".join(metrics_markdown(f"{name}, leave-one-corpus-out: {k}", v) for k, v in result.items())
    console.print(text)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "metrics.json", json.dumps(result, indent=2, default=float) + "\n")
        atomic_write(out / "metrics.md", text)


def _check_metrics_out(out: Path) -> None:
    """--out of evaluate: a folder that holds no metrics yet (a bundle's metrics are write-once)."""
    if out.exists() and not out.is_dir():
        raise ConfigError("--out must be a folder", path=out, found="a file",
                          fix="name a new folder for metrics.json and metrics.md")
    existing = [name for name in ("metrics.json", "metrics.md") if (out / name).exists()]
    if existing:
        raise ConfigError("--out already holds metrics", path=out, found=", ".join(existing),
                          fix="choose a new folder (never a model bundle: bundles are write-once)")


@app.command("corpus-stats")
def corpus_stats(
    data: DataArg = None,
    real_labels: Annotated[bool, typer.Option("--real-labels", help="Also count the team's real-data label tables.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Sessions, turns and per-code counts of the constructed corpus (or of DATA)."""
    with user_errors():
        _corpus_stats(data, real_labels, as_json)


def _corpus_stats(data, real_labels: bool, as_json: bool) -> None:
    from pipeline.modeling.corpus_stats import label_table_stats, session_stats
    from pipeline.modeling.training import load_constructed, load_labelled_transcripts, real_label_paths

    data_ = load_labelled_transcripts(data) if data else load_constructed()
    stats = {"corpus": session_stats(data_.sessions)}
    if real_labels:
        stats["real_labels"] = {p.name: label_table_stats(p) for p in real_label_paths()}
    if as_json:
        console.print_json(json.dumps(stats))
        return
    s = stats["corpus"]
    console.print(f"{s['sessions']} sessions, {s['turns']} turns ({s['client_turns']} client, "
                  f"{s['therapist_turns']} therapist); rupture turns: {s['rupture']}; repair turns: {s['repair']}")
    table = Table(title="Code counts")
    table.add_column("code")
    table.add_column("count", justify="right")
    for code, n in {**s["markers"], **s["strategies"]}.items():
        table.add_row(code, str(n))
    console.print(table)


@app.command("upgrade-bundle")
def upgrade_bundle_cmd(
    src: Annotated[str, typer.Argument(help="A format-1 bundle (heads.joblib): a folder or NAME/VERSION under models/.")],
    out: Annotated[Path, typer.Option("--out", help="New bundle folder, e.g. models/NAME/VERSION.")] = ...,
) -> None:
    """Convert a format-1 bundle (pickled heads) into bundle format 2 (JSON + safetensors, loads without
    unpickling). It unpickles SRC once: run it only on a bundle you trust."""
    from pipeline.modeling.bundle import upgrade_bundle

    with user_errors():
        path = upgrade_bundle(src, out)
        console.print(f"wrote {escape(str(path))} (bundle format 2)", highlight=False)

