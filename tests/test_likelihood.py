"""Tests for cyan_rcbm.rcbm.likelihood (equations.md B3, B6; Eqs. 3, 12)."""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats

from cyan_rcbm.data.planted import make_planted
from cyan_rcbm.rcbm import cbm
from cyan_rcbm.rcbm import likelihood
from cyan_rcbm.rcbm import rcbm as rcbm_lib


def test_densities_are_normalised():
  """exp(log P(X|h)) as a density of e = sqrt(sq_err) (half-normal) and
  exp(log P(h)) as a density of a (exponential) integrate to one."""
  sigma, beta = 0.7, 2.5
  total, _ = integrate.quad(
      lambda e: math.exp(likelihood.log_p_x_given_h(e * e, sigma)), 0, np.inf)
  assert total == pytest.approx(1.0, rel=1e-8)
  total, _ = integrate.quad(
      lambda a: math.exp(likelihood.log_p_h(a, beta)), 0, np.inf)
  assert total == pytest.approx(1.0, rel=1e-8)
  # MLE: sigma = sqrt(mean e^2) and beta = mean a maximise the joint.
  rng = np.random.default_rng(0)
  sq, l1 = rng.random(50) * 3, rng.random(50) * 2
  s0, b0 = math.sqrt(sq.mean()), l1.mean()
  best = likelihood.cbm_log_joint(sq, l1, s0, b0).sum()
  for s, b in [(s0 * 1.01, b0), (s0 * 0.99, b0), (s0, b0 * 1.01),
               (s0, b0 * 0.99)]:
    assert likelihood.cbm_log_joint(sq, l1, s, b).sum() < best


@pytest.fixture(scope='module')
def model_and_data():
  # Shapes and settings of configs/rcbm.py:tiny (compilations are shared).
  dyn, _, _ = make_planted(192, length=30, num_filters=3, seed=3)
  specs = [rcbm_lib.LevelSpec(3, 5, 2), rcbm_lib.LevelSpec(3, 3, 1)]
  model, _ = rcbm_lib.fit_rcbm(
      dyn.x[:96], specs, cfg=cbm.SolverConfig(lam=0.3, inner_max_iters=30),
      feature_names=dyn.feature_names,
      inference=rcbm_lib.InferenceSettings(max_iters=100, batch_size=32),
      fit_kwargs=dict(max_iters=40, batch_size=64))
  return model, dyn.x


def test_eq12_joint_and_scores(model_and_data):
  model, x = model_and_data
  acts = rcbm_lib.infer(model, x[96:])
  manual = (likelihood.log_p_x_given_h(acts[0].sq_err, model.levels[0].sigma)
            + likelihood.log_p_x_given_h(acts[1].sq_err,
                                         model.levels[1].sigma)
            + likelihood.log_p_h(acts[1].l1, model.levels[1].beta))
  log_p = likelihood.log_prob(model, x[96:])
  np.testing.assert_allclose(log_p, manual, rtol=1e-6)
  np.testing.assert_allclose(likelihood.anomaly_scores(model, x[96:]),
                             -log_p)
  assert likelihood.perplexity(model, x[96:]) == pytest.approx(
      math.exp(-log_p.mean()))
  with pytest.raises(ValueError, match='all 2 levels'):
    likelihood.joint_from_activations(model, acts[:1])


def test_perplexity_lower_on_real_than_shuffled_time(model_and_data):
  model, x = model_and_data
  held_out = x[96:]
  rng = np.random.default_rng(1)
  shuffled = np.stack([s[:, rng.permutation(s.shape[1])] for s in held_out])
  p_real = likelihood.perplexity(model, held_out)
  p_shuffled = likelihood.perplexity(model, shuffled)
  assert np.isfinite(p_real) and np.isfinite(p_shuffled)
  assert p_real < p_shuffled
  assert likelihood.perplexity_from_log_prob(np.array([-1e6])) == math.inf


def test_level_bic():
  sq, l1 = np.array([1.0, 2.0]), np.array([0.5, 1.5])
  value = likelihood.level_bic(sq, l1, 1.2, 1.0, 3, 2, 4)
  log_l = likelihood.cbm_log_joint(sq, l1, 1.2, 1.0).sum()
  assert value == pytest.approx(2 * log_l - (3 * 2 * 4 + 2) * math.log(2))


def test_residual_scores_are_the_gaussian_and_half_normal_densities():
  """Per entry: sum_dt log N(r_dt; 0, sigma^2/(D T)) / (D T); per sample:
  log HalfNormal(||r||_F; sigma); both averaged over held-out samples."""
  rng = np.random.default_rng(0)
  resid = 0.3 * rng.standard_normal((5, 3, 4))
  sq = np.sum(resid ** 2, axis=(1, 2))
  sigma = 0.9
  got = likelihood.residual_nll(sq, sigma, 12)
  s = sigma / np.sqrt(12)
  want_entry = -np.mean(stats.norm(0, s).logpdf(resid).sum(axis=(1, 2))) / 12
  want_sample = -np.mean(stats.halfnorm(scale=sigma).logpdf(np.sqrt(sq)))
  assert got['per_entry'] == pytest.approx(want_entry, rel=1e-10)
  assert got['per_sample'] == pytest.approx(want_sample, rel=1e-10)
  # The two readings differ by log(D T / 4) / 2 whatever sigma and e are.
  other = likelihood.residual_nll(2.0 * sq, 0.4, 12)
  for g in (got, other):
    assert g['per_sample'] - g['per_entry'] == pytest.approx(
        0.5 * np.log(12 / 4), rel=1e-10)
  with pytest.raises(ValueError, match='sigma_train'):
    likelihood.residual_nll(sq, 0.0, 12)
