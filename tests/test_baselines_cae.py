"""Tests of the cAE baseline (conventional 2-D convolutions, K^2 maps)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from cyan_rcbm.errors import DataError
from cyan_rcbm.rcbm.baselines import cae


def _toy(n=64, d=3, t=16, seed=0):
  """Bumps at random times and heights, the same shape on every row."""
  rng = np.random.default_rng(seed)
  bump = np.exp(-0.5 * np.square(np.arange(-2, 3) / 1.0))
  rows = np.array([1.0, 0.5, -0.3])[:d]
  x = np.zeros((n, d, t))
  for i in range(n):
    s = rng.integers(0, t - 5)
    x[i, :, s:s + 5] += rng.exponential(1.0) * rows[:, None] * bump
  return x.astype(np.float32)


@pytest.fixture(scope='module')
def fitted():
  x = _toy()
  cfg = cae.CAEConfig(num_maps=2, num_levels=2, filter_length=3, lam=0.01,
                      learning_rate=1e-2, batch_size=32, max_epochs=40,
                      min_epochs=40, seed=0)
  return x, cfg, cae.fit_cae(x, cfg)


def test_loss_falls_and_reconstructs(fitted):
  x, _, fit = fitted
  losses = [h['loss'] for h in fit.history[0]]
  assert losses[-1] < 0.3 * losses[0], losses[::10]
  xhat = cae.reconstruct(fit.model, x)
  rel = np.sum(np.square(x - xhat)) / np.sum(np.square(x))
  assert rel < 0.15, rel


def test_level_two_has_k_squared_maps_and_param_count(fitted):
  x, cfg, fit = fitted
  levels = cae.encode(fit.model, x[:5])
  k, d, t, tw = cfg.num_maps, x.shape[1], x.shape[2], cfg.filter_length
  assert levels[0][0].shape == (5, d, t, k)
  assert levels[1][0].shape == (5, d, math.ceil(t / cfg.pool), k * k)
  # Level 1: 1 -> K maps and back; level 2: K -> K^2 grouped and back.
  level1 = (d * tw * k + k) + (d * tw * k + 1)
  level2 = (d * tw * k * k + k * k) + (d * tw * k * k + k)
  assert fit.model.level_num_params() == [level1, level2]
  assert fit.model.num_params == level1 + level2 + 4
  assert fit.epochs == [40, 40] and not fit.budget_exhausted


def test_decoder_filters_have_unit_norm_at_most(fitted):
  _, _, fit = fitted
  for p, groups in zip(fit.model.params, fit.model.groups):
    kernel = np.asarray(p['decoder']['kernel'])
    kh, kw, j, o = kernel.shape
    blocks = kernel.reshape(kh, kw, j, groups, o // groups)
    norms = np.sqrt(np.square(blocks).sum(axis=(0, 1, 4)))
    assert np.all(norms <= 1 + 1e-5)


def test_log_prob_mirrors_eq12(fitted):
  x, _, fit = fitted
  m = fit.model
  levels = cae.encode(m, x)
  expected = (-math.log(m.beta[1]) - levels[1][2] / m.beta[1])
  for (_, sq, _), sigma in zip(levels, m.sigma):
    expected = expected + (0.5 * math.log(2 / math.pi) - math.log(sigma)
                           - sq / (2 * sigma ** 2))
  np.testing.assert_allclose(cae.log_prob(m, x), expected, rtol=1e-5,
                             atol=1e-5)
  # sigma, beta are the training MLE.
  assert m.sigma[0] == pytest.approx(math.sqrt(np.mean(levels[0][1])),
                                     rel=1e-5)
  assert m.beta[1] == pytest.approx(np.mean(levels[1][2]), rel=1e-5)


@pytest.mark.parametrize('cin,cout,groups', [(4, 8, 2), (6, 3, 3)])
def test_grouped_conv_equals_lax(cin, cout, groups):
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 5, 9, cin)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(5, 3, cin // groups, cout)), jnp.float32)
  ref = lax.conv_general_dilated(x, w, (1, 1), 'SAME',
                                 dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                 feature_group_count=groups)
  got = cae.grouped_conv(x, w, (1, 1), 'SAME', feature_group_count=groups)
  np.testing.assert_allclose(got, ref, atol=1e-4)


def test_time_budget_and_bad_input():
  x = _toy(n=16, t=8)
  cfg = cae.CAEConfig(num_maps=2, num_levels=1, filter_length=3,
                      batch_size=16, max_epochs=50, min_epochs=2, tol=0.0,
                      time_budget_s=0.0)
  fit = cae.fit_cae(x, cfg)
  assert fit.epochs == [2] and fit.budget_exhausted
  with pytest.raises(DataError, match='shorter'):
    cae.fit_cae(x[:, :, :2], cfg)
  with pytest.raises(DataError, match='shape'):
    cae.log_prob(fit.model, x[:, :2])
  with pytest.raises(ValueError, match='num_maps'):
    cae.CAEConfig(num_maps=0)
