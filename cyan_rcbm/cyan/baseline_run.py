"""A baseline of the CYAN-RNN paper run like a neural model: one config, one workdir.

`--config.model.variant=<name>` with a name of `baselines.NAMES`
(popularity, MC-1, CT-Bernoulli/Jaccard, Poisson, Hawkes) fits the baseline
on the training split (MC-1 picks its smoothing on validation) and scores
it on the test split with the evaluation code of the neural models; the
workdir gets `config.json` and `eval_test.json` as a neural run's does.
"""

from __future__ import annotations

import os
import time
from typing import Any

from cyan_rcbm.common import backend_defaults
from cyan_rcbm.common import sharding
from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.cyan import baselines
from cyan_rcbm.cyan import evaluate
from cyan_rcbm.data import batching
from cyan_rcbm.data import registry
from cyan_rcbm.data import splits as splits_lib

EVAL_FILE = 'eval_test.json'
# Events per evaluation batch: the count baselines expand [events, U] rows.
MAX_BATCH_EVENTS = 2048


def fit_and_score(name: str, config, splits: splits_lib.Splits,
                  data_name: str = '') -> dict[str, Any]:
  """Fits baseline `name` on train (valid for MC-1) and scores it on test."""
  t0 = time.perf_counter()
  model = baselines.fit_baseline(name, splits, data_name=data_name,
                                 max_events=config.data.max_events)
  fit_s = time.perf_counter() - t0
  limit = config.batching.max_batch_events
  batcher = batching.CascadeBatcher(
      splits.test, batch_size=backend_defaults.resolve(
          config.batching.eval_batch_size, 'batching.eval_batch_size'),
      max_events=config.data.max_events,
      max_batch_events=min(limit, MAX_BATCH_EVENTS) if limit
      else MAX_BATCH_EVENTS,
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


def train_and_evaluate(config, workdir: str) -> dict[str, Any]:
  """Fits and scores `config.model.variant`; writes `workdir/eval_test.json`."""
  name = config.model.variant
  sharding.prepare_workdir(config, workdir)
  splits = registry.load_splits(config.data)
  print(f'[cyan] baseline {name}: fitting on {len(splits.train):,} training '
        'cascades ...', flush=True)
  result = fit_and_score(name, config, splits,
                         data_name=config.data.name or config.data.path)
  result['time_unit'] = splits.test.time_unit
  if sharding.is_primary():
    workdir_lib.dump_json(result, os.path.join(workdir, EVAL_FILE))
  print(f'[cyan] test: ' + ', '.join(
      f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}'
      for k, v in result.items() if k != 'fitted') +
        f' (fit {result["fit_seconds"]:.1f}s, eval '
        f'{result["eval_seconds"]:.1f}s)', flush=True)
  return result
