"""Anomaly detection (Tables 2-3).

(a) The lowest-probability samples of the real set under the composition
model (Eq. 12), against a frequency ranking; (b) ROC-AUC of several scores
on planted anomalies (cached as `anomalies_planted`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cyan_rcbm.data import planted as planted_lib
from cyan_rcbm.experiments.rcbm import cache
from cyan_rcbm.experiments.rcbm import composition
from cyan_rcbm.experiments.rcbm import figures
from cyan_rcbm.experiments.rcbm import models
from cyan_rcbm.experiments.rcbm import samples
from cyan_rcbm.experiments.rcbm.plan import Plan, log
from cyan_rcbm.rcbm import applications
from cyan_rcbm.rcbm import likelihood
from cyan_rcbm.rcbm import rcbm as rcbm_lib
from cyan_rcbm.rcbm.baselines import sc
from cyan_rcbm.rcbm.baselines import ssm


def _spearman(a, b):
  ra = np.argsort(np.argsort(a, kind='stable'), kind='stable')
  rb = np.argsort(np.argsort(b, kind='stable'), kind='stable')
  return float(np.corrcoef(ra, rb)[0, 1])


def run_anomalies(plan: Plan, kselect) -> dict[str, Any]:
  """The real-set listing (a) and the planted ROC-AUC table (b)."""
  s = plan.settings
  out = {}
  # (a) The real set: lowest-probability samples vs a frequency ranking.
  data = samples.real(plan)
  k1, k2 = composition.chosen_k(kselect, plan)
  model = composition.composition_model(plan, data, k1, k2)
  log_p = likelihood.log_prob(model, data.x)
  score = -log_p
  listing = applications.lowest_probability(log_p, data.ids, 10)
  for item in listing:
    i = item['index']
    item['volume'] = float(data.volume[i])
    item['feature_totals'] = {n: float(v) for n, v in
                              zip(data.feature_names, data.x[i].sum(axis=1))}
    item['feature_peaks'] = {n: float(v) for n, v in
                             zip(data.feature_names, data.x[i].max(axis=1))}
    for key, values in data.extra.items():
      item[key] = int(values[i])
  k = min(100, len(score) // 2)
  window_volume = applications.volume_scores(data.x, data.count_rows)
  real = {
      'dataset': data.name, 'n': int(len(score)), 'lowest_probability': listing,
      'top_k': k,
      'overlap_top_k_with_frequency': applications.overlap_at_k(
          score, data.volume, k),
      'overlap_top_k_with_window_volume': applications.overlap_at_k(
          score, window_volume, k),
      'spearman_score_vs_frequency': _spearman(score, data.volume),
      'spearman_score_vs_window_volume': _spearman(score, window_volume)}
  os.makedirs(plan.results_dir, exist_ok=True)
  fig = os.path.join(plan.results_dir, f'anomalies_{data.name}.png')
  figures.plot_dynamics(
      [data.x[it['index']] for it in listing[:6]],
      [f'#{it["rank"]} id {it["id"]}  -logP={it["neg_log_prob"]:.1f}'
       for it in listing[:6]], data.feature_names, fig)
  real['figure'] = os.path.basename(fig)
  out['real'] = real
  log(f'anomalies {data.name}: top-{k} overlap with frequency '
      f'{real["overlap_top_k_with_frequency"]}')

  # (b) Planted anomalies: ROC-AUC of each score.
  cached = cache.load_cache(plan, 'anomalies_planted')
  if cached is None:
    cached = _planted_anomalies(plan)
    cache.save_cache(plan, 'anomalies_planted', cached)
  out['planted'] = cached
  return out


def _planted_anomalies(plan: Plan) -> dict[str, Any]:
  s = plan.settings
  kw = s.planted_kwargs()
  seed = 1
  train = samples.planted(s, s.anomaly_n_train, seed=seed).x
  test = planted_lib.make_planted_anomalies(*s.anomaly_counts, seed=seed, **kw)
  x_test = test.dynamics.x.astype(np.float64)
  d, t = train.shape[1:]
  model, _ = models.fit_rcbm(s, train,
                             feature_names=[f'f{j}' for j in range(d)])
  acts = rcbm_lib.infer(model, x_test)
  level1 = model.levels[0]
  p = models.default_num_params(s, d)
  sc_fit = sc.fit_sc(train.astype(np.float32), sc.matched_num_atoms(p, d, t),
                     cfg=sc.SCConfig(lam=s.lam,
                                     inner_max_iters=s.inner_max_iters),
                     max_iters=s.sc_max_iters, tol=s.tol, seed=0)
  ssm_fit = ssm.fit_ssm(train.astype(np.float32), ssm.matched_state_dim(p, d),
                        max_iters=s.ssm_max_iters, seed=0)
  scores = {
      'rcbm': -likelihood.joint_from_activations(model, acts),
      'cbm_level1': -likelihood.cbm_log_joint(acts[0].sq_err, acts[0].l1,
                                              level1.sigma, level1.beta),
      'rcbm_error_only': -likelihood.log_p_x_given_h(acts[0].sq_err,
                                                     level1.sigma),
      'sc': -sc.log_prob(sc_fit.model, x_test.astype(np.float32)),
      'ssm': -ssm.log_prob(ssm_fit.params, x_test.astype(np.float32)),
      'volume': applications.volume_scores(x_test),
      'peak': x_test.max(axis=(1, 2))}
  labels = test.labels
  table = {}
  for name, score in scores.items():
    entry = {'all': applications.roc_auc(score, (labels > 0).astype(int))}
    for kind, label in (('foreign_filters', planted_lib.FOREIGN_FILTERS),
                        ('shuffled_rows', planted_lib.SHUFFLED_ROWS)):
      keep = (labels == 0) | (labels == label)
      entry[kind] = applications.roc_auc(score[keep],
                                         (labels[keep] == label).astype(int))
    table[name] = entry
  log(f'anomalies planted AUC: '
      f'{ {k: round(v["all"], 3) for k, v in table.items()} }')
  return {'n_train': int(train.shape[0]),
          'counts': dict(zip(('normal', 'foreign_filters', 'shuffled_rows'),
                             map(int, s.anomaly_counts))),
          'auc': table}
