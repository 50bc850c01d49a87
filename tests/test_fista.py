"""Tests for cyan_rcbm.rcbm.fista (proximal maps, batched monotone FISTA)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from cyan_rcbm.rcbm import fista


def test_soft_threshold_nonneg_closed_form():
  v = jnp.array([-2.0, -0.1, 0.0, 0.3, 0.5, 3.0])
  np.testing.assert_allclose(fista.soft_threshold_nonneg(v, 0.5),
                             [0, 0, 0, 0, 0, 2.5])
  # It is the prox of lam*sum(h) + [h >= 0]: argmin 1/2 (h - v)^2 + lam h.
  grid = np.linspace(0, 5, 50001)
  for vi in [-1.0, 0.2, 0.7, 2.0]:
    best = grid[np.argmin(0.5 * (grid - vi) ** 2 + 0.5 * grid)]
    assert abs(float(fista.soft_threshold_nonneg(vi, 0.5)) - best) < 1e-3


def test_project_frobenius_ball_closed_form():
  rng = np.random.default_rng(0)
  w = rng.standard_normal((4, 3, 5))
  w[1] *= 0.01                                     # inside: unchanged
  p = np.asarray(fista.project_frobenius_ball(jnp.asarray(w)))
  norms = np.linalg.norm(p.reshape(4, -1), axis=1)
  np.testing.assert_allclose(p[1], w[1], rtol=1e-6)
  for k in (0, 2, 3):
    assert abs(norms[k] - 1) < 1e-5
    np.testing.assert_allclose(p[k], w[k] / np.linalg.norm(w[k]), rtol=1e-5)
  p2 = fista.project_frobenius_ball(jnp.asarray(w), radius=2.0)
  assert np.all(np.linalg.norm(np.asarray(p2).reshape(4, -1), axis=1)
                <= 2 + 1e-5)


def _problem(n=4, m=12, p=6, seed=0):
  rng = np.random.default_rng(seed)
  a = rng.standard_normal((p, m)).astype(np.float32)       # h @ a = xhat
  h_true = np.maximum(rng.standard_normal((n, p)), 0).astype(np.float32)
  x = (h_true @ a + 0.1 * rng.standard_normal((n, m))).astype(np.float32)
  return x, a


def _reference(x, a, lam):
  """L-BFGS-B on each sample's objective with h >= 0 (float64)."""
  out = []
  for xi in x.astype(np.float64):
    f = lambda h: 0.5 * np.sum((xi - h @ a) ** 2) + lam * h.sum()
    g = lambda h: -(xi - h @ a) @ a.T + lam
    res = optimize.minimize(f, np.zeros(a.shape[0]), jac=g, method='L-BFGS-B',
                            bounds=[(0, None)] * a.shape[0],
                            options={'ftol': 1e-14, 'gtol': 1e-12})
    out.append(res.fun)
  return np.array(out)


def _solve(x, a, lam, step, **kw):
  a = jnp.asarray(a)
  h0 = jnp.zeros((x.shape[0], a.shape[0]))
  return fista.nonneg_lasso(jnp.asarray(x), lambda h: h @ a,
                            lambda r: r @ a.T, h0, jnp.zeros_like(x), lam,
                            step, **kw)


@pytest.mark.parametrize('line_search,fresh', [(False, False), (True, False),
                                               (True, True)])
def test_nonneg_lasso_reaches_the_optimum(line_search, fresh):
  """The generic solver (as the SC baseline uses it) on a dense problem,
  with the fixed step, the warm-started and the fresh line search."""
  x, a = _problem()
  lam = 0.5
  lip = float(np.linalg.eigvalsh(a @ a.T)[-1])
  res = _solve(x, a, lam, 1.0 / lip if not line_search else 1.0,
               max_iters=3000, tol=1e-9, line_search=line_search,
               fresh_backtracking=fresh)
  obj = 0.5 * np.asarray(res.sq_err) + lam * np.asarray(res.l1)
  np.testing.assert_allclose(obj, _reference(x, a, lam), rtol=1e-4)
  assert np.all(np.asarray(res.h) >= 0)
  np.testing.assert_allclose(res.xhat, np.asarray(res.h) @ a, rtol=1e-4,
                             atol=1e-4)


def test_never_worse_than_warm_start_even_with_a_bad_step():
  x, a = _problem(n=8, seed=1)
  lam = 0.2
  lip = float(np.linalg.eigvalsh(a @ a.T)[-1])
  rng = np.random.default_rng(2)
  h0 = jnp.asarray(np.maximum(rng.standard_normal((8, a.shape[0])), 0),
                   jnp.float32)
  xh0 = h0 @ jnp.asarray(a)
  obj0 = 0.5 * np.sum((x - np.asarray(xh0)) ** 2, 1) + lam * np.asarray(
      h0).sum(1)
  for step in (1.0 / lip, 10.0 / lip):       # 10/L is unstable for FISTA.
    res = fista.nonneg_lasso(jnp.asarray(x), lambda h: h @ jnp.asarray(a),
                             lambda r: r @ jnp.asarray(a).T, h0, xh0, lam,
                             step, max_iters=30, tol=0.0)
    obj = 0.5 * np.asarray(res.sq_err) + lam * np.asarray(res.l1)
    assert np.all(obj <= obj0 + 1e-5)


def test_stops_on_tolerance():
  x, a = _problem()
  lip = float(np.linalg.eigvalsh(a @ a.T)[-1])
  res = _solve(x, a, 0.5, 1.0 / lip, max_iters=5000, tol=1e-3)
  assert 1 <= int(res.num_iters) < 5000
  assert float(res.rel_change) < 1e-3
  capped = _solve(x, a, 0.5, 1.0 / lip, max_iters=7, tol=0.0)
  assert int(capped.num_iters) == 7


def test_per_sample_helpers():
  a = jnp.arange(24.0).reshape(2, 3, 4)
  np.testing.assert_allclose(fista.per_sample_sum(a), [66.0, 210.0])
  np.testing.assert_allclose(fista.per_sample_sq(a),
                             np.square(np.arange(24.0)).reshape(2, -1).sum(1))


def test_fresh_backtracking_restarts_from_the_initial_step():
  """The fresh line search starts every iteration at `1 / step`; the
  warm-started one at the last accepted estimate, which only grows."""
  assert float(fista.fresh_lipschitz(jnp.float32(8.0), jnp.float32(1.0),
                                     True)) == 1.0
  assert float(fista.fresh_lipschitz(jnp.float32(8.0), jnp.float32(1.0),
                                     False)) == 8.0
  x, a = _problem(seed=3)
  calls = []

  def forward(h):
    jax.debug.callback(lambda: calls.append(1))
    return h @ jnp.asarray(a)

  counts = {}
  for fresh in (False, True):
    calls.clear()
    fista.nonneg_lasso(jnp.asarray(x), forward, lambda r: r @ a.T,
                       jnp.zeros((x.shape[0], a.shape[0])),
                       jnp.zeros_like(x), 0.5, 1.0, max_iters=50, tol=0.0,
                       line_search=True, fresh_backtracking=fresh)
    jax.effects_barrier()
    counts[fresh] = len(calls)
  # ||A||^2 is ~ 30 here: from L = 1, about 5 trials per iteration afresh.
  assert counts[True] > 3 * counts[False]
