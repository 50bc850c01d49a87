"""Runtime and held-out perplexity (Figs. 5-8), and RCBM-FS vs RCBM-LS.

`run_runtime`: every model of `plan.MODELS` over the training sizes of the
mode, repeated, each cell cached as soon as it is done (`runtime_rows`).
`run_fsls`: the Eq. 6 objective of RCBM-FS, RCBM-LS and the paper's LS
against wall time at one n (level 1), and the time each needs to reach
equal quality.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from cyan_rcbm.experiments.rcbm import cache
from cyan_rcbm.experiments.rcbm import cells
from cyan_rcbm.experiments.rcbm import models
from cyan_rcbm.experiments.rcbm import samples
from cyan_rcbm.experiments.rcbm.plan import (MODELS, RCBM_STEPS, ROW_KEYS,
                                             Plan, log)
from cyan_rcbm.rcbm import cbm
from cyan_rcbm.rcbm import likelihood


def runtime_data(plan: Plan, dataset: str):
  """(x scaled [n, D, T], test indices, pool indices) of a runtime set."""
  s = plan.settings
  if dataset == 'higgs':
    data = samples.higgs_targets(plan, s.higgs_runtime_min_events)
  else:
    data = samples.planted(s, max(s.n_grid['planted']) + s.num_test, seed=0)
  n = data.x.shape[0]
  perm = np.random.default_rng([3, 11]).permutation(n)
  test, pool = np.sort(perm[:s.num_test]), np.sort(perm[s.num_test:])
  scale = samples.data_scale(data.x[pool], data.scale_mode)
  return data.x / scale[None, :, None], test, pool


REPETITIONS = ('reps', 'reps_large', 'large_n')


def _skip_reason(plan: Plan, model: str, n: int, pool_size: int,
                 todo: int, reps: int) -> str | None:
  """Why a cell of the study is not run here, or None."""
  s = plan.settings
  if n > pool_size:
    return f'only {pool_size} training samples'
  if model == 'cae' and n > s.cae_max_n:
    return (f'cAE runs up to n={s.cae_max_n} (time budget; the paper: up '
            'to 500)')
  if plan.report_only:
    return f'{todo} of {reps} repetitions not run (time budget)'
  if model not in plan.runtime_models:
    return f'{todo} of {reps} repetitions not run (model not in this run)'
  if plan.runtime_max_n and n > plan.runtime_max_n:
    return (f'{todo} of {reps} repetitions not run (--runtime_max_n='
            f'{plan.runtime_max_n})')
  return None


def _row(dataset, model, n, rep, out, warmup_seconds, num_entries):
  """One row of the study from a cell's output (`cells`)."""
  log_p = np.asarray(out.pop('log_p'), np.float64)
  nll = float(-np.mean(log_p))
  ppl = likelihood.perplexity_from_log_prob(log_p)
  common = likelihood.residual_nll(out.pop('sq_test'), out.pop('sigma_train'),
                                   num_entries)
  row = dict(dataset=dataset, model=model, n_train=int(n), rep=rep,
             warmup_seconds=warmup_seconds,
             perplexity=ppl if math.isfinite(ppl) else None,
             log_perplexity=nll, median_neg_log_prob=float(-np.median(log_p)),
             nll_per_sample=common['per_sample'],
             nll_per_entry=common['per_entry'], **out)
  return {k: row[k] for k in ROW_KEYS}


