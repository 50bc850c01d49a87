"""Tests for cyan_rcbm.cyan.recalibration (Kuleshov et al. 2018, discrete).

The array-level functions are checked on hand-made samples and on Poisson
forecasts with a known wrong law; the model-level check draws "true"
cascades from a tiny model A (as in tests/test_sampling.py) and forecasts
them with a model B whose gap law is wrong (A's rates x3): B's raw 90%
intervals miss, its recalibrated ones must not.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import cyan_rcbm as cr
from cyan_rcbm.cyan import recalibration
from cyan_rcbm.cyan import sampling
from cyan_rcbm.data import types

U = 32
CUT, HORIZON = 1.0, 5.0
NUM = 300  # calibration cascades, and as many test cascades
SAMPLES = 200


def _perturbed(rate_factor: float = 1.0):
  """Tiny model with a history-dependent gap law (tests/test_sampling.py);
  `rate_factor` multiplies every intensity (shifts the time-head bias)."""
  config = cr.load_config('configs/cyan.py:tiny')
  model = cr.create_cyan(config, U, seed=0)
  rng = np.random.default_rng(0)
  p = jax.tree.map(np.asarray, model.params)
  p['time_w_in'] = rng.normal(0, 0.4, p['time_w_in'].shape).astype(np.float32)
  p['time_b'] = np.float32(-0.5 + math.log(rate_factor))
  p['head']['kernel'] = p['head']['kernel'] * 3
  model.params = jax.tree.map(jnp.asarray, p)
  return model


@pytest.fixture(scope='module')
def setting():
  """Model A (the truth), model B (rates 3x too high), A's cascades."""
  truth_model, wrong = _perturbed(), _perturbed(3.0)
  roots = [types.Cascade(id=str(i), users=np.array([i % U], np.int32),
                         times=np.zeros(1)) for i in range(2 * NUM)]
  drawn = sampling.sample_continuations(
      truth_model.graphdef, truth_model.params, roots, num_samples=1,
      max_events=U - 1, horizon=CUT + HORIZON, seed=100)
  full = [sampling.continuation_cascades(r, drawn, [i])[0]
          for i, r in enumerate(roots)]
  calibration = wrong.calibrate_forecasts(full[:NUM], cut=CUT,
                                          horizon=HORIZON,
                                          num_samples=SAMPLES, seed=0)
  return dict(wrong=wrong, calib=full[:NUM], test=full[NUM:],
              calibration=calibration)


# -- array level ---------------------------------------------------------------


def test_randomised_pit_hand_computed():
  samples = [np.array([1, 2, 2, 3]), np.array([5]), np.array([4, 6])]
  truth = np.array([2, 0, 9])
  v = np.random.default_rng(3).uniform(size=3)
  got = recalibration.randomised_pit(samples, truth, np.random.default_rng(3))
  # F(2-) = 1/4, P(2) = 1/2; below every sample: 0; above every sample: 1.
  np.testing.assert_allclose(got, [0.25 + 0.5 * v[0], 0.0, 1.0])


def test_randomised_pit_is_uniform_for_a_calibrated_discrete_forecast():
  rng = np.random.default_rng(0)
  mu = rng.uniform(0.5, 6.0, 3000)
  truth = rng.poisson(mu)
  samples = rng.poisson(mu[:, None], (3000, 400))
  pits = recalibration.randomised_pit(samples, truth, rng)
  assert stats.kstest(pits, 'uniform').pvalue > 1e-3
  # without the randomisation, F(s) alone piles up on the steps.
  assert stats.kstest(np.mean(samples <= truth[:, None], 1),
                      'uniform').pvalue < 1e-6


def test_uniform_pits_leave_the_levels_unchanged():
  n = 199  # ranks 10 and 190 of 199: exactly the 5% and 95% points
  pits = np.random.default_rng(0).permutation(np.arange(1, n + 1) / (n + 1))
  assert recalibration.recalibrated_levels(pits, 0.9) == pytest.approx(
      (0.05, 0.95))
  uniform = np.random.default_rng(1).uniform(size=4000)
  for level in (0.5, 0.8, 0.9):
    lo, hi = recalibration.recalibrated_levels(uniform, level)
    assert lo == pytest.approx((1 - level) / 2, abs=0.015)
    assert hi == pytest.approx((1 + level) / 2, abs=0.015)


