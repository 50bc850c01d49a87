"""Forecasting (Tables 5-6): VAR and SVR on raw / H1 / H2 / H1+H2 / H1^2."""

from __future__ import annotations

from typing import Any

from cyan_rcbm.experiments.rcbm import cache
from cyan_rcbm.experiments.rcbm import composition
from cyan_rcbm.experiments.rcbm import models
from cyan_rcbm.experiments.rcbm import samples
from cyan_rcbm.experiments.rcbm.plan import Plan, log
from cyan_rcbm.rcbm import applications


def run_forecast(plan: Plan, kselect) -> dict[str, Any]:
  """Forecasts after the cut bin from each feature set (strict time split)."""
  s = plan.settings
  cached = cache.load_cache(plan, 'forecast')
  if cached is not None:
    return cached
  data = samples.real(plan)
  n = data.x.shape[0]
  idx = samples.subset(n, s.forecast_max_samples or n, 6)
  task = applications.make_forecast_task(
      data.x[idx], data.start[idx], cut=data.cut, count_rows=data.count_rows,
      bin_seconds=data.bin_seconds,
      train_fraction=s.forecast_train_fraction)
  k1, k2 = composition.chosen_k(kselect, plan)
  x_train = task.x_full[task.train]
  scale = samples.data_scale(x_train, data.scale_mode)
  xs = x_train / scale[None, :, None]
  model2, _ = models.fit_rcbm(s, xs, specs=models.level_specs(s, k1, k2),
                              scale=scale, feature_names=data.feature_names)
  model1, _ = models.fit_rcbm(
      s, xs, specs=models.level_specs(s, 2 * k1, levels=1), scale=scale,
      feature_names=data.feature_names)
  feats = applications.feature_sets(model2, model1, task.x_input)
  rows = applications.forecast(feats, task)
  out = {'dataset': data.name, 'n': int(idx.size),
         'num_train': int(task.train.size), 'num_test': int(task.test.size),
         'dropped_at_cutoff': task.dropped, 'cutoff': task.cutoff,
         'cut_bin': data.cut, 'num_filters': [k1, k2],
         'target': ('log1p(events in bins [cut, T)) of the window: the '
                    'activity after the forecast bin'),
         'feature_dims': {k: int(v.shape[1]) for k, v in feats.items()},
         'target_mean': {'train': float(task.target[task.train].mean()),
                         'test': float(task.target[task.test].mean())},
         'rows': rows}
  cache.save_cache(plan, 'forecast', out)
  log('forecast: ' + ', '.join(f'{r["model"]}+{r["features"]} '
                               f'{r["rmse"]:.3f}' for r in rows))
  return out
