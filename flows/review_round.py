"""Prefect flow ``review_round``: one turn of the annotators-in-the-loop cycle.

A round, start to end (docs/review-loop.md)::

    rupture-coder code transcripts/ --out runs/r1                      # the old model codes a run
    rupture-coder review export runs/r1 --to label-studio --out batch.json   # or --to csv
    ... annotators correct the model's codes in Label Studio or the CSV sheet ...
    rupture-coder review import export.json --run runs/r1 --out labels/human.jsonl
    rupture-coder review round runs/r1 --corrections labels/human.jsonl \\
        --model OLD --new-model models/NAME/NEW_VERSION --out rounds/r1   # this flow

Export and the human work happen before the flow; the flow takes their result (human layers)
and, with the run and the old bundle:

1. **prepare**: turns the corrections into gold sessions (:mod:`pipeline.review.corrections`) and sets
   aside the held-out sessions (given ids, or a fraction chosen deterministically by session id);
   held-out sessions never reach training;
2. **agreement**: the model (from the run) against each annotator and annotators among
   themselves (:mod:`pipeline.review.agreement`), written to ``OUT/agreement/``;
3. **train**: a new bundle with the old bundle's configuration on the other corrected sessions
   (plus the constructed corpus / real data when asked);
4. **evaluate**: old and new bundles on the same held-out sessions (:mod:`pipeline.modeling.evaluate`);
5. **report**: ``OUT/round.json`` and ``OUT/round.md``: whether the new model beats the old on
   the held-out sessions, with the numbers.

Thin by design: each task calls one function of :mod:`pipeline.review.rounds`. Flow parameters
are paths and session ids only (Prefect stores them); turn text stays in task memory and is
never logged. Tasks take ``cache_policy=NO_CACHE`` and results are not persisted.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows._glue import bind_temporary_server
from pipeline.review import rounds as lib


@task(name="prepare-corrections", cache_policy=NO_CACHE)
def prepare(config: lib.RoundConfig) -> lib.RoundData:
    return lib.prepare_round(config)


@task(name="agreement", cache_policy=NO_CACHE)
def agreement(config: lib.RoundConfig) -> dict:
    return lib.round_agreement(config)


@task(name="train-new-model", cache_policy=NO_CACHE)
def train(config: lib.RoundConfig, data: lib.RoundData) -> str:
    return lib.train_new_bundle(config, data)


@task(name="evaluate-held-out", cache_policy=NO_CACHE)
def evaluate(model: str, data: lib.RoundData, config: lib.RoundConfig) -> dict:
    return lib.evaluate_bundle(model, data.held_out, config.cache_dir)


@task(name="write-report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=1)
def report(config: lib.RoundConfig, data: lib.RoundData, agreed: dict, old: dict, new: dict) -> dict:
    result = lib.round_report(config, data, agreed, old, new, lib.run_model(config.run_dir))
    return {**result, "files": lib.write_round_report(config.out, result)}


@flow(name="review_round", log_prints=False, persist_result=False, validate_parameters=False)
def review_round(config: lib.RoundConfig | dict) -> dict:
    if isinstance(config, dict):  # parameters of a deployment arrive as JSON
        config = lib.RoundConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    lib.check_round(config)
    data = prepare(config)
    agreed = agreement(config)
    new_model = train(config, data)
    old = evaluate(config.old_model, data, config)
    new = evaluate(new_model, data, config)
    return report(config, data, agreed, old, new)


def run_review_round(config: lib.RoundConfig) -> dict:
    """Run the flow as ``rupture-coder review round`` does: Prefect's temporary server, when one
    is started, bound to this process and quiet (:func:`flows._glue.bind_temporary_server`)."""
    bind_temporary_server()
    return review_round(config)