def test_pits_in_the_middle_narrow_and_at_the_ends_widen_the_interval():
  rng = np.random.default_rng(0)
  samples = np.arange(1000)
  raw = recalibration.interval(samples, 0.05, 0.95)
  middle = np.clip(rng.normal(0.5, 0.08, 2000), 0, 1)  # overdispersed forecast
  ends = rng.beta(0.3, 0.3, 2000)                       # too narrow a forecast
  narrow = recalibration.interval(
      samples, *recalibration.recalibrated_levels(middle, 0.9))
  wide = recalibration.interval(
      samples, *recalibration.recalibrated_levels(ends, 0.9))
  assert raw == (49, 949)
  assert raw[0] < narrow[0] < narrow[1] < raw[1]
  assert narrow[1] - narrow[0] < 0.4 * (raw[1] - raw[0])
  assert wide[0] < raw[0] and wide[1] > raw[1]


def test_interval_hand_computed():
  samples = np.array([8, 1, 2, 12, 2, 3, 5, 9, 8, 10])  # F: 1 .1, 2 .3, 3 .4
  assert recalibration.interval(samples, 0.15, 0.85) == (2, 10)
  assert recalibration.interval(samples, 0.25, 0.45) == (2, 5)
  assert recalibration.interval(samples, 0.0, 1.0) == (1, 12)
  assert recalibration.interval(samples, 0.5, 0.5) == (5, 5)


def test_recalibrated_poisson_forecasts_reach_the_level():
  """Poisson truths, forecasts with 0.8x the mean: PIT coverage ~ 0.9."""
  rng = np.random.default_rng(0)

  def forecasts(n):
    mu = rng.uniform(2, 20, n)
    return rng.poisson(0.8 * mu[:, None], (n, 400)), rng.poisson(mu)

  calib, truth_c = forecasts(4000)
  test, truth_t = forecasts(4000)
  lo, hi = recalibration.recalibrated_levels(
      recalibration.randomised_pit(calib, truth_c, rng), 0.9)
  u = recalibration.randomised_pit(test, truth_t, rng)
  bounds = np.array([recalibration.interval(s, lo, hi) for s in test])
  raw = np.array([recalibration.interval(s, 0.05, 0.95) for s in test])
  covered = lambda b: np.mean((b[:, 0] <= truth_t) & (truth_t <= b[:, 1]))
  assert covered(raw) < 0.87
  assert 0.88 <= np.mean((lo <= u) & (u <= hi)) <= 0.92
  # the interval holds every truth whose PIT is in [lo, hi), often more.
  assert np.mean((lo <= u) & (u < hi)) <= covered(bounds) <= 0.97


def test_bad_array_inputs():
  rng = np.random.default_rng(0)
  with pytest.raises(cr.InputError, match='2 sample sets for 3'):
    recalibration.randomised_pit(np.ones((2, 4)), [1, 2, 3], rng)
  with pytest.raises(cr.InputError, match='no forecasts'):
    recalibration.randomised_pit([], [], rng)
  with pytest.raises(cr.InputError, match='forecast 1 has no samples'):
    recalibration.randomised_pit([np.ones(3), np.ones(0)], [1, 1], rng)
  with pytest.raises(cr.InputError, match='at least 19 calibration cascades'):
    recalibration.recalibrated_levels(np.linspace(0, 1, 18), 0.9)
  recalibration.recalibrated_levels(np.linspace(0, 1, 19), 0.9)
  assert recalibration.min_cascades(0.5) == 3
  assert recalibration.min_cascades(0.95) == 39
  for pits, level in (([], 0.5), ([0.2, 1.5, 0.3], 0.5),
                      ([0.2, np.nan, 0.3], 0.5), ([0.5] * 50, 1.0),
                      ([0.5] * 50, 0.0), ([0.5] * 50, '0.9')):
    with pytest.raises(cr.InputError):
      recalibration.recalibrated_levels(np.asarray(pits, float), level)
  for lo, hi in ((0.6, 0.4), (-0.1, 0.5), (0.5, 1.2)):
    with pytest.raises(cr.InputError, match='q_lo <= q_hi'):
      recalibration.interval(np.arange(5), lo, hi)
  with pytest.raises(cr.InputError, match='no samples'):
    recalibration.interval(np.array([]), 0.1, 0.9)


