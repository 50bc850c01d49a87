"""Tests for cyan_rcbm.cyan.baselines.point_process (Poisson, Hawkes)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate
from scipy import optimize

from cyan_rcbm import errors
from cyan_rcbm.cyan import evaluate
from cyan_rcbm.cyan.baselines import _common
from cyan_rcbm.cyan.baselines import point_process as pp
from cyan_rcbm.data.types import Cascade, CascadeDataset


def _dataset(time_lists):
  return CascadeDataset(
      [Cascade(str(i), np.arange(len(t), dtype=np.int32),
               np.asarray(t, np.float64)) for i, t in enumerate(time_lists)],
      vocab=[str(u) for u in range(max(len(t) for t in time_lists))])


def _simulate_hawkes(base_rate, alpha, sigma, num_events, rng):
  """Ogata thinning; a cascade is its first `num_events` events from t = 0."""
  times = [0.0]
  while len(times) < num_events:
    t = times[-1]
    while True:
      past = np.asarray(times)
      bound = base_rate + alpha * np.exp(-(t - past) / sigma).sum()
      t += rng.exponential(1.0 / bound)
      rate = base_rate + alpha * np.exp(-(t - past) / sigma).sum()
      if rng.random() * bound <= rate:
        break
    times.append(t)
  return times


@pytest.fixture(scope='module')
def hawkes_data():
  rng = np.random.default_rng(0)
  return _dataset([_simulate_hawkes(0.3, 0.6, 1.0, 12, rng)
                   for _ in range(600)])


def _numpy_log_likelihood(base_rate, alpha, times, sigma=1.0):
  """Direct O(N^2) log-likelihood of events 2..N given event 1."""
  total = 0.0
  for k in range(1, len(times)):
    past = np.asarray(times[:k])
    d = times[k] - times[k - 1]
    intensity = base_rate + alpha * np.exp(-(times[k] - past) / sigma).sum()
    compensator, _ = integrate.quad(
        lambda s: base_rate + alpha * np.exp(-(times[k - 1] + s - past) /
                                             sigma).sum(), 0.0, d)
    total += np.log(intensity) - compensator
  return total


def test_poisson_mle_closed_form():
  data = _dataset([[0.0, 1.0, 3.0], [5.0, 5.5]])  # gaps 1, 2, 0.5
  model = pp.PoissonProcess.fit(data)
  assert model.rate == pytest.approx(3 / 3.5)
  assert model.num_events == 3
  scores, gap, nll, extras = model.predict(_common.padded(data))
  assert scores is None and nll is None
  np.testing.assert_allclose(gap, 3.5 / 3, rtol=1e-6)
  time_nll = np.asarray(extras['time_nll_per_event'])
  np.testing.assert_allclose(time_nll[0, :2],
                             model.rate * np.array([1.0, 2.0]) -
                             np.log(model.rate), rtol=1e-6)
  result = evaluate.evaluate(model, data, batch_size=2)
  # predicted gap 7/6 vs true gaps 1, 2, 0.5
  expected = np.sqrt(np.mean((7 / 6 - np.array([1.0, 2.0, 0.5])) ** 2))
  assert result['rmse'] == pytest.approx(expected, rel=1e-6)
  assert result['acc@1'] is None and result['mrr'] is None


def test_hawkes_log_likelihood_two_and_three_events_by_hand():
  lam, alpha = 0.4, 0.7
  # Two events, gap d: log(lam + alpha e^-d) - lam d - alpha (1 - e^-d).
  d = 0.8
  batch = _common.padded(_dataset([[2.0, 2.0 + d]]))
  ll = np.asarray(pp.hawkes_log_likelihood(lam, alpha, batch.gaps,
                                           batch.mask))
  by_hand = np.log(lam + alpha * np.exp(-d)) - lam * d - alpha * (
      1 - np.exp(-d))
  np.testing.assert_allclose(ll[0], [by_hand, 0.0], rtol=1e-6)
  # Three events at 0, 1, 3: R_2 = 1 + e^-1 for the third.
  batch = _common.padded(_dataset([[0.0, 1.0, 3.0]]))
  ll = np.asarray(pp.hawkes_log_likelihood(lam, alpha, batch.gaps,
                                           batch.mask))
  r2 = 1 + np.exp(-1.0)
  third = np.log(lam + alpha * r2 * np.exp(-2.0)) - 2 * lam - alpha * r2 * (
      1 - np.exp(-2.0))
  np.testing.assert_allclose(ll[0, 1], third, rtol=1e-6)
  # Against direct summation and quadrature of the intensity, with sigma 0.5.
  times = [0.0, 0.3, 0.31, 1.7, 1.7, 2.4]
  batch = _common.padded(_dataset([times]))
  ll = np.asarray(pp.hawkes_log_likelihood(lam, alpha, batch.gaps,
                                           batch.mask, sigma=0.5))
  assert ll.sum() == pytest.approx(
      _numpy_log_likelihood(lam, alpha, times, sigma=0.5), rel=1e-5)


@pytest.mark.parametrize('lam,alpha,excitation,sigma', list(itertools.product(
    (1e-3, 0.5, 40.0), (0.0, 0.3, 20.0), (1.0, 7.5, 400.0), (1.0, 0.2))))
def test_hawkes_expected_gap_against_scipy(lam, alpha, excitation, sigma):
  big_a = alpha * sigma * excitation
  survival = lambda d: np.exp(-lam * d + big_a * np.expm1(-d / sigma))
  scales = [1 / (lam + alpha * excitation), sigma, 1 / lam]
  reference, _ = integrate.quad(
      lambda z: survival(np.exp(z)) * np.exp(z), -60.0,
      np.log(max(scales)) + 8.0, points=sorted(np.log(scales)), limit=1000,
      epsabs=0.0, epsrel=1e-12)
  with jax.enable_x64(True):
    value = float(pp.hawkes_expected_gap(jnp.float64(lam), jnp.float64(alpha),
                                         jnp.float64(excitation), sigma))
  assert value == pytest.approx(reference, rel=1e-7)
  # float32, as used in evaluation.
  value32 = float(pp.hawkes_expected_gap(jnp.float32(lam), jnp.float32(alpha),
                                         jnp.float32(excitation), sigma))
  assert value32 == pytest.approx(reference, rel=1e-4)
  assert jnp.ones(()).dtype == jnp.float32  # x64 was restored


def test_hawkes_fit_matches_scipy_mle_and_recovers_parameters(hawkes_data):
  model = pp.HawkesProcess.fit(hawkes_data)
  assert model.converged
  r, d = _excitations_and_gaps([c.times for c in hawkes_data.cascades])

  def objective(theta):
    lam, alpha = np.exp(theta)
    return -np.mean(np.log(lam + alpha * r * np.exp(-d)) - lam * d -
                    alpha * r * (1 - np.exp(-d)))

  reference = optimize.minimize(objective, np.log([0.5, 0.5]),
                                method='Nelder-Mead',
                                options=dict(xatol=1e-7, fatol=1e-12))
  np.testing.assert_allclose([model.base_rate, model.alpha],
                             np.exp(reference.x), rtol=2e-3)
  assert model.base_rate == pytest.approx(0.3, rel=0.15)
  assert model.alpha == pytest.approx(0.6, rel=0.15)


def _excitations_and_gaps(time_lists):
  """(R_k, d_k) arrays over all next events (independent numpy recursion)."""
  excitations, gaps = [], []
  for t in time_lists:
    r = 1.0
    for k in range(1, len(t)):
      d = t[k] - t[k - 1]
      excitations.append(r)
      gaps.append(d)
      r = 1.0 + np.exp(-d) * r
  return np.asarray(excitations), np.asarray(gaps)


def test_hawkes_predict_matches_the_pieces(hawkes_data):
  model = pp.HawkesProcess(base_rate=0.3, alpha=0.6)
  batch = _common.padded(hawkes_data)
  scores, gap, nll, extras = model.predict(batch)
  assert scores is None and nll is None
  excitation = pp.hawkes_excitation(batch.gaps)
  d, has_next = _common.next_gaps(batch.gaps, batch.mask)
  r_ref, d_ref = _excitations_and_gaps([c.times for c in
                                        hawkes_data.cascades])
  np.testing.assert_allclose(np.asarray(excitation)[has_next], r_ref,
                             rtol=1e-5)
  np.testing.assert_allclose(d[has_next], d_ref, rtol=1e-5)
  np.testing.assert_allclose(
      np.asarray(gap), pp.hawkes_expected_gap(0.3, 0.6, excitation),
      rtol=1e-6)
  # alpha = 0: the Poisson mean 1 / lambda_0.
  flat = pp.HawkesProcess(base_rate=0.3, alpha=0.0).predict(batch)[1]
  np.testing.assert_allclose(np.asarray(flat), 1 / 0.3, rtol=1e-5)
  assert np.all(np.isfinite(np.asarray(extras['time_nll_per_event'])))


def test_errors():
  with pytest.raises(errors.DataError, match='all 2 training gaps are 0'):
    pp.PoissonProcess.fit(_dataset([[1.0, 1.0, 1.0]]))
  with pytest.raises(errors.ConfigError, match='sigma must be > 0'):
    pp.HawkesProcess.fit(_dataset([[0.0, 1.0]]), sigma=0.0)
