"""``rupture-coder bench``: throughput, latency and scaling, as ratios against the raw encoder.

Every figure is measured in one run on one machine, so the ratios compare like with like
whatever the machine's speed. Measurements (each the best of ``repeat`` runs where repeated):

* ``encoder`` (the baseline): the unique turn texts of the inputs encoded by the bundle's
  embedder directly, after a warm-up (model load is start-up, not throughput); one pass just
  before each cold library run (``passes``), the best of them the baseline.
* ``library_cold`` / ``library_cold_no_png`` / ``library_warm``: the flow's chain called as plain
  Python without Prefect (read and plan, de-identification gate, segmentation, embedding,
  classification, episodes and timelines, per-session and corpus writes), with an empty embedding
  cache, the same without PNG timelines, and with the cache filled. Seconds per step are kept.
  ``library_cold["paired"]``: each cold run against the raw pass just before it
  (:func:`paired_ratios`), the comparison least moved by the machine's drift.
* ``cli_cold``: ``rupture-coder code`` as a user runs it (fresh process, fresh output folder and
  cache; ``--runner auto``, so one small input file runs inline with the encoder process and a
  folder of several files through Prefect's temporary server). ``cli_cold["paired"]``: each run
  against a raw encoder pass timed just before it.
* ``cli_cold_prefect``: the same with ``--runner local``, the path of a corpus of several files
  (Prefect's temporary server; the flow encodes in the encoder process one chunk ahead), each
  run paired with a raw pass of its own as well.
* ``latency``: one short session from command start to report written, and its parts measured
  in fresh processes: interpreter start, CLI imports, model load (torch, sentence-transformers,
  weights, first encode), Prefect's temporary server start; also with a persistent Prefect server
  (``PREFECT_API_URL`` set, no server start); and with a running background worker
  (``rupture-coder worker start`` before the timing; ``one_session_worker``).
* ``scale``: the input sessions replicated to N sessions (one file each, ids made unique) and
  coded by ``rupture-coder code --no-png`` in a fresh process: seconds, turns/s, sessions/min and
  peak resident memory; then the unchanged re-run, and the re-run after one file changed. At
  1,000 sessions (else the largest size) also with each ``--variant``'s extra options, e.g.
  ``--workers 2`` or ``--runner dask --workers 2``. Peak RSS is that of the largest process
  (with Dask, a worker process's memory is not added to the main process's).

Replicated sessions repeat their texts: the encoder sees each unique text once (de-duplication
and the embedding cache), which is what the ratio to the raw encoder on real transcripts shows.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from pipeline.run import steps as lib
from pipeline.run.local import code_corpus
from pipeline.modeling.embed import get_embedder
from pipeline.modeling.features import turn_text
from pipeline.preprocess.segment import segment_session

SCRIPT = Path(sys.executable).parent / "rupture-coder"
ONE_SESSION = ("speaker,text\nT,What would you like to focus on today?\nC,I don't know. Whatever you think.\n"
               "T,It sounds hard to choose. Can we stay with that for a moment?\n")
# peak RSS of a child process tree member, measured by a fresh wrapper process (stdlib only)
RSS_WRAPPER = ("import resource, subprocess, sys, time\n"
               "t = time.perf_counter(); rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL,"
               " stderr=subprocess.PIPE).returncode\n"
               "print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def library_run(inputs: list[str], config: lib.RunConfig) -> dict:
    """The flow's chain, step by step, as plain Python (:func:`pipeline.run.local.code_corpus`);
    seconds per step, the seconds spent inside the encoder (``embed_in_encoder``: the embed
    step's rest is cache look-ups and writes, hashing and stacking) and counts. Starts like a
    fresh ``code`` process."""
    steps: dict[str, float] = {}

    def on_step(name: str, seconds: float) -> None:
        steps[name] = steps.get(name, 0.0) + seconds

    bundle = lib.cached_bundle(config.model, None)
    embedder = get_embedder(bundle.model.embedder)  # the shared instance the embed step uses
    inside = [0.0]
    real = embedder.encode

    def timed(texts, *args, **kwargs):
        start = time.perf_counter()
        try:
            return real(texts, *args, **kwargs)
        finally:
            inside[0] += time.perf_counter() - start

    embedder.encode = timed  # an instance attribute: removed below, the class's method stays
    try:
        summary = code_corpus(inputs, config, on_step, fresh=True)
    finally:
        del embedder.encode
    return {"seconds": sum(steps.values()), "steps": {k: round(v, 2) for k, v in steps.items()},
            "embed_in_encoder": round(inside[0], 2), "sessions": summary["sessions_coded"], "turns": summary["turns"]}


def plain_encode(embedder, texts: list[str]):
    """The raw encoder, the baseline of every ratio: the model on the texts with torch's own
    threads and one model instance (the embed step shares large encodes between instances,
    :meth:`pipeline.modeling.embed.SentenceTransformerEmbedder.encode`; that is the pipeline's
    doing, not the encoder's)."""
    if getattr(embedder, "instances", 1) > 1:
        return embedder.encode(texts, instances=1)
    return embedder.encode(texts)


def paired_ratios(raw: list[float], runs: list[dict]) -> dict:
    """Each cold run against the raw encoder pass timed just before it (pair i: ``raw[i]``, then
    ``runs[i]``). On a shared machine whose speed drifts over minutes, a pair is timed under the
    same conditions, unlike the best raw pass against the best run: ``ratio`` is the raw pass's
    seconds over the run's (the run's throughput as a share of the encoder's), ``embed_step`` and
    ``embed_in_encoder`` the embed step's seconds, and those inside the encoder, over the raw pass's.
    Medians over the pairs beside the lists."""
    from statistics import median

    pairs = list(zip(raw, runs))
    out = {"raw_seconds": [round(t, 2) for t, _ in pairs],
           "ratio": [round(t / r["seconds"], 3) for t, r in pairs]}
    if all("steps" in r for _, r in pairs):  # library runs; a `code` process reports its seconds only
        out["embed_step"] = [round(r["steps"].get("embed", 0.0) / t, 3) for t, r in pairs]
        out["embed_in_encoder"] = [round(r["embed_in_encoder"] / t, 3) for t, r in pairs]
    return {**out, **{f"median_{k}": round(median(v), 3) for k, v in out.items() if k != "raw_seconds" and v}}


def _cli(inputs: list[str], out: Path, env: dict, *extra: str) -> dict:
    """``rupture-coder code`` in a fresh process: exit status, seconds and peak RSS (MiB)."""
    cmd = [sys.executable, "-c", RSS_WRAPPER, str(SCRIPT), "code", *inputs, "--out", str(out), "--phi", "warn", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    rc, seconds, rss_kib = proc.stdout.split()
    if int(rc) not in (0, 1):  # 1: some session failed (reported), still a complete run
        raise RuntimeError(f"rupture-coder code exited {rc}: {proc.stderr.strip().splitlines()[-1:]}")
    return {"seconds": round(float(seconds), 2), "peak_rss_mib": round(int(rss_kib) / 1024)}


def _seconds(code: str, env: dict) -> float:
    """Wall time of ``python -c code`` in a fresh process (what it prints, if a number, wins)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - start
    try:
        return round(float(proc.stdout.strip().splitlines()[-1]), 2)
    except (ValueError, IndexError):
        return round(wall, 2)


def replicate(sessions: list, n: int, folder: Path) -> list[str]:
    """N canonical CSV files, one session each, cycling through ``sessions``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        session = sessions[i % len(sessions)]
        with open(folder / f"s{i:05d}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["session_id", "turn", "speaker", "start", "end", "text"])
            for j, t in enumerate(session.turns):
                speaker = {"therapist": "T", "client": "C"}.get(t.speaker_role, "O")
                writer.writerow([f"r{i:05d}", j + 1, speaker, "" if t.start_s is None else t.start_s,
                                 "" if t.end_s is None else t.end_s, t.text])
    return [str(folder)]


def embedded_texts(inputs: list[str], plan_dir: Path, model: str | None = None) -> tuple[list, list[str]]:
    """The inputs' sessions as read, and the texts the pipeline embeds, in order: the turns after
    segmentation (fragments of one speaker merged). Their unique ones are what the raw encoder,
    the baseline of every ratio, encodes. ``plan_dir``: a folder for the run plan."""
    base = lib.RunConfig(out=str(plan_dir), model=model, phi="warn")
    sessions = [lib.read_session(task, base) for task in lib.plan_run(inputs, base).tasks]
    return sessions, [turn_text(t) for s in sessions for t in segment_session(s, base.segment).turns]


def measure(inputs: list[str], work: Path, model: str | None = None, repeat: int = 2, sizes: tuple[int, ...] = (),
            cli: bool = True, variants: tuple[str, ...] = ()) -> dict:
    import torch

    base = lib.RunConfig(out="", model=model, phi="warn")
    sessions, texts = embedded_texts(inputs, work / "plan", model)  # read once: texts and replicas
    unique = list(dict.fromkeys(texts))
    bundle = lib.cached_bundle(model, None)
    embedder = get_embedder(bundle.model.embedder)
    embedder.encode(["warm-up"])
    times: list[float] = []  # the raw encoder's passes: one at the start, one before each cold library run

    def raw_pass() -> float:
        start = time.perf_counter()
        plain_encode(embedder, unique)
        times.append(time.perf_counter() - start)
        return times[-1]

    fast = None  # measured first, so that the raw pass below comes just before the first cold run
    if bundle.model.embedder != "minilm-l6-onnx-int8.v2":  # the fast profile's encoder beside it, if installed
        try:
            fast_embedder = get_embedder("minilm-l6-onnx-int8.v2")
            fast_embedder.encode(["warm-up"])
            start = time.perf_counter()
            fast_embedder.encode(unique)
            seconds = time.perf_counter() - start
            fast = {"embedder": fast_embedder.name, "seconds": seconds, "turns_per_s": round(len(texts) / seconds, 1)}
        except ImportError:  # onnxruntime not installed (the [fast] extra)
            fast = None
    raw_pass()
    shared = None  # the encoder as the embed step drives it: batches shared between model instances
    if getattr(embedder, "instances", 1) > 1:
        start = time.perf_counter()
        embedder.encode(unique)
        seconds = time.perf_counter() - start
        shared = {"instances": embedder.instances, "seconds": seconds}
    result: dict = {
        "date": date.today().isoformat(),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()},
        "inputs": inputs, "embedder": bundle.model.embedder, "sessions": len(sessions), "turns": len(texts),
        "unique_texts": len(unique), "encoder": {}, "fast_encoder": fast, "shared_encoder": shared,
    }

    def library(label: str, png: bool, warm: bool, paired: bool = False) -> list[dict]:
        runs = []
        for i in range(repeat):
            if paired and i:  # a raw pass right before each cold run but the first (the start's pass is)
                raw_pass()
            # warm: the cache the first cold run filled (the same texts, the same embedder)
            cache = work / "library_cold-cache-0" if warm else work / f"{label}-cache-{i}"
            runs.append(library_run(inputs, replace(base, out=str(work / f"{label}-{i}"), cache_dir=str(cache),
                                                    png=png)))
        result[label] = min(runs, key=lambda x: x["seconds"])
        return runs

    cold_runs = library("library_cold", png=True, warm=False, paired=True)
    result["library_cold"]["paired"] = paired_ratios(times, cold_runs)
    library("library_cold_no_png", png=False, warm=False)
    library("library_warm", png=True, warm=True)
    # the baseline is the raw encoder's best pass; the rows' ratios are to it
    enc_rate = len(texts) / min(times)
    result["encoder"] = {"seconds": round(min(times), 2), "turns_per_s": round(enc_rate, 1),
                         "unique_texts_per_s": round(len(unique) / min(times), 1),
                         "passes": [round(t, 2) for t in times]}
    if fast is not None:
        fast.update(seconds=round(fast["seconds"], 2), ratio_to_encoder=round(min(times) / fast["seconds"], 3))
    if shared is not None:
        shared.update(seconds=round(shared["seconds"], 2), turns_per_s=round(len(texts) / shared["seconds"], 1),
                      ratio_to_encoder=round(min(times) / shared["seconds"], 3))
    for label in ("library_cold", "library_cold_no_png", "library_warm"):
        r = result[label]
        r.update(seconds=round(r["seconds"], 2), turns_per_s=round(r["turns"] / r["seconds"], 1),
                 ratio_to_encoder=round(r["turns"] / r["seconds"] / enc_rate, 3))
    if not cli:
        return result
    # a worker folder of its own: no row but one_session_worker uses a background worker
    (work / "rt").mkdir(mode=0o700)
    env = {**os.environ, "PREFECT_HOME": str(work / "prefect"), "COLUMNS": "120",
           "RUPTURE_CODER_RUNTIME_DIR": str(work / "rt")}
    env.pop("PREFECT_API_URL", None)
    mopt = ("--model", model) if model else ()
    # each `code` run right after a raw encoder pass of its own, like the cold library runs: the
    # machine's speed drifts over the minutes the rows above take
    for label, runner in (("cli_cold", ()), ("cli_cold_prefect", ("--runner", "local"))):
        cli_raw, cli_runs = [], []
        for i in range(repeat):
            start = time.perf_counter()
            plain_encode(embedder, unique)
            cli_raw.append(time.perf_counter() - start)
            cli_runs.append(_cli(inputs, work / f"{label}-{i}", env, *mopt, *runner))
        cold = dict(min(cli_runs, key=lambda r: r["seconds"]))
        cold.update(turns_per_s=round(len(texts) / cold["seconds"], 1),
                    ratio_to_encoder=round(len(texts) / cold["seconds"] / enc_rate, 3),
                    paired=paired_ratios(cli_raw, cli_runs))
        result[label] = cold
    result["latency"] = latency(work, env, repeat, model)
    if sizes:
        result["scale"] = scale(sessions, sizes, work, env, enc_rate, mopt, variants)
    return result


def latency(work: Path, env: dict, repeat: int, model: str | None) -> dict:
    mopt = ("--model", model) if model else ()
    one = work / "one" / "session.csv"
    one.parent.mkdir(parents=True, exist_ok=True)
    one.write_text(ONE_SESSION, encoding="utf-8")
    best = lambda runs: min(runs, key=lambda r: r["seconds"])  # noqa: E731
    out = {
        "interpreter_start": min(_seconds("pass", env) for _ in range(repeat)),
        "cli_imports": min(_seconds("import pipeline.cli._app", env) for _ in range(repeat)),
        "model_load": min(_seconds(
            "import time; t = time.perf_counter(); import pipeline.offline\n"
            "from pipeline.run.steps import cached_bundle; from pipeline.modeling.embed import get_embedder\n"
            f"b = cached_bundle({model!r}, None); get_embedder(b.model.embedder).encode(['x'])\n"
            "print(time.perf_counter() - t)", env) for _ in range(repeat)),
        "prefect_server_start": min(_seconds(
            "import time; t = time.perf_counter(); import pipeline.offline\n"
            "from prefect.server.api.server import SubprocessASGIServer\n"
            "s = SubprocessASGIServer(); s.start(timeout=180); print(time.perf_counter() - t); s.stop()", env)
            for _ in range(repeat)),
        "one_session_cold": best([_cli([str(one)], work / f"one-{i}", env, *mopt) for i in range(repeat)]),
        "one_session_prefect": best([_cli([str(one)], work / f"one-f{i}", env, *mopt, "--runner", "local")
                                     for i in range(repeat)]),
        "one_session_unchanged_rerun": best([_cli([str(one)], work / "one-0", env, *mopt) for _ in range(repeat)]),
        "one_session_worker": one_session_worker([str(one)], work, env, repeat, mopt),
    }
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    os.environ["PREFECT_HOME"] = env["PREFECT_HOME"]
    server.start(timeout=180)
    try:
        persistent = {**env, "PREFECT_API_URL": server.api_url}
        out["one_session_persistent_server"] = best([_cli([str(one)], work / f"one-p{i}", persistent, *mopt)
                                                     for i in range(repeat)])
    finally:
        server.stop()
    return out


def one_session_worker(inputs: list[str], work: Path, env: dict, repeat: int, mopt: tuple[str, ...] = ()) -> dict:
    """``rupture-coder code`` (``--runner auto``) in a fresh process while a background worker
    runs (started before the timing, stopped after); ``jobs_in_worker`` counts the runs it served
    (fewer than ``repeat``: the others fell back to coding in process, e.g. the code changed)."""
    started = subprocess.run([str(SCRIPT), "worker", "start", *mopt], capture_output=True, text=True, env=env)
    if started.returncode != 0:
        raise RuntimeError(f"rupture-coder worker start exited {started.returncode}: {started.stderr.strip()}")
    try:
        runs = [_cli(inputs, work / f"one-w{i}", env, *mopt) for i in range(repeat)]
        status = subprocess.run([str(SCRIPT), "worker", "status", "--json"], capture_output=True, text=True, env=env)
        served = json.loads(status.stdout).get("jobs_done", 0) if status.returncode == 0 else 0
    finally:
        subprocess.run([str(SCRIPT), "worker", "stop"], capture_output=True, text=True, env=env)
    return {**min(runs, key=lambda r: r["seconds"]), "runs": [r["seconds"] for r in runs], "jobs_in_worker": served}


def variant_size(sizes: tuple[int, ...]) -> int | None:
    """The scaling size the variants run at: 1,000 sessions when measured, else the largest."""
    return 1000 if 1000 in sizes else max(sizes, default=None)


def scale(sessions: list, sizes: tuple[int, ...], work: Path, env: dict, enc_rate: float,
          mopt: tuple[str, ...] = (), variants: tuple[str, ...] = ()) -> list[dict]:
    """Per size: the first run, the unchanged re-run and the re-run after one file changed; at
    :func:`variant_size`, also the first run with each variant's extra ``code`` options (such as
    ``--workers 2``), each into a fresh output folder (cold cache)."""
    rows = []
    turns_per_session = [len(s.turns) for s in sessions]
    for n in sizes:
        folder = work / f"scale-{n}"
        inputs = replicate(sessions, n, folder)
        out = work / f"scale-{n}-out"
        first = _cli(inputs, out, env, "--no-png", *mopt)
        turns = sum(turns_per_session[i % len(turns_per_session)] for i in range(n))
        rates = lambda r: {"turns_per_s": round(turns / r["seconds"], 1),  # noqa: E731
                           "sessions_per_min": round(n / r["seconds"] * 60, 1),
                           "ratio_to_encoder": round(turns / r["seconds"] / enc_rate, 3)}
        extra = []
        for k, options in enumerate(variants if n == variant_size(sizes) else ()):
            run = _cli(inputs, work / f"scale-{n}-variant-{k}", env, "--no-png", *mopt, *shlex.split(options))
            extra.append({"options": options, **run, **rates(run)})
            shutil.rmtree(work / f"scale-{n}-variant-{k}", ignore_errors=True)
        noop = _cli(inputs, out, env, "--no-png", *mopt)
        changed = folder / "s00000.csv"
        changed.write_text(changed.read_text(encoding="utf-8") + "r00000,9999,C,,,And one more thing.\n",
                           encoding="utf-8")
        one_changed = _cli(inputs, out, env, "--no-png", *mopt)
        rows.append({"sessions": n, "turns": turns, **first, **rates(first),
                     "unchanged_rerun_seconds": noop["seconds"], "one_changed_rerun_seconds": one_changed["seconds"],
                     **({"variants": extra} if extra else {})})
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return rows


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [f"{r['sessions']} sessions, {r['turns']} turns ({r['unique_texts']} unique texts); {m['cpu_count']} CPUs, "
             f"torch {m['torch']} ({m['torch_threads']} threads), Python {m['python']}, {r['date']}", "",
             "| measurement | seconds | turns/s | ratio to raw encoder |", "|---|---|---|---|",
             f"| raw encoder on the unique texts (baseline) | {r['encoder']['seconds']} | {r['encoder']['turns_per_s']} | 1.0 |"]
    if r.get("shared_encoder"):
        e = r["shared_encoder"]
        lines.append(f"| the same encoder, batches shared between {e['instances']} model instances (as the embed step "
                     f"runs it) | {e['seconds']} | {e['turns_per_s']} | {e['ratio_to_encoder']} |")
    if r.get("fast_encoder"):
        f = r["fast_encoder"]
        lines.append(f"| fast profile's encoder ({f['embedder']}), same texts | {f['seconds']} | {f['turns_per_s']} | "
                     f"{f['ratio_to_encoder']} |")
    for key, label in (("library_cold", "pipeline without Prefect, empty cache"),
                       ("library_cold_no_png", "the same without PNG timelines"),
                       ("library_warm", "pipeline without Prefect, embeddings cached"),
                       ("cli_cold", "`rupture-coder code`, fresh process (start-up included)"),
                       ("cli_cold_prefect", "the same with `--runner local` (Prefect: a corpus of several files)")):
        if key in r:
            lines.append(f"| {label} | {r[key]['seconds']} | {r[key]['turns_per_s']} | {r[key]['ratio_to_encoder']} |")
    if "library_cold" in r:
        cold = r["library_cold"]
        lines += ["", "Steps of the cold pipeline run (seconds): " + ", ".join(f"{k} {v}" for k, v in cold["steps"].items())]
        if "embed_in_encoder" in cold and cold["steps"].get("embed"):
            lines.append(f"Embed step {cold['steps']['embed']} s, of which {cold['embed_in_encoder']} s inside the "
                         f"encoder, chunk by chunk ({cold['steps']['embed'] / r['encoder']['seconds']:.3f}x and "
                         f"{cold['embed_in_encoder'] / r['encoder']['seconds']:.3f}x the raw encoder's best pass)")
        if cold.get("paired"):
            p = cold["paired"]
            lines.append(f"Each cold run against the raw encoder pass just before it (raw passes "
                         f"{', '.join(map(str, p['raw_seconds']))} s): ratio {', '.join(map(str, p['ratio']))} "
                         f"(median {p['median_ratio']}); embed step {', '.join(map(str, p['embed_step']))}x "
                         f"(median {p['median_embed_step']}x), of which inside the encoder "
                         f"{', '.join(map(str, p['embed_in_encoder']))}x")
    for key, what in (("cli_cold", "`rupture-coder code`"), ("cli_cold_prefect", "`rupture-coder code --runner local`")):
        if (r.get(key) or {}).get("paired"):
            p = r[key]["paired"]
            lines += ["", f"Each {what} run against a raw encoder pass timed just before it (raw passes "
                          f"{', '.join(map(str, p['raw_seconds']))} s): ratio {', '.join(map(str, p['ratio']))} "
                          f"(median {p['median_ratio']})"]
    if "latency" in r:
        lat = r["latency"]
        lines += ["", "| one 3-turn session | seconds |", "|---|---|"]
        for key, label in (("interpreter_start", "Python start"), ("cli_imports", "CLI imports"),
                           ("model_load", "model load (torch, sentence-transformers, weights, first encode)"),
                           ("prefect_server_start", "Prefect temporary server start"),
                           ("one_session_cold", "`code`, command start to report written (`--runner auto`: in-process)"),
                           ("one_session_prefect", "the same through Prefect's temporary server (`--runner local`)"),
                           ("one_session_persistent_server", "the same with a running Prefect server"),
                           ("one_session_worker", "the same with a running background worker (`rupture-coder worker "
                                                  "start` before; `--runner auto`)"),
                           ("one_session_unchanged_rerun", "the same command again (outputs current)")):
            if key not in lat:  # results of an older version
                continue
            value = lat[key]["seconds"] if isinstance(lat[key], dict) else lat[key]
            lines.append(f"| {label} | {value} |")
    if r.get("scale"):
        lines += ["", "| sessions | turns | seconds | turns/s | sessions/min | ratio to raw encoder | peak RSS MiB "
                      "| unchanged re-run s | one file changed s |", "|---|---|---|---|---|---|---|---|---|"]
        for s in r["scale"]:
            lines.append(f"| {s['sessions']} | {s['turns']} | {s['seconds']} | {s['turns_per_s']} | "
                         f"{s['sessions_per_min']} | {s['ratio_to_encoder']} | {s['peak_rss_mib']} | "
                         f"{s['unchanged_rerun_seconds']} | {s['one_changed_rerun_seconds']} |")
        for s in r["scale"]:
            if s.get("variants"):
                lines += ["", f"| {s['sessions']} sessions, `code` options | seconds | turns/s | sessions/min | "
                              "ratio to raw encoder | peak RSS MiB (largest process) |", "|---|---|---|---|---|---|",
                          f"| `--no-png` (as above) | {s['seconds']} | {s['turns_per_s']} | {s['sessions_per_min']} | "
                          f"{s['ratio_to_encoder']} | {s['peak_rss_mib']} |"]
                lines += [f"| `--no-png {v['options']}` | {v['seconds']} | {v['turns_per_s']} | {v['sessions_per_min']} | "
                          f"{v['ratio_to_encoder']} | {v['peak_rss_mib']} |" for v in s["variants"]]
    return "\n".join(lines) + "\n"


def run_bench(inputs: list[str], results: Path, model: str | None = None, repeat: int = 2,
              sizes: tuple[int, ...] = (), cli: bool = True, variants: tuple[str, ...] = ()) -> tuple[dict, Path]:
    """Measure, write ``results/<date>.json`` and ``.md``; returns the result and the JSON path."""
    work = Path(tempfile.mkdtemp(prefix="rupture-coder-bench-"))
    try:
        result = measure(inputs, work, model, repeat, sizes, cli, variants)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results.mkdir(parents=True, exist_ok=True)
    stem = results / f"bench-{result['date']}-{int(time.time())}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    return result, stem.with_suffix(".json")

