"""Tests of the RCBM applications: anomaly ranking and forecasting."""

import numpy as np
import pytest

from cyan_rcbm.errors import ConfigError
from cyan_rcbm.errors import DataError
from cyan_rcbm.rcbm import applications
from cyan_rcbm.rcbm import rcbm as rcbm_lib


def test_roc_auc_hand_computed_and_ties():
  # Positives score 0.9, 0.4; negatives 0.5, 0.1: 3 of 4 pairs ordered.
  assert applications.roc_auc([0.9, 0.5, 0.4, 0.1], [1, 0, 1, 0]) == 0.75
  assert applications.roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
  assert applications.roc_auc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5  # ties half
  rng = np.random.default_rng(0)
  s, y = rng.normal(size=200).round(1), rng.integers(0, 2, 200)
  pos, neg = s[y == 1], s[y == 0]
  pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (
      pos[:, None] == neg[None]).mean()
  assert applications.roc_auc(s, y) == pytest.approx(pairs)
  with pytest.raises(ValueError, match='both'):
    applications.roc_auc([1, 2], [1, 1])
  with pytest.raises(ValueError, match='0 or 1'):
    applications.roc_auc([1, 2], [0, 2])


def test_rankings():
  scores = np.array([0.1, 3.0, 2.0, 3.0, -1.0])
  np.testing.assert_array_equal(applications.top_k(scores, 3), [1, 3, 2])
  assert applications.overlap_at_k(scores, -scores, 2) == 0
  assert applications.overlap_at_k(scores, scores, 2) == 2
  listing = applications.lowest_probability(-scores, list('abcde'), 2)
  assert [r['id'] for r in listing] == ['b', 'd']
  assert listing[0]['neg_log_prob'] == 3.0 and listing[1]['rank'] == 2
  x = np.arange(24, dtype=float).reshape(2, 3, 4)
  np.testing.assert_array_equal(applications.volume_scores(x, [0]),
                                [6.0, 54.0])


def _windows(n=30, t=6):
  rng = np.random.default_rng(1)
  x = rng.poisson(2.0, size=(n, 2, t)).astype(float)
  start = np.sort(rng.uniform(0, 100, n))
  return x, start


def test_forecast_task_is_strict_in_time():
  x, start = _windows()
  task = applications.make_forecast_task(x, start, cut=2, count_rows=[0, 1],
                                         bin_seconds=1.0, train_fraction=0.5)
  end, forecast_at = start + 6, start + 2
  assert np.all(end[task.train] <= task.cutoff)        # targets known by tau
  assert np.all(forecast_at[task.test] > task.cutoff)  # forecasts after tau
  assert np.intersect1d(task.train, task.test).size == 0
  assert task.train.size + task.test.size + task.dropped == x.shape[0]
  np.testing.assert_allclose(task.counts, x[:, :, 2:].sum(axis=(1, 2)))
  np.testing.assert_allclose(task.target, np.log1p(task.counts))
  assert task.x_input.shape == (30, 2, 2)
  with pytest.raises(ConfigError, match='cut'):
    applications.make_forecast_task(x, start, cut=6, count_rows=[0],
                                    bin_seconds=1.0, train_fraction=0.5)
  with pytest.raises(DataError, match='empty split'):
    applications.make_forecast_task(x, np.zeros(30), cut=2, count_rows=[0],
                                    bin_seconds=1.0, train_fraction=0.5)


def _tiny_rcbm(k1=2, k2=2, d=2, tw=2):
  rng = np.random.default_rng(2)

  def level(k, dd, pool):
    w = np.abs(rng.normal(size=(k, dd, tw)))
    w /= np.linalg.norm(w.reshape(k, -1), axis=1)[:, None, None]
    return rcbm_lib.Level(w=w, sigma=1.0, beta=1.0, lam=0.1, pool=pool,
                          strength=np.ones(k))

  levels = (level(k1, d, 2), level(k2, k1, 1))
  return rcbm_lib.RCBM(levels=levels, feature_names=('a', 'b'),
                       scale=np.ones(d),
                       inference=rcbm_lib.InferenceSettings(max_iters=20))


def test_feature_sets_and_forecast_rows():
  x, start = _windows(n=40, t=6)
  task = applications.make_forecast_task(x, start, cut=4, count_rows=[0, 1],
                                         bin_seconds=1.0, train_fraction=0.6)
  model = _tiny_rcbm()
  one_level = rcbm_lib.RCBM(levels=(_tiny_rcbm(k1=4).levels[0],),
                            feature_names=('a', 'b'), scale=np.ones(2))
  feats = applications.feature_sets(model, one_level, task.x_input)
  assert set(feats) == set(applications.FEATURE_SETS)
  # Level 1: K1 x (4 + 2 - 1); level 2: K2 x (ceil(5 / 2) + 1).
  assert feats['raw'].shape == (40, 8) and feats['h1'].shape == (40, 10)
  assert feats['h2'].shape == (40, 8) and feats['h1^2'].shape == (40, 20)
  np.testing.assert_array_equal(feats['h1+h2'],
                                np.hstack([feats['h1'], feats['h2']]))
  rows = applications.forecast(feats, task)
  assert rows[0]['model'] == 'mean' and rows[0]['rank'] is None
  for kind in applications.REGRESSORS:
    block = [r for r in rows if r['model'] == kind]
    assert sorted(r['rank'] for r in block) == [1, 2, 3, 4, 5]
    assert all(np.isfinite(r['rmse']) and r['num_test'] == task.test.size
               for r in block)


def test_linear_regressor_fits_a_linear_target():
  rng = np.random.default_rng(3)
  f = rng.exponential(1.0, size=(200, 3))
  y = np.log1p(f[:, 0]) - 2 * np.log1p(f[:, 1])
  pred, params = applications.fit_predict('var', f[:150], y[:150], f[150:])
  assert np.sqrt(np.mean((pred - y[150:]) ** 2)) < 0.05 * y.std()
  assert 'alpha' in params
  with pytest.raises(ConfigError, match='regressor'):
    applications.fit_predict('arima', f, y, f)
