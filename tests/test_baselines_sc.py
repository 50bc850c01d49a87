"""Tests of the sparse-coding baseline (global atoms, RCBM's FISTA)."""

import math

import numpy as np
import pytest

from cyan_rcbm.errors import DataError
from cyan_rcbm.rcbm import likelihood
from cyan_rcbm.rcbm.baselines import sc

_M, _D, _T, _N = 4, 3, 10, 300


def _planted(seed=0, noise=0.01):
  rng = np.random.default_rng(seed)
  atoms = rng.standard_normal((_M, _D * _T))
  atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
  h = rng.exponential(1.0, (_N, _M)) * (rng.random((_N, _M)) < 0.5)
  x = h @ atoms + noise * rng.standard_normal((_N, _D * _T))
  return x.reshape(_N, _D, _T).astype(np.float32), atoms


@pytest.fixture(scope='module')
def fitted():
  x, atoms = _planted()
  fit = sc.fit_sc(x, _M, cfg=sc.SCConfig(lam=0.01, inner_max_iters=50),
                  max_iters=300, tol=1e-6)
  return x, atoms, fit


def test_recovers_planted_atoms(fitted):
  _, atoms, fit = fitted
  learned = fit.model.atoms.reshape(_M, -1)
  cosine = np.abs(atoms @ learned.T) / np.linalg.norm(learned, axis=1)
  assert np.all(cosine.max(axis=1) > 0.99), cosine
  assert np.all(np.linalg.norm(learned, axis=1) <= 1 + 1e-5)


def test_objective_never_increases_and_mle(fitted):
  _, _, fit = fitted
  obj = np.array([h['objective'] for h in fit.history])
  assert np.all(np.diff(obj) <= 1e-6 * obj[:-1])
  assert fit.model.sigma == pytest.approx(math.sqrt(np.mean(fit.sq_err)),
                                          rel=1e-5)
  assert fit.model.beta == pytest.approx(np.mean(fit.l1), rel=1e-5)
  assert np.all(fit.h >= 0)


def test_log_prob_is_the_sample_level_density(fitted):
  x, _, fit = fitted
  h, xhat, sq, l1 = sc.infer_codes(fit.model, x[:20])
  assert np.all(h >= 0)
  np.testing.assert_allclose(sq, np.sum(np.square(x[:20] - xhat), (1, 2)),
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(
      sc.log_prob(fit.model, x[:20]),
      likelihood.cbm_log_joint(sq, l1, fit.model.sigma, fit.model.beta))


def test_param_matching_and_errors(fitted):
  x, _, fit = fitted
  assert fit.model.num_params == _M * _D * _T + 2
  m = sc.matched_num_atoms(1194, 7, 60)
  assert sc.num_params(m, 7, 60) >= 1194 > sc.num_params(m - 1, 7, 60)
  with pytest.raises(DataError, match='shape'):
    sc.log_prob(fit.model, x[:, :2])
  bad = x.copy()
  bad[1, 2, 3] = np.inf
  with pytest.raises(DataError):
    sc.fit_sc(bad, 2)
  with pytest.raises(ValueError, match='lam'):
    sc.SCConfig(lam=0.0)
