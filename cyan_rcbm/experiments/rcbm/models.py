"""The RCBM models of the reproduction, built from a mode's `Settings`.

`fit_rcbm` fits a 2-level RCBM (or given level specs) on scaled data with
the mode's solver and inference settings; `rcbm_num_params` is the parameter
count the baselines are matched to.
"""

from __future__ import annotations

import numpy as np

from cyan_rcbm.experiments.rcbm.plan import Settings
from cyan_rcbm.rcbm import cbm
from cyan_rcbm.rcbm import rcbm as rcbm_lib
from cyan_rcbm.rcbm import select_k


def rcbm_num_params(specs, num_features) -> int:
  """`sum_l (K_l D_l Tw_l + 2)` (filters, sigma, beta per level)."""
  total, d = 0, num_features
  for spec in specs:
    total += select_k.num_params(spec.num_filters, d, spec.filter_length)
    d = spec.num_filters
  return total


def level_specs(settings: Settings, k1=None, k2=None, levels=2):
  """Level specs: K1, K2 (default `settings.num_filters`), Tw, pool."""
  k1 = k1 or settings.num_filters
  k2 = k2 or settings.num_filters
  if levels == 1:
    return [rcbm_lib.LevelSpec(k1, settings.filter_length, 1)]
  return [rcbm_lib.LevelSpec(k1, settings.filter_length, settings.pool),
          rcbm_lib.LevelSpec(k2, settings.filter_length, 1)]


def default_num_params(settings: Settings, num_features: int) -> int:
  """Parameters of the default 2-level RCBM (the baselines are matched)."""
  return rcbm_num_params(level_specs(settings), num_features)


def solver(settings: Settings, step='fixed') -> cbm.SolverConfig:
  """The CBM solver of the mode: `step` 'fixed' (FS) or 'line_search'."""
  return cbm.SolverConfig(step=step, lam=settings.lam,
                          inner_max_iters=settings.inner_max_iters)


def _inference(settings: Settings) -> rcbm_lib.InferenceSettings:
  return rcbm_lib.InferenceSettings(max_iters=settings.infer_max_iters,
                                    tol=settings.infer_tol, batch_size=2000)


def fit_rcbm(settings: Settings, x_scaled: np.ndarray, *, step='fixed',
             seed=0, specs=None, scale=None, feature_names=None,
             max_iters=None, num_restarts=None):
  """A 2-level RCBM (or `specs`) on scaled data; returns (model, fits)."""
  specs = specs or level_specs(settings)
  d = x_scaled.shape[1]
  return rcbm_lib.fit_rcbm(
      x_scaled.astype(np.float32), specs, cfg=solver(settings, step),
      feature_names=feature_names or [f'f{j}' for j in range(d)],
      scale=scale, inference=_inference(settings),
      fit_kwargs=dict(max_iters=max_iters or settings.max_iters,
                      tol=settings.tol, min_iters=3,
                      num_restarts=num_restarts or settings.num_restarts,
                      restart_iters=10, batch_size=2000, seed=seed))
