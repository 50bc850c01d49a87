"""Tests of the SSM baseline: exact Kalman log-likelihood, monotone EM."""

import jax
import numpy as np
import pytest
from scipy import stats

from cyan_rcbm.errors import DataError
from cyan_rcbm.rcbm.baselines import ssm


def _tiny_params(rng, k=2, d=3):
  return ssm.SSMParams(
      a=0.5 * rng.normal(size=(k, k)), c=rng.normal(size=(d, k)),
      q=0.3 * np.eye(k) + 0.1, r=np.array([0.2, 0.5, 0.3])[:d],
      mu0=rng.normal(size=k), p0=0.7 * np.eye(k))


def _dense_moments(p, d, t):
  """Mean and covariance of vec(y_1..y_T) (time-major), dense."""
  means, covs = [p.mu0], [p.p0]
  for _ in range(1, t):
    means.append(p.a @ means[-1])
    covs.append(p.a @ covs[-1] @ p.a.T + p.q)
  mu = np.concatenate([p.c @ m for m in means])
  sigma = np.zeros((t * d, t * d))
  for s in range(t):
    for u in range(s, t):
      block = p.c @ np.linalg.matrix_power(p.a, u - s) @ covs[s] @ p.c.T
      if s == u:
        block = block + np.diag(p.r)
      sigma[u * d:(u + 1) * d, s * d:(s + 1) * d] = block
      sigma[s * d:(s + 1) * d, u * d:(u + 1) * d] = block.T
  return mu, sigma


def _brute_force_log_pdf(p, x_NxDxT):
  """log N(vec(y_1..y_T); mean, Sigma) with the dense joint covariance."""
  _, d, t = x_NxDxT.shape
  mu, sigma = _dense_moments(p, d, t)
  return np.array([stats.multivariate_normal(mu, sigma).logpdf(xi.T.ravel())
                   for xi in x_NxDxT])


def test_kalman_log_likelihood_equals_dense_gaussian():
  rng = np.random.default_rng(0)
  with jax.enable_x64(True):
    p = _tiny_params(rng)
    x = rng.normal(size=(4, 3, 5))
    got = ssm.log_prob(p, x)
  assert not jax.config.jax_enable_x64
  np.testing.assert_allclose(got, _brute_force_log_pdf(p, x), rtol=1e-10,
                             atol=1e-10)


def test_reconstruction_is_the_dense_conditional_mean():
  """E[C z_t | y_1..y_T] = mu + (Sigma - R) Sigma^-1 (y - mu), dense."""
  rng = np.random.default_rng(4)
  with jax.enable_x64(True):
    p = _tiny_params(rng)
    x = rng.normal(size=(3, 3, 5))
    got = ssm.reconstruct(p, x)
  mu, sigma = _dense_moments(p, 3, 5)
  noise = np.diag(np.tile(p.r, 5))
  want = [(mu + (sigma - noise) @ np.linalg.solve(sigma, xi.T.ravel() - mu)
           ).reshape(5, 3).T for xi in x]
  np.testing.assert_allclose(got, np.array(want), rtol=1e-8, atol=1e-10)
  with pytest.raises(DataError, match='features'):
    ssm.reconstruct(p, x[:, :2])


def test_kalman_log_likelihood_float32_close():
  rng = np.random.default_rng(1)
  p = _tiny_params(rng)
  x = rng.normal(size=(3, 3, 6))
  np.testing.assert_allclose(ssm.log_prob(p, x.astype(np.float32)),
                             _brute_force_log_pdf(p, x), rtol=2e-4)


def test_em_never_decreases_likelihood_and_learns():
  rng = np.random.default_rng(2)
  true = _tiny_params(rng)
  true = true._replace(a=np.array([[0.9, 0.2], [-0.2, 0.8]]))
  # Sample from the model.
  n, t = 40, 15
  z = rng.multivariate_normal(true.mu0, true.p0, size=n)
  ys = []
  for _ in range(t):
    ys.append(z @ true.c.T + rng.normal(size=(n, 3)) * np.sqrt(true.r))
    z = z @ true.a.T + rng.multivariate_normal(np.zeros(2), true.q, size=n)
  x = np.stack(ys, axis=2)
  with jax.enable_x64(True):
    fit = ssm.fit_ssm(x, 2, max_iters=40, tol=0.0, min_variance=1e-9)
    ll_true = float(np.mean(ssm.log_prob(true, x)))
    ll_fit = float(np.mean(ssm.log_prob(fit.params, x)))
  lls = np.array(fit.log_likelihood)
  assert len(lls) == 40
  assert np.all(np.diff(lls) >= -1e-9 * np.abs(lls[1:])), np.diff(lls).min()
  assert lls[-1] > lls[0] + 1.0
  # The MLE fits the data at least about as well as the true parameters.
  assert ll_fit > ll_true - 0.5


def test_param_count_and_matching():
  assert ssm.num_params(2, 3) == 4 + 6 + 3 + 3 + 2 + 3
  k = ssm.matched_state_dim(1194, 7)
  assert ssm.num_params(k, 7) >= 1194 > ssm.num_params(k - 1, 7)


def test_converged_fit_and_bad_input():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(20, 2, 8)).astype(np.float32)
  fit = ssm.fit_ssm(x, 1, max_iters=200, tol=1e-4)
  assert fit.converged and fit.num_params == ssm.num_params(1, 2)
  with pytest.raises(DataError, match='length >= 2'):
    ssm.fit_ssm(x[:, :, :1], 1)
  bad = x.copy()
  bad[0, 0, 0] = np.nan
  with pytest.raises(DataError):
    ssm.fit_ssm(bad, 1)
  with pytest.raises(DataError, match='features'):
    ssm.log_prob(fit.params, rng.normal(size=(2, 3, 8)))
