"""Compositional structures (Figs. 11-14) and the model reused later.

A 2-level RCBM on the real set with K from the knees of F(m)
(`chosen_k`), cached (`composition_model`, also scored by the anomaly
experiment); its filters are drawn ranked by activation strength.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cyan_rcbm.experiments.rcbm import cache
from cyan_rcbm.experiments.rcbm import models
from cyan_rcbm.experiments.rcbm import samples
from cyan_rcbm.experiments.rcbm.plan import Plan
from cyan_rcbm.experiments.rcbm.samples import Samples
from cyan_rcbm.rcbm import applications
from cyan_rcbm.rcbm import plots
from cyan_rcbm.rcbm import rcbm as rcbm_lib


def chosen_k(kselect: dict[str, Any] | None, plan: Plan) -> tuple[int, int]:
  """K1, K2 from the knees of F(m) on the real set (Fig. 9's role)."""
  s = plan.settings
  if not kselect or s.real not in kselect:
    return s.num_filters, s.num_filters
  return tuple(max(2, int(kselect[s.real][f'level{i}']['knee']))
               for i in (1, 2))


def composition_model(plan: Plan, data: Samples, k1: int, k2: int):
  """The 2-level RCBM with K1, K2 on `data` (cached under --out_dir)."""
  s = plan.settings

  def train():
    n = data.x.shape[0]
    idx = samples.subset(n, s.composition_n or n, 4)
    scale = samples.data_scale(data.x[idx], data.scale_mode)
    model, _ = models.fit_rcbm(s, data.x[idx] / scale[None, :, None],
                               specs=models.level_specs(s, k1, k2),
                               scale=scale, feature_names=data.feature_names,
                               num_restarts=max(s.num_restarts, 3),
                               max_iters=2 * s.max_iters)
    return model

  return cache.cached_model(plan, f'composition_k{k1}_{k2}', train)


def _top_share_stats(h_NxKxS, values, share=0.1):
  """Per filter: mean of `values` over the samples whose activation of that
  filter is in the top `share`, and over all samples."""
  strength = h_NxKxS.sum(axis=2)
  out = []
  for k in range(strength.shape[1]):
    top = applications.top_k(strength[:, k], max(1, int(share * len(values))))
    out.append(float(np.mean(values[top])))
  return {'top_share': share, 'mean_top': out,
          'mean_all': float(np.mean(values))}


def run_composition(plan: Plan, kselect) -> dict[str, Any]:
  """Draws the filters ranked by activation; their shares and parameters."""
  s = plan.settings
  data = samples.real(plan)
  k1, k2 = chosen_k(kselect, plan)
  model = composition_model(plan, data, k1, k2)
  os.makedirs(plan.results_dir, exist_ok=True)
  names = list(data.feature_names)
  figures = []
  for number, level in enumerate(model.levels, start=1):
    path = os.path.join(plan.results_dir, f'filters_level{number}.png')
    plots.plot_filters(level.w, names, path,
                       title=f'{data.name}: level {number} filters (Tw='
                             f'{level.filter_length}, ranked by activation)',
                       strength=level.strength)
    figures.append(os.path.basename(path))
    names = [f'L{number}.W{k + 1}' for k in range(level.num_filters)]
  acts = rcbm_lib.infer(model, data.x)
  result = {
      'dataset': data.name, 'n': int(data.x.shape[0]), 'num_filters': [k1, k2],
      'filter_length': s.filter_length, 'pool': s.pool,
      'bin_seconds': data.bin_seconds, 'figures': figures,
      'strength_share': [(lv.strength / max(lv.strength.sum(), 1e-30)).tolist()
                         for lv in model.levels],
      'sigma': [lv.sigma for lv in model.levels],
      'beta': [lv.beta for lv in model.levels],
      'filters': [np.round(lv.w, 4).tolist() for lv in model.levels]}
  if 'later_events' in data.extra:
    for key in ('window_events', 'later_events'):
      values = data.extra[key].astype(np.float64)
      result[f'{key}_by_filter'] = [_top_share_stats(a.h, values)
                                    for a in acts]
  return result