def run_runtime(plan: Plan) -> dict[str, Any]:
  """Runs the missing cells of the study, smallest n first, then per data
  set in `MODELS` order; {'rows': [...], 'skipped': [...]}."""
  s = plan.settings
  # Rows are per repetition: more repetitions reuse the finished ones.
  rows = cache.load_cache(plan, 'runtime_rows', ignore=REPETITIONS) or []
  done = {(r['dataset'], r['model'], r['n_train'], r['rep']) for r in rows}
  skipped = []
  data = {name: runtime_data(plan, name) for name in s.runtime_datasets}
  cells_todo = sorted({(n, d) for d in s.runtime_datasets
                       for n in s.n_grid[d]})
  for n, dataset in cells_todo:
    x, test, pool = data[dataset]
    for model in MODELS:
      reps = s.reps if n < s.large_n else s.reps_large
      todo = [r for r in range(reps) if (dataset, model, n, r) not in done]
      reason = _skip_reason(plan, model, n, pool.size, len(todo), reps)
      if reason and (todo or n > pool.size
                     or (model == 'cae' and n > s.cae_max_n)):
        skipped.append({'dataset': dataset, 'n_train': n, 'model': model,
                        'reason': reason})
        continue
      if not todo:
        continue
      fit = cells.CELL_FITS[model]
      # Warm-up on the same shapes: compile time is not training time.
      t0 = time.perf_counter()
      fit(s, x[pool[samples.subset(pool.size, n, 99)]], x[test], 99,
          quick=True)
      warmup = time.perf_counter() - t0
      for rep in todo:
        train = pool[samples.subset(pool.size, n, rep)]
        row = _row(dataset, model, n, rep, fit(s, x[train], x[test], rep),
                   warmup, x.shape[1] * x.shape[2])
        rows.append(row)
        done.add((dataset, model, n, rep))
        cache.save_cache(plan, 'runtime_rows', rows)
        log(f'runtime {dataset} {model} n={n} rep={rep}: '
            f'{row["seconds"]:.1f}s (warm-up {warmup:.1f}s), log '
            f'perplexity {row["log_perplexity"]:.3f}, per entry '
            f'{row["nll_per_entry"]:.3f} {row["note"]}')
  return {'rows': rows, 'skipped': skipped}


def _ratio(seconds: dict[str, float | None], step: str) -> float | None:
  """Time of `step` over RCBM-FS's, or None where either did not reach."""
  a, b = seconds.get(step), seconds.get('fixed')
  return a / b if a and b else None


def run_fsls(plan: Plan) -> dict[str, Any]:
  """Objective against wall time of the three RCBM step rules, per set."""
  s = plan.settings
  cached = cache.load_cache(plan, 'fsls')
  if cached is not None:
    return cached
  out = {}
  for dataset in s.runtime_datasets:
    x, _, pool = runtime_data(plan, dataset)
    x1 = x[pool[samples.subset(pool.size, s.fsls_n, 0)]].astype(np.float32)
    traces = {}
    for step in RCBM_STEPS.values():
      cfg = models.solver(s, step)
      kwargs = dict(cfg=cfg, tol=s.fsls_tol, min_iters=3, num_restarts=1,
                    batch_size=2000, seed=0)
      cbm.fit_cbm(x1, s.num_filters, s.filter_length, max_iters=1, **kwargs)
      fit = cbm.fit_cbm(x1, s.num_filters, s.filter_length,
                        max_iters=s.fsls_max_iters, **kwargs)
      traces[step] = {
          'objective': [h['objective'] for h in fit.history],
          'seconds': np.cumsum([h['seconds'] for h in fit.history]).tolist(),
          'converged': bool(fit.converged)}
    best = min(min(t['objective']) for t in traces.values())
    # 'equal quality': the worse of the two final objectives, which both
    # runs reach; then within 5%, 1%, 0.1% of the better one.
    worse = max(t['objective'][-1] for t in traces.values())
    summary = {}
    for rel in ('equal_quality', 0.05, 0.01, 0.001):
      if rel == 'equal_quality':
        target, key = worse, 'equal_quality'
      else:
        target = best * (1 + rel) if best > 0 else best + rel
        key = f'within_{rel:g}'
      reach = {}
      for step, t in traces.items():
        hit = [sec for obj, sec in zip(t['objective'], t['seconds'])
               if obj <= target]
        reach[step] = hit[0] if hit else None
      summary[key] = {'objective': target, 'seconds': reach,
                      'ls_over_fs': _ratio(reach, 'line_search'),
                      'ls_paper_over_fs': _ratio(reach, 'line_search_paper')}
    out[dataset] = {'n': int(x1.shape[0]), 'traces': traces,
                    'best_objective': best, 'time_to_objective': summary,
                    'final_objective': {k: t['objective'][-1]
                                        for k, t in traces.items()}}
    log(f'fsls {dataset}: {summary}')
  cache.save_cache(plan, 'fsls', out)
  return out
