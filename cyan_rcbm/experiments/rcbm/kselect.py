"""Choosing K (Figs. 9-10): F(m) (Eq. 11) of one RCBM against BIC over K."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cyan_rcbm.experiments.rcbm import cache
from cyan_rcbm.experiments.rcbm import models
from cyan_rcbm.experiments.rcbm import samples
from cyan_rcbm.experiments.rcbm.plan import Plan, log
from cyan_rcbm.rcbm import cbm
from cyan_rcbm.rcbm import likelihood
from cyan_rcbm.rcbm import rcbm as rcbm_lib
from cyan_rcbm.rcbm import select_k


def _bic_curve(settings, x_scaled, ks):
  """BIC over K (equations.md B5), one CBM per K; also, as a sensitivity check,
  BIC with a per-entry Gaussian likelihood of the residual (Eq. 1 read entry by
  entry: `sum_i log N(X_i; Xhat_i, s^2 I)`, s^2 the per-entry MLE) with the
  same p."""
  n, d, t = x_scaled.shape
  spec_ll, gauss_ll = {}, {}

  def log_l(k):
    fit = cbm.fit_cbm(x_scaled.astype(np.float32), k, settings.filter_length,
                      cfg=models.solver(settings),
                      max_iters=settings.kselect_max_iters, tol=settings.tol,
                      min_iters=3, num_restarts=1, batch_size=2000, seed=0)
    sq = np.asarray(fit.sq_err, np.float64)
    s2 = max(float(sq.sum()) / (n * d * t), 1e-30)
    gauss_ll[k] = float(-0.5 * n * d * t * math.log(2 * math.pi * s2)
                        - sq.sum() / (2 * s2))
    spec_ll[k] = float(np.sum(likelihood.cbm_log_joint(
        sq, fit.l1, float(fit.params.sigma), float(fit.params.beta))))
    return spec_ll[k]

  ks_arr, values = select_k.bic_curve(ks, log_l, d, settings.filter_length, n)
  gauss = [select_k.bic(gauss_ll[int(k)],
                        select_k.num_params(int(k), d, settings.filter_length),
                        n) for k in ks_arr]
  return {'num_filters': ks_arr.tolist(), 'bic': values.tolist(),
          'best': int(ks_arr[int(np.argmax(values))]),
          'log_likelihood': [spec_ll[int(k)] for k in ks_arr],
          'bic_gaussian': gauss,
          'best_gaussian': int(ks_arr[int(np.argmax(gauss))])}


def run_kselect(plan: Plan) -> dict[str, Any]:
  """F(m), its knee and BIC over K, per level, for the real and planted sets."""
  s = plan.settings
  cached = cache.load_cache(plan, 'kselect')
  if cached is not None:
    return cached
  sets = {s.real: samples.real(plan)}
  if s.real != 'planted':
    sets['planted'] = samples.planted(s, s.kselect_n, seed=2)
  kmax = max(s.kselect_ks)
  out = {}
  for name, data in sets.items():
    idx = samples.subset(data.x.shape[0], s.kselect_n, 1)
    scale = samples.data_scale(data.x[idx], data.scale_mode)
    x = data.x[idx] / scale[None, :, None]
    model, _ = models.fit_rcbm(s, x, specs=models.level_specs(s, kmax, kmax),
                               scale=scale, feature_names=data.feature_names)
    x_levels = [x, rcbm_lib.max_pool(rcbm_lib.features(model, data.x[idx], 1),
                                     s.pool)]
    entry = {'n': int(idx.size)}
    for number, level in enumerate(model.levels, start=1):
      f_m = select_k.cumulative_activation(level.strength)
      entry[f'level{number}'] = {
          'cumulative_activation': f_m.tolist(),
          'knee': select_k.knee(f_m, s.knee_eps),
          'bic': _bic_curve(s, x_levels[number - 1], s.kselect_ks)}
      log(f'kselect {name} level {number}: knee '
          f'{entry[f"level{number}"]["knee"]}, BIC best '
          f'{entry[f"level{number}"]["bic"]["best"]} (per-entry Gaussian '
          f'BIC best {entry[f"level{number}"]["bic"]["best_gaussian"]})')
    out[name] = entry
  cache.save_cache(plan, 'kselect', out)
  return out
