"""Tests for cyan_rcbm.rcbm.cbm (Algorithms 1-2, equations.md B3-B4)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cyan_rcbm.data.planted import convolve, make_planted
from cyan_rcbm.errors import ConfigError
from cyan_rcbm.errors import DataError
from cyan_rcbm.rcbm import cbm
from cyan_rcbm.rcbm import ops
from cyan_rcbm.rcbm import plots


def max_shift_cosine(a, b):
  """max over relative shifts of cos(a, shifted b), filters [D, Tw]."""
  return plots.best_shift_match(a, b)[0]


def _dense(fn, shape):
  """Matrix of a linear map on arrays of `shape` (columns = basis images)."""
  size = int(np.prod(shape))
  basis = jnp.eye(size).reshape((size,) + tuple(shape))
  return np.asarray(jax.vmap(fn)(basis)).reshape(size, -1).T


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_joint_lipschitz_bounds_hold(seed):
  """L_h >= ||A_W||^2 and L_W >= ||A_h||^2 (all K blocks at once)."""
  rng = np.random.default_rng(seed)
  k, d, tw, s, n = 3, 4, 5, 14, 3
  w = rng.standard_normal((k, d, tw)).astype(np.float32)
  h = np.abs(rng.standard_normal((n, s, k))).astype(np.float32)
  a_h = _dense(lambda v: ops.conv_tm(jnp.asarray(w), v[None])[0], (s, k))
  true_h = np.linalg.norm(a_h, 2) ** 2
  bound_h = float(cbm.lipschitz_h(jnp.asarray(w)))
  assert true_h <= bound_h * (1 + 1e-5)
  # Never looser than the sum of the paper's per-block bounds (Eq. 9).
  assert bound_h <= np.sum(np.abs(w).sum(axis=(1, 2)) ** 2) * (1 + 1e-5)
  a_w = _dense(lambda v: ops.conv_tm(v, jnp.asarray(h)), (k, d, tw))
  true_w = np.linalg.norm(a_w, 2) ** 2
  bound_w = float(cbm.lipschitz_w(jnp.asarray(h.sum(axis=1))))
  assert true_w <= bound_w * (1 + 1e-5)
  assert bound_w <= np.sum(h.sum(axis=1) ** 2) * (1 + 1e-5)


def test_single_filter_bounds_are_the_papers():
  rng = np.random.default_rng(3)
  w = rng.standard_normal((1, 4, 5))
  l_h = float(cbm.lipschitz_h(jnp.asarray(w)))
  np.testing.assert_allclose(l_h, np.sum(np.abs(w[0]).sum(axis=1) ** 2),
                             rtol=1e-5)
  assert l_h <= np.abs(w).sum() ** 2
  l1 = np.abs(rng.standard_normal((6, 1)))
  np.testing.assert_allclose(float(cbm.lipschitz_w(jnp.asarray(l1))),
                             np.sum(l1 ** 2), rtol=1e-5)


def _random_problem(seed, n=40, d=3, t=20):
  rng = np.random.default_rng(seed)
  x = np.abs(rng.standard_normal((n, d, t))) * (rng.random((n, d, t)) < 0.3)
  return x.astype(np.float32)


@pytest.mark.parametrize('step', ['fixed', 'line_search', 'line_search_paper'])
@pytest.mark.parametrize('seed', [0, 1])
def test_objective_monotone_with_mle_penalty(step, seed):
  """With lam_r = sigma_{r-1}^2/beta_{r-1} (paper), every outer iteration
  lowers J_r (Eq. 6 at lam_r: `objective` <= `objective_start`), and the
  negative log joint N (Eq. 3) never increases across iterations."""
  x_np = _random_problem(seed)
  cfg = cbm.SolverConfig(step=step, penalty='mle', warmup_iters=0, lam=0.5,
                         inner_max_iters=15)
  x = cbm.to_solver_layout(x_np, 16, cfg.form)
  w0 = cbm.init_filters(x_np, 4, 5, seed, 'gaussian')
  state = cbm.init_state(x, w0, 1.0, 2.0)
  n = x_np.shape[0]
  nlj_prev = float(cbm.neg_log_joint(state.sq_err, state.l1, state.sigma,
                                     state.beta, n)) / n
  accepted = 0
  for _ in range(12):
    state, info = cbm.outer_step(state, x, num_samples=n, cfg=cfg)
    info = {k: float(v) for k, v in info.items()}
    assert info['objective'] <= info['objective_start'] * (1 + 1e-6)
    assert info['neg_log_joint'] <= nlj_prev + 1e-5 * abs(nlj_prev) + 1e-6
    nlj_prev = info['neg_log_joint']
    accepted += info['w_accepted']
  assert accepted >= 6


def test_objective_monotone_with_fixed_penalty():
  """With a fixed lam, Eq. 6 itself never increases across iterations."""
  x_np = _random_problem(5)
  cfg = cbm.SolverConfig(lam=0.2, inner_max_iters=15)
  fit = cbm.fit_cbm(x_np, 4, 5, cfg=cfg, max_iters=15, tol=0.0, batch_size=16,
                    init='gaussian')
  objs = [h['objective'] for h in fit.history]
  for prev, h in zip(objs, fit.history[1:]):
    np.testing.assert_allclose(h['objective_start'], prev, rtol=1e-5)
    assert h['objective'] <= prev * (1 + 1e-6)


@pytest.mark.parametrize('step', ['line_search', 'line_search_paper'])
def test_line_searches_reach_the_fixed_step_fixed_point(step):
  """From the same initial filters, FS and both line searches run to
  convergence land on the same filters and objective (small problem)."""
  x_np = _random_problem(8, n=24, d=2, t=16)
  fits = {}
  for rule in ('fixed', step):
    cfg = cbm.SolverConfig(step=rule, lam=0.2, inner_max_iters=200,
                           inner_tol=1e-9, w_steps=5)
    fits[rule] = cbm.fit_cbm(x_np, 2, 4, cfg=cfg, max_iters=400, tol=1e-9,
                             seed=3)
  fs, ls = fits['fixed'], fits[step]
  np.testing.assert_allclose(ls.history[-1]['objective'],
                             fs.history[-1]['objective'], rtol=1e-3)
  np.testing.assert_allclose(ls.params.w, fs.params.w, atol=2e-2)


def test_paper_line_search_objective_never_increases():
  """The paper's line search at a fixed lam: Eq. 6 is monotone."""
  x_np = _random_problem(9)
  cfg = cbm.SolverConfig(step='line_search_paper', lam=0.2, inner_max_iters=15)
  fit = cbm.fit_cbm(x_np, 4, 5, cfg=cfg, max_iters=15, tol=0.0, batch_size=16)
  objs = [h['objective'] for h in fit.history]
  assert all(b <= a * (1 + 1e-6) for a, b in zip(objs, objs[1:]))
  assert objs[-1] < objs[0]


