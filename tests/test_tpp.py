"""Tests for cyan_rcbm.cyan.tpp: the closed forms of the RMTPP time law."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate
from scipy import special
from scipy import stats

from cyan_rcbm.cyan import tpp

# b in [-20, 20], w in [1e-6, 1e3]: the extremes of the issue and points between.
_BS = (-20.0, -5.0, 0.0, 3.0, 20.0)
_WS = (1e-6, 1e-3, 1.0, 30.0, 1e3)
_GRID = list(itertools.product(_BS, _WS))


def _quad_in_log_gap(fn, scale):
  """int_0^inf fn(d) dd as int fn(e^y) e^y dy over y in log(scale) + [-60, 8].

  Composite 20-point Gauss-Legendre on 340 panels (one vectorised call);
  checked against scipy.integrate.quad in
  `test_quadrature_rule_matches_scipy_quad`.
  """
  nodes, weights = np.polynomial.legendre.leggauss(20)
  edges = np.log(scale) + np.linspace(-60.0, 8.0, 341)
  half = np.diff(edges)[:, None] / 2
  y = (edges[:-1, None] + half * (nodes + 1)).ravel()
  w = (half * weights).ravel()
  return float(np.sum(w * np.asarray(fn(np.exp(y))) * np.exp(y)))


def test_quadrature_rule_matches_scipy_quad():
  fn = lambda d: np.exp(-d) * d**0.5
  ref, _ = integrate.quad(fn, 0, np.inf, epsabs=0, epsrel=1e-12)
  assert _quad_in_log_gap(fn, 1.0) == pytest.approx(ref, rel=1e-11)


@pytest.fixture(scope='module')
def x64_fns():
  with jax.enable_x64(True):
    log_f = jax.jit(tpp.log_density)
    log_s = jax.jit(tpp.log_survival)
    mean = jax.jit(tpp.expected_gap)
    yield log_f, log_s, mean
  assert jnp.ones(()).dtype == jnp.float32  # x64 was restored.


@pytest.mark.parametrize('b,w', _GRID)
def test_density_integrates_to_one_and_mean_matches_quadrature(x64_fns, b, w):
  log_f, log_s, mean = x64_fns
  with jax.enable_x64(True):
    expected = float(mean(jnp.float64(b), jnp.float64(w)))
    density = lambda d: np.exp(log_f(d, b, w))
    survival = lambda d: np.exp(log_s(d, b, w))
    total = _quad_in_log_gap(density, expected)
    # E[d] = int_0^inf S(d) dd: an independent numerical route to the mean.
    numeric_mean = _quad_in_log_gap(survival, expected)
  assert total == pytest.approx(1.0, abs=1e-8)
  assert expected == pytest.approx(numeric_mean, rel=1e-8)


def test_expected_gap_limits():
  with jax.enable_x64(True):
    mean = jax.jit(tpp.expected_gap)
    # w -> 0: exponential law with rate e^b.
    assert float(mean(2.0, 1e-12)) == pytest.approx(np.exp(-2.0), rel=1e-9)
    # closed form against scipy where e^a E_1(a) is representable.
    for b, w in [(0.0, 1.0), (-3.0, 0.5), (1.0, 10.0)]:
      a = np.exp(b) / w
      ref = np.exp(a) * special.exp1(a) / w
      assert float(mean(b, w)) == pytest.approx(ref, rel=1e-12)


def test_exp_e1_matches_scipy_across_the_switch():
  a = np.concatenate([np.logspace(-14, 2.8, 400), [2 - 1e-9, 2.0, 2 + 1e-9]])
  ref = np.exp(a) * special.exp1(a)
  with jax.enable_x64(True):
    got = np.asarray(jax.jit(tpp.exp_e1)(a))
  np.testing.assert_allclose(got, ref, rtol=1e-13)


def test_float32_agrees_with_float64_and_has_finite_gradients():
  b, w = np.meshgrid(np.linspace(-20, 20, 41), np.logspace(-6, 3, 37))
  gap = np.float32(0.7)
  mean_fn, logf_fn = jax.jit(tpp.expected_gap), jax.jit(tpp.log_density)
  with jax.enable_x64(True):
    mean64 = np.asarray(mean_fn(b, w))
    logf64 = np.asarray(logf_fn(gap, b, w))
  mean32 = np.asarray(mean_fn(b.astype(np.float32), w.astype(np.float32)))
  assert mean32.dtype == np.float32
  np.testing.assert_allclose(mean32, mean64, rtol=2e-5)
  logf32 = np.asarray(logf_fn(gap, b.astype(np.float32),
                              w.astype(np.float32)))
  moderate = np.abs(logf64) < 1e6
  np.testing.assert_allclose(logf32[moderate], logf64[moderate], rtol=2e-5,
                             atol=2e-5)
  grad = jax.jit(jax.grad(lambda b, w: jnp.sum(tpp.log_density(gap, b, w)),
                          argnums=(0, 1)))
  gb, gw = grad(jnp.asarray(b, jnp.float32), jnp.asarray(w, jnp.float32))
  finite = moderate
  assert np.all(np.isfinite(np.asarray(gb)[finite]))
  assert np.all(np.isfinite(np.asarray(gw)[finite]))


def test_log_density_at_zero_gap_and_exactness():
  with jax.enable_x64(True):
    assert float(tpp.log_density(0.0, 1.5, 2.0)) == pytest.approx(1.5)
    d, b, w = 0.3, -0.2, 0.8
    naive = b + w * d - np.exp(b) / w * np.expm1(w * d)
    assert float(tpp.log_density(d, b, w)) == pytest.approx(naive, rel=1e-14)


@pytest.mark.parametrize('b,w', [(0.0, 1.0), (2.0, 1e-5), (-1.0, 50.0)])
def test_sampler_follows_the_law(b, w):
  samples = np.asarray(jax.jit(tpp.sample_gap)(jax.random.key(0), jnp.full(
      (20000,), b, jnp.float32), jnp.float32(w)))
  assert np.all(samples >= 0)
  a = np.exp(b) / w
  cdf = lambda d: -np.expm1(-a * np.expm1(w * np.asarray(d, np.float64)))
  assert stats.kstest(samples, cdf).pvalue > 1e-3
  mean = float(jax.jit(tpp.expected_gap)(jnp.float32(b), jnp.float32(w)))
  assert np.mean(samples) == pytest.approx(mean, rel=0.05)
