"""CLI command ``code``: runs the Prefect flow ``code_corpus`` with a progress bar and summary."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.cli._app import ColumnsOpt, FormatOpt, RolesOpt, SpeakerFixOpt, app, console, parse_columns, user_errors
from pipeline.errors import ConfigError, RuptureCoderError
from pipeline.cli.interrupts import exit_on_interrupt
from pipeline.io.readers import FORMATS, require_inputs
from pipeline.io.readers.roles import parse_roles
from pipeline.io.speakers import read_speaker_corrections


def check_out_dir(out: Path, inputs: list[Path], overwrite: bool, config_json: dict) -> None:
    """Outputs never overwrite inputs, nor a foreign folder or a different run unless asked."""
    out_real = out.resolve()
    for path in inputs:
        real = path.resolve()
        if real == out_real or out_real in real.parents or real in out_real.parents:
            raise ConfigError("--out overlaps an input", path=out, found=f"input {path}",
                              fix="choose an output folder outside the inputs")
    if out.exists() and not out.is_dir():
        raise ConfigError("--out is a file, not a folder", path=out, fix="choose a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    run_json = out / "run.json"
    is_run = run_json.exists() or (out / ".state").is_dir()
    if not is_run and not overwrite:
        raise ConfigError("--out is a non-empty folder that is not a rupture-coder run", path=out,
                          fix="choose a new folder, or pass --overwrite")
    if run_json.exists() and not overwrite:
        try:
            previous = json.loads(run_json.read_text(encoding="utf-8")).get("config", {})
        except (OSError, ValueError):
            previous = {}
        if previous and previous != config_json:
            raise ConfigError("--out holds a run with a different configuration", path=out,
                              fix="use a new folder, or pass --overwrite to recode into it")


ManifestOpt = Annotated[Optional[Path], typer.Option("--manifest", help="Sessions manifest (CSV: session_id, case_id or client_id, therapist_id, session_number or date): writes cases.csv/.jsonl, cases/<case>.png and case pages. See docs/formats-and-outputs.md.")]


def _cases(out: Path, manifest: Path, png: bool) -> None:
    from pipeline.run.cases import write_cases

    result = write_cases(out, manifest, png)
    console.print(f"cases: {result['n_cases']} (report/cases.html); {result['sessions_without_case']} coded "
                  f"session(s) in no case; {result['unmatched_manifest_rows']} manifest row(s) naming no coded session",
                  highlight=False)


@app.command()
def cases(
    run_dir: Annotated[Path, typer.Argument(help="Run folder written by `rupture-coder code`.")],
    manifest: Annotated[Path, typer.Option("--manifest", help="Sessions manifest (CSV: session_id, case_id or client_id, therapist_id, session_number or date).")],
    png: Annotated[bool, typer.Option("--png/--no-png", help="Write cases/<case>.png (the rating trend, for papers).")] = True,
) -> None:
    """Group a run's sessions into cases (clients) by a sessions manifest: cases.csv, cases.jsonl,
    the rating trend per case (PNG) and case pages in the report."""
    with user_errors():
        _cases(run_dir, manifest, png)


@app.command()
def code(
    inputs: Annotated[list[Path], typer.Argument(help="Transcript files or folders.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (resumable: re-running skips unchanged sessions).")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model bundle path or NAME/VERSION (default: the shipped model).")] = None,
    fmt: FormatOpt = None, roles: RolesOpt = None, columns: ColumnsOpt = None,
    speaker_corrections: SpeakerFixOpt = None,
    runner: Annotated[str, typer.Option(help="auto (default: one small input file, or a re-run of a finished run with at most 2 MiB of new or changed input files, in the background worker if one runs for this model, else inline; corpora local), local (Prefect, threads), dask (Prefect on Dask), inline (this process, no Prefect), or worker (the background worker: `rupture-coder worker start`).")] = "auto",
    workers: Annotated[int, typer.Option(help="Parallel chunks (local threads or Dask workers).")] = 1,
    address: Annotated[Optional[str], typer.Option(help="Existing Dask scheduler, e.g. tcp://HOST:8786 (with --runner dask).")] = None,
    phi: Annotated[str, typer.Option(help="De-identification gate: fail (skip sessions with findings), redact, or warn.")] = "fail",
    chunk_size: Annotated[int, typer.Option(help="Sessions per Prefect task chain.")] = 16,
    no_merge: Annotated[bool, typer.Option("--no-merge", help="Do not merge consecutive fragments of one speaker.")] = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Embedding cache folder (default: OUT/.cache).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Allow writing into a non-run folder or over a run with another configuration.")] = False,
    png: Annotated[bool, typer.Option("--png/--no-png", help="Write timelines/<session>.png (matplotlib, about 50-70 ms a session).")] = True,
    manifest: ManifestOpt = None,
) -> None:
    """Code transcripts: read, check de-identification, segment, embed, classify, build
    episodes and timelines, write corpora and reports."""
    with user_errors():
        if manifest is not None:  # a bad manifest fails before any coding
            from pipeline.io.manifest import read_manifest

            read_manifest(manifest)
        summary, seconds = _code(inputs, out, model, fmt, roles, columns, runner, workers, address, phi,
                                 chunk_size, no_merge, cache_dir, overwrite, png, speaker_corrections)
        if manifest is not None:
            _cases(out, manifest, png)
    _print_summary(summary, seconds, out)
    if summary["sessions_failed"] or summary["files_failed"]:
        raise typer.Exit(1)


def _code(inputs, out, model, fmt, roles, columns, runner, workers, address, phi, chunk_size, no_merge,
          cache_dir, overwrite, png=True, speaker_corrections=None):
    if runner not in RUNNERS:
        raise ConfigError(f"unknown --runner {runner!r}", expected=", ".join(RUNNERS))
    from pipeline.run.config import STATE_DIR, RunConfig  # not run.steps: scikit-learn is not needed yet

    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}", expected=", ".join(FORMATS))
    config = RunConfig(out=str(out), model=model, fmt=fmt, roles=tuple(sorted(parse_roles(roles).items())),
                       columns=tuple(sorted(parse_columns(columns).items())), phi=phi, chunk_size=chunk_size,
                       merge_same_speaker=not no_merge, cache_dir=str(cache_dir or out / ".cache"), png=png,
                       speaker_corrections=tuple(str(Path(p).resolve()) for p in speaker_corrections or ()))
    if speaker_corrections:
        read_speaker_corrections(config.speaker_corrections)  # a bad table fails here, before any work
    # what changes outputs, as run.json records it (runner and workers change none; chunk size only the last
    # bits of a score, through the batches the encoder saw: docs/formats-and-outputs.md)
    config_json = {"model": model, "format": fmt, "roles": dict(config.roles), "columns": dict(config.columns),
                   "phi": phi, "merge_same_speaker": not no_merge}
    if not png:  # recorded only when off, so runs made before the option keep their configuration
        config_json["png"] = False
    if speaker_corrections:  # likewise
        config_json["speaker_corrections"] = list(config.speaker_corrections)
    require_inputs(inputs)  # an empty folder or a mistyped path: refused before any folder is made
    check_out_dir(out, inputs, overwrite, config_json)
    # mark the folder as a run before anything is written into it, so that a run killed early
    # (leaving only the embedding cache, say) can be resumed without --overwrite
    (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
    return _run_with_progress([str(p) for p in inputs], config, runner, workers, address)


RUNNERS = ("auto", "local", "dask", "inline", "worker")
INLINE_MAX_BYTES = 2 * 2**20  # --runner auto codes one input file up to this size without Prefect


def choose_runner(runner: str, inputs: list[str], changed_bytes: int | None = None) -> str:
    """``auto``: ``inline`` (this process, no Prefect server to start: a single session back in
    seconds) when no Prefect server is configured (PREFECT_API_URL) and the work is small: one
    input file of at most INLINE_MAX_BYTES, or a re-run of a complete run in which the files new
    or changed since total at most that (``changed_bytes``, from :func:`uptodate.inspect`: the
    rest is only the rebuild of the corpus files); else ``local`` (Prefect, the orchestrator for
    corpora)."""
    if runner != "auto":
        return runner
    from pipeline.io.readers import expand_paths

    files, _ = expand_paths(inputs)
    small = len(files) == 1 and files[0].is_file() and files[0].stat().st_size <= INLINE_MAX_BYTES
    small = small or (changed_bytes is not None and changed_bytes <= INLINE_MAX_BYTES)
    return "inline" if small and not os.environ.get("PREFECT_API_URL") else "local"


INTERRUPTED_MESSAGE = ("interrupted: sessions coded so far are kept; run the same command again to "
                       "resume")


def is_output_error(err: OSError) -> bool:
    """A disk or permission problem while writing (not a connection error of Prefect's API)."""
    return not isinstance(err, ConnectionError) and err.errno in (
        errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG)


def _progress_bar():
    """The run's progress bar, and the hook that the runners report plan and progress to."""
    progress = Progress(TextColumn("[bold]coding"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("sessions · {task.fields[turns]} turns"), TimeElapsedColumn(), console=console)
    bar = progress.add_task("sessions", total=None, turns=0)

    def hook(event: str, sessions: int, turns: int) -> None:
        if event == "plan":
            progress.update(bar, total=sessions)
        else:
            progress.update(bar, advance=sessions, turns=progress.tasks[bar].fields["turns"] + turns)

    return progress, hook


def _output_error(err: OSError, out) -> BaseException:
    """A disk or permission problem while writing as the CLI's error; any other OSError as it is."""
    if not is_output_error(err):
        return err
    return RuptureCoderError("could not write the outputs", path=err.filename or out,
                             found=err.strerror or type(err).__name__,
                             fix="free disk space or fix permissions, then run the same command again "
                                 "(sessions already written are kept)")


def _run_with_progress(inputs, config, runner, workers, address):
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # Prefect's temporary API server needs 11-17 s to start here, more on a loaded machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from pipeline.run import uptodate
    from pipeline.run.prewarm import warm_model

    start = time.perf_counter()
    done, changed_bytes = uptodate.inspect(inputs, config)
    if done is not None:  # every output is current for these inputs: no parsing, no Prefect, no model
        return done, time.perf_counter() - start
    asked, runner = runner, choose_runner(runner, inputs, changed_bytes)
    if runner == "worker" or (asked == "auto" and runner == "inline"):
        summary = _run_in_worker(inputs, config, explicit=runner == "worker")
        if summary is not None:
            return summary, time.perf_counter() - start
        runner = "inline"  # no worker for this model (or a stale socket): in this process, as before
    encoder = None
    # a run into an existing embedding cache (a re-run, a shared --cache-dir) may find every text
    # there: the model is then loaded when a text is missing, not at once (issue #15)
    cached = config.cache_dir is not None and (Path(config.cache_dir) / "embeddings.sqlite").is_file()
    # the model loads in its own process while this one reads the input (or Prefect's server
    # starts), and encodes there while this one checks, classifies and writes
    if runner == "inline" or _flow_uses_encoder_process(runner, workers):
        from pipeline.run.encoder import start_for_model

        encoder = start_for_model(config.model, defer=cached)
        if encoder is not None:  # this process will not run torch: spaCy is imported without it
            from pipeline.run.encoder import import_spacy_without_torch

            import_spacy_without_torch()
    if runner in ("local", "inline"):  # load the model while Prefect's server starts or the input is read
        warm_model(config.model, config.cache_dir, config.png, embedder=encoder is None and not cached)

    progress, hook = _progress_bar()

    try:
        if runner == "inline":
            from pipeline.run.local import code_corpus

            with progress, exit_on_interrupt(INTERRUPTED_MESSAGE, lambda: console.show_cursor(True)):
                summary = code_corpus(inputs, config, progress=hook, encoder=encoder)
        else:
            from flows import code_corpus as flow_module

            with flow_module.progress(hook), progress, exit_on_interrupt(INTERRUPTED_MESSAGE,
                                                                         lambda: console.show_cursor(True)):
                summary = flow_module.run_code_corpus(inputs, config, runner, workers, address, encoder)
    except OSError as err:
        raise _output_error(err, config.out) from None
    except RuntimeError as err:
        if "Prefect API server" not in str(err):
            raise
        raise ConfigError("could not start Prefect's temporary API server",
                          found=str(err).splitlines()[0],
                          fix="raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or point "
                              "PREFECT_API_URL at a running server (see docs/deployment.md)") from None
    finally:
        if encoder is not None:
            encoder.close()
    return summary, time.perf_counter() - start


def _flow_uses_encoder_process(runner: str, workers: int) -> bool:
    from flows.code_corpus import uses_encoder_process  # Prefect: imported for the flow anyway

    return uses_encoder_process(runner, workers)


def _run_in_worker(inputs, config, explicit: bool) -> dict | None:
    """The job through the background worker (:mod:`pipeline.run.worker`), with the same
    progress bar, messages and exit statuses as in process; None when no worker runs this
    model and code (``--runner auto``; ``--runner worker`` then stops with an error)."""
    from pipeline.run import worker

    conn = worker.worker_for(config.model, explicit)
    if conn is None:
        return None
    progress, hook = _progress_bar()

    def queued() -> None:
        progress.console.print("the background worker is busy with another job: waiting", highlight=False)

    try:
        with progress, exit_on_interrupt(INTERRUPTED_MESSAGE, lambda: console.show_cursor(True)):
            return worker.run_job(conn, inputs, config, hook, queued)
    except worker.WorkerUnavailable as why:  # it stopped before starting the job: nothing written
        if explicit:
            raise ConfigError("the background worker stopped before the job", found=str(why),
                              fix=worker.START_FIX) from None
        return None
    except OSError as err:
        raise _output_error(err, config.out) from None
    finally:
        conn.close()


def _print_summary(summary: dict, seconds: float, out: Path) -> None:
    table = Table(title="Run summary", show_header=False)
    table.add_column("what")
    table.add_column("n", justify="right")
    rows = [("sessions in inputs", summary["sessions_total"]), ("coded this run", summary["coded_this_run"]),
            ("skipped (unchanged)", summary["sessions_skipped_unchanged"]),
            ("failed sessions", summary["sessions_failed"]), ("failed files", summary["files_failed"]),
            ("turns in outputs", summary["turns"]), ("withdrawal turns", summary["withdrawal_turns"]),
            ("confrontation turns", summary["confrontation_turns"]), ("repair attempts", summary["repair_attempts"]),
            ("episodes (resolved)", f"{summary['episodes']} ({summary['resolved_episodes']})"),
            ("time", f"{seconds:.1f} s")]
    for what, n in rows:
        table.add_row(what, str(n))
    console.print(table)
    for failure in summary.get("failures", [])[:20]:
        console.print(f"[red]failed[/red] {failure}", highlight=False)
    for problem in summary.get("plan_problems", [])[:20]:
        console.print(f"[yellow]{problem.level}[/yellow] {problem.render()}", highlight=False)
    if summary.get("up_to_date"):
        console.print("nothing to do: the outputs are current for these inputs, options and model")
    console.print(f"outputs in {out} (report: {out / 'report' / 'index.html'}; details: {out / 'run.json'})")