# -- the model -----------------------------------------------------------------


def _coverage(forecasts, cascades, cut: float, horizon: float) -> float:
  truth = [int(np.sum(c.times <= cut + horizon)) for c in cascades]
  return float(np.mean([f.covers(s) for f, s in zip(forecasts, truth)]))


def test_recalibration_repairs_a_wrong_models_coverage(setting):
  """B (rates 3x too high) misses the truth; recalibrated on disjoint
  cascades, its 90% intervals cover ~90% of new ones."""
  wrong, test, cal = setting['wrong'], setting['test'], setting['calibration']
  assert cal.num_cascades == NUM and cal.horizon == HORIZON
  assert cal.cut == CUT and cal.num_samples == SAMPLES
  assert np.all(np.diff(cal.pits) >= 0)  # sorted
  assert cal.raw_coverage[0.9] < 0.8 and cal.pit_ks_pvalue < 1e-6
  assert cal.raw_coverage[0.5] < cal.raw_coverage[0.8] < cal.raw_coverage[0.9]
  prefixes = [cr.observed_prefix(c, CUT) for c in test]
  kw = dict(horizon=HORIZON, observed_until=[CUT] * NUM,
            num_samples=SAMPLES, level=0.9, seed=1)
  raw = wrong.forecast_sizes(prefixes, **kw)
  fixed = wrong.forecast_sizes(prefixes, calibration=cal, **kw)
  assert not any(f.calibrated for f in raw)
  assert all(f.calibrated and f.level == 0.9 for f in fixed)
  for a, b in zip(raw, fixed):
    np.testing.assert_array_equal(a.samples, b.samples)
  assert _coverage(raw, test, CUT, HORIZON) < 0.75
  assert 0.83 <= _coverage(fixed, test, CUT, HORIZON) <= 0.97
  # the rates are too high: the recalibrated interval moves down.
  assert np.mean([f.upper for f in fixed]) < np.mean([f.upper for f in raw])
  one = wrong.forecast_size(prefixes[0], horizon=HORIZON, observed_until=CUT,
                            num_samples=SAMPLES, seed=1, calibration=cal)
  assert (one.lower, one.upper) == (fixed[0].lower, fixed[0].upper)


def test_calibration_input_errors(setting):
  wrong, calib, cal = setting['wrong'], setting['calib'], setting['calibration']
  fit = lambda cascades, **kw: wrong.calibrate_forecasts(
      cascades, **{**dict(cut=CUT, horizon=HORIZON), **kw})
  with pytest.raises(cr.InputError, match='no cascades'):
    fit([])
  with pytest.raises(cr.InputError, match='no calibration cascades'):
    recalibration.fit_forecast_calibration(wrong, [], cut=CUT,
                                           horizon=HORIZON)
  with pytest.raises(cr.InputError, match='at least 19 calibration cascades; '
                     'got 10'):
    fit(calib[:10])
  with pytest.raises(cr.InputError, match='at least 39'):
    fit(calib[:30], level=0.95)
  for kw in (dict(cut=0.0), dict(cut=-1.0), dict(cut=math.inf),
             dict(cut=math.nan), dict(horizon=0.0), dict(horizon=-2.0),
             dict(horizon=math.nan), dict(horizon='5')):
    with pytest.raises(cr.InputError, match='cut|horizon'):
      fit(calib, **kw)
  (other,) = sampling.size_forecasts(np.array([[3, 4, 5]]), np.array([3]),
                                     np.zeros((1, 3)), level=0.9,
                                     horizon=HORIZON + 1)
  with pytest.raises(cr.InputError, match='horizon 6 but the calibration '
                     'was fit at horizon 5'):
    cal.apply([other])
  # a level the calibration set is too small for is refused at apply time.
  small = dataclasses.replace(cal, pits=cal.pits[:20], num_cascades=20)
  with pytest.raises(cr.InputError, match='at least 39'):
    small.apply([dataclasses.replace(other, horizon=HORIZON, level=0.95)])