def test_sigma_beta_are_the_closed_form_mle():
  x_np = _random_problem(6)
  fit = cbm.fit_cbm(x_np, 3, 4, cfg=cbm.SolverConfig(lam=0.2), max_iters=6,
                    batch_size=16)
  sq_err = np.sum((x_np - convolve(fit.params.w, fit.h)) ** 2, axis=(1, 2))
  l1 = fit.h.sum(axis=(1, 2))
  np.testing.assert_allclose(fit.sq_err, sq_err, rtol=1e-3, atol=1e-4)
  np.testing.assert_allclose(fit.l1, l1, rtol=1e-4)
  np.testing.assert_allclose(fit.params.sigma, np.sqrt(sq_err.mean()),
                             rtol=1e-3)
  np.testing.assert_allclose(fit.params.beta, l1.mean(), rtol=1e-4)
  assert np.all(fit.h >= 0)
  norms = np.linalg.norm(fit.params.w.reshape(3, -1), axis=1)
  assert np.all(norms <= 1 + 1e-5)


def test_result_does_not_depend_on_batch_size():
  x_np = _random_problem(7, n=48)
  cfg = cbm.SolverConfig(lam=0.2, inner_max_iters=8, inner_tol=0.0)
  fits = [cbm.fit_cbm(x_np, 3, 4, cfg=cfg, max_iters=5, tol=0.0,
                      batch_size=b) for b in (0, 16)]
  for fit in fits[1:]:
    np.testing.assert_allclose(fit.params.w, fits[0].params.w, rtol=1e-3,
                               atol=1e-4)
    np.testing.assert_allclose(fit.h, fits[0].h, rtol=1e-2, atol=5e-3)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_planted_filters_are_recovered(seed):
  """n=300 samples, noise std 0.05 (SNR as make_planted's default), K = 5:
  every planted filter has a learned one with shift-invariant cosine > 0.9."""
  dyn, w_true, _ = make_planted(300, seed=seed)
  fit = cbm.fit_cbm(dyn.x, 5, 7, cfg=cbm.SolverConfig(lam=0.3),
                    max_iters=200, num_restarts=4, batch_size=0, seed=seed)
  cos = np.array([[max_shift_cosine(a, b) for b in fit.params.w]
                  for a in w_true])
  assert cos.max(axis=1).min() > 0.9, cos.max(axis=1)
  assert fit.converged
  assert len(fit.restart_objectives) == 4
  assert min(fit.restart_objectives) == pytest.approx(
      fit.history[-1]['objective'])


