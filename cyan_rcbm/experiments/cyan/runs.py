"""The runs of the CYAN-RNN reproduction, and their rows.

`run_all` fits and scores the baselines of every data set, then trains the
neural models seed by seed (`train_and_evaluate`, resuming an interrupted
run, skipping a finished one); a failing run is logged and the rest goes on.
`collect_rows` reads one row per finished run (`plan.ROW_KEYS`).
"""

from __future__ import annotations

import functools
import json
import os
import time
import traceback
from typing import Any

from absl import logging

from cyan_rcbm import errors
from cyan_rcbm.common import backend_defaults
from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.cyan import baselines
from cyan_rcbm.cyan import evaluate
from cyan_rcbm.cyan import metrics
from cyan_rcbm.cyan import train
from cyan_rcbm.data import batching
from cyan_rcbm.data import registry
from cyan_rcbm.experiments.cyan.plan import (EVAL_FILE, NEURAL, ROW_KEYS,
                                             TIMING_FILE, Plan, run_config,
                                             run_dir)


def read_json(path: str) -> Any:
  """The JSON value stored at `path`."""
  with open(path) as f:
    return json.load(f)


def _fit_and_score(name: str, dataset: str, config, splits) -> dict[str, Any]:
  """Fits one baseline on train (valid for MC-1) and scores it on test."""
  t0 = time.perf_counter()
  model = baselines.fit_baseline(name, splits, data_name=dataset,
                                 max_events=config.data.max_events)
  fit_s = time.perf_counter() - t0
  batcher = batching.CascadeBatcher(
      splits.test, batch_size=backend_defaults.resolve(
          config.batching.eval_batch_size, 'batching.eval_batch_size'),
      max_events=config.data.max_events, max_batch_events=2048,
      bucket_lengths=tuple(config.batching.bucket_lengths) or None,
      calendar=False)
  result = evaluate.evaluate(model, batcher)
  fitted = {}
  if name == 'mc1':
    fitted = dict(smoothing=model.smoothing,
                  valid_user_nll=model.valid_user_nll)
  elif name == 'poisson':
    fitted = dict(rate=model.rate)
  elif name == 'hawkes':
    fitted = dict(base_rate=model.base_rate, alpha=model.alpha,
                  sigma=model.sigma, newton_steps=model.newton_steps,
                  converged=model.converged)
  elif name in baselines.GRAPH_MODELS:
    fitted = dict(learned_edges=int(len(model.src)))
  result.update(fitted=fitted, fit_seconds=fit_s,
                eval_seconds=time.perf_counter() - t0 - fit_s)
  return result


def run_baselines(plan: Plan, dataset: str) -> None:
  """Fits and scores the plan's baselines on one data set (skips done ones)."""
  todo = [m for m in plan.models if m in baselines.NAMES and not
          os.path.exists(os.path.join(run_dir(plan, dataset, m, None),
                                      EVAL_FILE))]
  if not todo:
    return
  config = run_config(dataset, plan.mode)
  splits = registry.load_splits(config.data)
  for name in todo:
    workdir = run_dir(plan, dataset, name, None)
    os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    try:
      result = _fit_and_score(name, dataset, config, splits)
    except errors.InputError as e:  # e.g. CT without a social graph
      result = metrics.compute_metrics(None, None, None, None, [])
      result['note'] = str(e)
      print(f'[reproduce] {dataset} {name}: not applicable: {e}', flush=True)
    result['time_unit'] = splits.test.time_unit
    workdir_lib.dump_json(config.data.to_dict(),
                          os.path.join(workdir, 'data_config.json'))
    workdir_lib.dump_json(result, os.path.join(workdir, EVAL_FILE))
    workdir_lib.dump_json(dict(wall_s=time.perf_counter() - t0),
                          os.path.join(workdir, TIMING_FILE))
    print(f'[reproduce] {dataset} {name}: {_summary(result)}', flush=True)


def run_neural(plan: Plan, dataset: str, variant: str, seed: int) -> None:
  """One `train_and_evaluate` run (resumes an interrupted one; skips a done one)."""
  workdir = run_dir(plan, dataset, variant, seed)
  if os.path.exists(os.path.join(workdir, EVAL_FILE)):
    return
  config = run_config(dataset, plan.mode, variant, seed)
  print(f'[reproduce] {dataset} {variant} seed {seed} -> {workdir}',
        flush=True)
  t0 = time.perf_counter()
  result = train.train_and_evaluate(config, workdir)
  timing_path = os.path.join(workdir, TIMING_FILE)
  workdir_lib.dump_json(dict(wall_s=time.perf_counter() - t0),
                        timing_path)
  print(f'[reproduce] {dataset} {variant} seed {seed}: {_summary(result)}',
        flush=True)


def _summary(result: dict[str, Any]) -> str:
  keys = ('acc@1', 'acc@5', 'mrr', 'rmse')
  return ', '.join(f'{k} {result[k]:.4f}' for k in keys
                   if result.get(k) is not None) or 'no metrics'


def _guarded(failures: list[str], what: str, fn, *args) -> None:
  """Runs one unit of work; a failure is logged and the rest goes on."""
  try:
    fn(*args)
  except Exception as e:  # pylint: disable=broad-except
    failures.append(f'{what}: {type(e).__name__}: {e}')
    print(f'[reproduce] FAILED {what}: {type(e).__name__}: {e}', flush=True)
    logging.error('%s', traceback.format_exc())


def run_all(plan: Plan) -> list[str]:
  """Baselines of every data set first, then the neural runs seed by seed."""
  failures: list[str] = []
  for dataset in plan.datasets:
    _guarded(failures, f'{dataset} baselines', run_baselines, plan, dataset)
  for seed in plan.seeds:
    for dataset in plan.datasets:
      for variant in (m for m in plan.models if m in NEURAL):
        _guarded(failures, f'{dataset} {variant} seed {seed}', run_neural,
                 plan, dataset, variant, seed)
  return failures


def collect_rows(plan: Plan) -> list[dict[str, Any]]:
  """One row per finished run of the plan, with every key of `ROW_KEYS`."""
  rows = []
  for dataset in plan.datasets:
    for model in plan.models:
      seeds = plan.seeds if model in NEURAL else (None,)
      for seed in seeds:
        workdir = run_dir(plan, dataset, model, seed)
        path = os.path.join(workdir, EVAL_FILE)
        if not os.path.exists(path):
          continue
        result = read_json(path)
        timing = os.path.join(workdir, TIMING_FILE)
        row = {k: result.get(k) for k in ROW_KEYS}
        row.update(dataset=dataset, model=model,
                   seed=0 if seed is None else seed,
                   split=_split_name(dataset, plan.mode),
                   wall_s=read_json(timing)['wall_s'] if os.path.exists(
                       timing) else None)
        if model not in NEURAL:
          row['epochs'] = None
        rows.append(row)
  return rows


@functools.lru_cache(maxsize=None)
def _split_name(dataset: str, mode: str) -> str:
  return run_config(dataset, mode).data.split