def test_restart_screening_continues_the_best(capsys):
  dyn, _, _ = make_planted(120, length=30, seed=4)
  progress = cbm.FitProgress('fit', 30, num_restarts=3, restart_iters=4,
                             log_every=2)
  screened = []

  def screen(restart, state, info):
    screened.append((restart, None if info is None else info['iteration']))
    progress.screen(restart, state, info)

  fit = cbm.fit_cbm(dyn.x, 3, 5, cfg=cbm.SolverConfig(lam=0.3),
                    max_iters=30, num_restarts=3, restart_iters=4, seed=1,
                    callback=lambda state, info: progress.iteration(info),
                    screen_callback=screen)
  assert min(fit.restart_objectives) == pytest.approx(
      fit.history[3]['objective'])
  assert [h['iteration'] for h in fit.history] == list(
      range(1, len(fit.history) + 1))
  kept = int(np.argmin(fit.restart_objectives))
  assert screened == [(j, i) for j in range(3) for i in range(1, 5)] + [
      (kept, None)]
  # Progress: each restart as it runs (iterations 1, 2, 4), a line when it
  # ends, the kept one, then only the kept run's live iterations.
  lines = capsys.readouterr().out.splitlines()
  assert '\r' not in ''.join(lines)
  for j in range(3):
    steps = [l for l in lines if l.startswith(f'[fit restart {j + 1}/3] step')]
    assert [l.split()[4] for l in steps] == ['1/4', '2/4', '4/4'], steps
    assert 'iterations/s' not in steps[0] and 'iterations/s' in steps[1]
    done = [l for l in lines if l.startswith(f'[fit] restart {j + 1}/3 done: '
                                             '4 outer iterations, objective')]
    assert len(done) == 1 and lines.index(done[0]) > lines.index(steps[-1])
  assert lines.count(f'[fit] kept restart {kept + 1}/3 (objective '
                     f'{fit.restart_objectives[kept]:.6g}, 4 outer '
                     'iterations)') == 1
  live = [int(l.split()[2].split('/')[0]) for l in lines
          if l.startswith('[fit] step')]
  last = len(fit.history)
  assert live == [5] + [i for i in range(6, last + 1) if i % 2 == 0], live


def test_mle_penalty_collapse_is_reported():
  """The paper's sigma^2/beta update drifts to h = 0 on planted data (its
  fixed-point map has sigma^2/beta > lam for every lam); it is flagged."""
  dyn, _, _ = make_planted(120, length=30, seed=3)
  cfg = cbm.SolverConfig(penalty='mle', lam=1.0, warmup_iters=0)
  fit = cbm.fit_cbm(dyn.x, 3, 7, cfg=cfg, max_iters=40, batch_size=0)
  assert fit.collapsed
  assert np.all(fit.h == 0)


def test_float64_under_x64():
  with jax.enable_x64(True):
    x_np = _random_problem(9, n=12).astype(np.float64)
    fit = cbm.fit_cbm(x_np, 2, 4, max_iters=4, tol=0.0)
    assert fit.params.w.dtype == np.float64 and fit.h.dtype == np.float64
    objs = [h['objective'] for h in fit.history]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(objs, objs[1:]))
  assert not jax.config.jax_enable_x64


def test_bad_arguments():
  x_np = _random_problem(8, n=5, t=6)
  bad = x_np.copy()
  bad[2, 1, 3] = np.inf
  with pytest.raises(DataError, match=r'x\[2, 1, 3\] is inf'):
    cbm.fit_cbm(bad, 2, 3)
  with pytest.raises(DataError, match='rank 2'):
    cbm.fit_cbm(x_np[0], 2, 3)
  with pytest.raises(DataError, match='empty sample set'):
    cbm.fit_cbm(x_np[:0], 2, 3)
  with pytest.raises(ConfigError, match='filter_length 9'):
    cbm.fit_cbm(x_np, 2, 9)
  with pytest.raises(ConfigError, match='num_filters'):
    cbm.fit_cbm(x_np, 0, 3)
  for kwargs, match in [({'step': 'newton'}, 'step'),
                        ({'penalty': 'map'}, 'penalty'),
                        ({'alpha': 1.5}, 'alpha'), ({'lam': 0.0}, 'lam'),
                        ({'form': 'winograd'}, 'form')]:
    with pytest.raises(ValueError, match=match):
      cbm.SolverConfig(**kwargs)
  with pytest.raises(ValueError, match='init'):
    cbm.init_filters(x_np, 2, 3, 0, 'zeros')
