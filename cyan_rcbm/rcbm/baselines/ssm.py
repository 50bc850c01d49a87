"""Linear-Gaussian state-space model (SSM) fitted by EM (equations.md B7; ref.
[20]).

The paper's second non-deep latent-factor baseline ("the State Space Model
[20] builds a linear dynamical system assuming time-invariance and
linearity"). Each sample `X in R^{D x T}` is the series `y_t = X[:, t]`:

  `z_0 ~ N(mu0, P0)`,  `z_t = A z_{t-1} + w_t`,  `w_t ~ N(0, Q)`,
  `y_t = C z_t + v_t`,  `v_t ~ N(0, diag(r))`,

with a latent state `z_t in R^k`. Samples are independent series sharing
the parameters.

* E-step: Kalman filter and Rauch-Tung-Striebel smoother, each one
  `lax.scan` over time. All samples share the parameters and have no missing
  values, so the covariance recursions (`P_{t|t-1}`, `S_t`, gains, smoother
  gains) are the same for every sample: they are computed once per step and
  the means of all samples are updated together as one batched product
  (what `vmap` over samples would give, without repeating the k x k work
  per sample).
* M-step: closed form (Shumway & Stoffer 1982; Ghahramani & Hinton 1996)
  from the smoothed first and second moments, pooled over samples and time.
  Variances are kept above `min_variance` by clipping eigenvalues (for a
  Gaussian covariance MLE under an eigenvalue floor, clipping is the exact
  constrained maximiser), so every EM step is an exact M-step and the
  log-likelihood never decreases (tested in float64).
* Log-likelihood: exact, `log p(X) = sum_t log N(y_t; C z_{t|t-1}, S_t)`
  from the filter's innovations (tested against the dense joint Gaussian of
  y_1..y_T). It is a density over all `D T` entries of X, unlike RCBM's
  sample-level density of two summary statistics (equations.md B3): see
  `docs/rcbm_results/results.md` on what the perplexities compare.

Parameters: `k^2 (A) + D k (C) + k (k+1)/2 (Q) + D (r) + k (mu0) +
k (k+1)/2 (P0)`; `matched_state_dim` picks the smallest k reaching a given
count (paper Figs. 7-8 match SSM to RCBM-FS).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy import linalg as jsl

from cyan_rcbm.data import dynamics as dynamics_lib
from cyan_rcbm.errors import DataError

Array = jax.Array
_LOG_2PI = math.log(2.0 * math.pi)


class SSMParams(NamedTuple):
  """Parameters: a [k, k], c [D, k], q [k, k], r [D], mu0 [k], p0 [k, k]."""
  a: Array
  c: Array
  q: Array
  r: Array
  mu0: Array
  p0: Array


@dataclasses.dataclass
class SSMFit:
  """A fitted SSM.

  Attributes:
    params: the parameters after the last M-step (numpy arrays).
    log_likelihood: mean per-sample log-likelihood *before* each M-step
      (entry j is that of the parameters after j M-steps), so it is
      non-decreasing; the final parameters' value is the last entry when
      `converged`, else one more E-step would give it.
    converged: the relative change fell below `tol`.
    history: per EM iteration: mean log-likelihood and seconds.
  """
  params: SSMParams
  log_likelihood: list[float]
  converged: bool
  history: list[dict[str, float]]

  @property
  def state_dim(self) -> int:
    return int(self.params.a.shape[0])

  @property
  def num_params(self) -> int:
    return num_params(self.state_dim, int(self.params.c.shape[0]))


def num_params(state_dim: int, num_features: int) -> int:
  """Free parameters: A, C, symmetric Q, diagonal r, mu0, symmetric P0."""
  k, d = state_dim, num_features
  return k * k + d * k + k * (k + 1) // 2 + d + k + k * (k + 1) // 2


def matched_state_dim(target_params: int, num_features: int) -> int:
  """Smallest k (>= 1) with `num_params(k, D) >= target_params`."""
  k = 1
  while num_params(k, num_features) < target_params:
    k += 1
  return k


def _sym(p: Array) -> Array:
  return 0.5 * (p + jnp.swapaxes(p, -1, -2))


def _floor_eigenvalues(p: Array, floor: float) -> Array:
  """Symmetric p with eigenvalues clipped below at `floor`."""
  w, v = jnp.linalg.eigh(_sym(p))
  return _sym((v * jnp.maximum(w, floor)) @ v.T)


def _to_time_major(x_NxDxT: np.ndarray, dtype) -> Array:
  return jnp.asarray(np.transpose(np.asarray(x_NxDxT), (2, 0, 1)), dtype)


def _filter(params: SSMParams, y_TxNxD: Array):
  """Kalman filter: per step predicted/filtered moments and log-lik [T, N]."""
  a, c, q, r, mu0, p0 = params
  k = a.shape[0]
  d = c.shape[0]
  n = y_TxNxD.shape[1]
  eye = jnp.eye(k, dtype=a.dtype)

  def step(carry, inputs):
    m_f, p_f = carry
    y, first = inputs
    m_pred = jnp.where(first, jnp.broadcast_to(mu0, (n, k)), m_f @ a.T)
    p_pred = jnp.where(first, p0, _sym(a @ p_f @ a.T + q))
    s = _sym(c @ p_pred @ c.T + jnp.diag(r))
    chol = jnp.linalg.cholesky(s)
    v = y - m_pred @ c.T                                     # [N, D]
    s_inv_v = jsl.cho_solve((chol, True), v.T).T              # [N, D]
    gain = jsl.cho_solve((chol, True), c @ p_pred).T          # [k, D]
    m_new = m_pred + v @ gain.T
    ikc = eye - gain @ c
    p_new = _sym(ikc @ p_pred @ ikc.T + (gain * r) @ gain.T)  # Joseph form.
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    ll = -0.5 * (d * _LOG_2PI + log_det + jnp.sum(v * s_inv_v, axis=1))
    return (m_new, p_new), (m_pred, p_pred, m_new, p_new, ll)

  t = y_TxNxD.shape[0]
  first = jnp.arange(t) == 0
  init = (jnp.zeros((n, k), a.dtype), p0)
  _, out = lax.scan(step, init, (y_TxNxD, first))
  return out


@jax.jit
def _log_likelihood(params: SSMParams, y_TxNxD: Array) -> Array:
  return jnp.sum(_filter(params, y_TxNxD)[-1], axis=0)


def _smooth(params: SSMParams, y_TxNxD: Array):
  """Kalman filter + RTS smoother: smoothed means [T, N, k], covariances
  [T, k, k], cross covariances [T-1, k, k] and the log-likelihood [T, N]."""
  a = params.a
  m_pred, p_pred, m_f, p_f, ll = _filter(params, y_TxNxD)

  # RTS smoother, backwards over t = T-2 .. 0.
  def back(carry, inputs):
    m_s_next, p_s_next = carry
    m_f_t, p_f_t, m_pred_next, p_pred_next = inputs
    j = jnp.linalg.solve(p_pred_next, a @ p_f_t).T            # [k, k]
    m_s = m_f_t + (m_s_next - m_pred_next) @ j.T
    p_s = _sym(p_f_t + j @ (p_s_next - p_pred_next) @ j.T)
    cross = p_s_next @ j.T                  # Cov(z_{t+1}, z_t | Y).
    return (m_s, p_s), (m_s, p_s, cross)

  _, (m_s, p_s, cross) = lax.scan(
      back, (m_f[-1], p_f[-1]),
      (m_f[:-1], p_f[:-1], m_pred[1:], p_pred[1:]), reverse=True)
  m_s = jnp.concatenate([m_s, m_f[-1:]], axis=0)              # [T, N, k]
  p_s = jnp.concatenate([p_s, p_f[-1:]], axis=0)              # [T, k, k]
  return m_s, p_s, cross, ll


@jax.jit
def _smoothed_mean(params: SSMParams, y_TxNxD: Array) -> Array:
  return _smooth(params, y_TxNxD)[0] @ params.c.T             # [T, N, D]


@functools.partial(jax.jit, static_argnames=('min_variance',))
def em_step(params: SSMParams, y_TxNxD: Array, *, min_variance: float
            ) -> tuple[SSMParams, Array]:
  """One EM iteration: (new parameters, log-likelihood [N] of the old ones)."""
  t, n, _ = y_TxNxD.shape
  m_s, p_s, cross, ll = _smooth(params, y_TxNxD)

  nf = jnp.asarray(n, params.a.dtype)
  outer = jnp.einsum('tnk,tnl->tkl', m_s, m_s)                # sum over N.
  ezz = nf * p_s + outer                                      # [T, k, k]
  sum_all = jnp.sum(ezz, axis=0)
  sum_prev = jnp.sum(ezz[:-1], axis=0)
  sum_next = jnp.sum(ezz[1:], axis=0)
  sum_cross = (nf * jnp.sum(cross, axis=0)
               + jnp.einsum('tnk,tnl->kl', m_s[1:], m_s[:-1]))
  sum_yz = jnp.einsum('tnd,tnk->dk', y_TxNxD, m_s)
  sum_yy = jnp.einsum('tnd,tnd->d', y_TxNxD, y_TxNxD)

  c = jnp.linalg.solve(sum_all, sum_yz.T).T
  r = jnp.maximum((sum_yy - jnp.sum(c * sum_yz, axis=1)) / (nf * t),
                  min_variance)
  a_new = jnp.linalg.solve(sum_prev, sum_cross.T).T
  q = _floor_eigenvalues((sum_next - a_new @ sum_cross.T) / (nf * (t - 1)),
                         min_variance)
  mu0 = jnp.mean(m_s[0], axis=0)
  dev = m_s[0] - mu0
  p0 = _floor_eigenvalues(p_s[0] + dev.T @ dev / nf, min_variance)
  return SSMParams(a_new, c, q, r, mu0, p0), jnp.sum(ll, axis=0)


def init_params(x_NxDxT: np.ndarray, state_dim: int, seed: int,
                min_variance: float = 1e-4) -> SSMParams:
  """A stable start: C from the principal components of the observations
  (random small columns beyond D), A = 0.9 I plus noise, stationary latent
  variance 1, r = half of each feature's variance; seeded perturbations."""
  x = np.asarray(x_NxDxT, np.float64)
  n, d, _ = x.shape
  k = state_dim
  rng = np.random.default_rng([seed, 31])
  obs = np.transpose(x, (0, 2, 1)).reshape(-1, d)
  mean = obs.mean(axis=0)
  cov = np.cov(obs, rowvar=False).reshape(d, d)
  evals, evecs = np.linalg.eigh(cov)
  order = np.argsort(evals)[::-1]
  evals, evecs = np.maximum(evals[order], 0), evecs[:, order]
  c = 0.1 * rng.standard_normal((d, k))
  m = min(k, d)
  c[:, :m] += evecs[:, :m] * np.sqrt(0.5 * evals[:m])
  a = 0.9 * np.eye(k) + 0.01 * rng.standard_normal((k, k))
  q = (1 - 0.81) * np.eye(k)
  r = np.maximum(0.5 * np.diag(cov), min_variance)
  mu0 = np.zeros(k)
  mu0[:m] = evecs[:, :m].T @ mean / np.sqrt(np.maximum(0.5 * evals[:m],
                                                       1e-12))
  return SSMParams(a, c, q, r, mu0, np.eye(k))


def _float_dtype():
  return np.float64 if jax.config.jax_enable_x64 else np.float32


def _as_jax(params: SSMParams, dtype) -> SSMParams:
  return SSMParams(*(jnp.asarray(p, dtype) for p in params))


def _check_x(x_NxDxT: np.ndarray) -> np.ndarray:
  dynamics_lib.validate_dynamics(x_NxDxT)
  x = np.asarray(x_NxDxT)
  if x.shape[2] < 2:
    raise DataError(f'the SSM needs series of length >= 2, got T={x.shape[2]}')
  return x


def fit_ssm(x_NxDxT: np.ndarray, state_dim: int, *, max_iters: int = 100,
            tol: float = 1e-4, min_iters: int = 2, seed: int = 0,
            min_variance: float = 1e-4,
            init: SSMParams | None = None) -> SSMFit:
  """EM for the SSM of the module docstring.

  Args:
    x_NxDxT: samples.
    state_dim: k.
    max_iters: EM iterations, at most.
    tol: stop when the mean log-likelihood changes by less than `tol`
      relative to its magnitude (after `min_iters`).
    min_iters: EM iterations before testing `tol`.
    seed: seed of `init_params`.
    min_variance: floor of r and of the eigenvalues of Q and P0.
    init: initial parameters (default `init_params`).

  Raises:
    DataError: x is not finite [n, D, T] with T >= 2.
    FloatingPointError: the log-likelihood became NaN or infinite.
  """
  x = _check_x(x_NxDxT)
  if state_dim < 1:
    raise ValueError(f'state_dim must be >= 1, got {state_dim}')
  dtype = _float_dtype()
  y = _to_time_major(x, dtype)
  params = _as_jax(init if init is not None else
                   init_params(x, state_dim, seed, min_variance), dtype)
  lls, history, converged = [], [], False
  for it in range(1, max_iters + 1):
    t0 = time.perf_counter()
    new, ll = em_step(params, y, min_variance=float(min_variance))
    mean_ll = float(jnp.mean(ll))
    if not math.isfinite(mean_ll):
      raise FloatingPointError(f'SSM log-likelihood is not finite at EM '
                               f'iteration {it}')
    history.append({'iteration': it, 'log_likelihood': mean_ll,
                    'seconds': time.perf_counter() - t0})
    if lls and it > min_iters and (
        abs(mean_ll - lls[-1]) <= tol * max(abs(mean_ll), 1e-30)):
      lls.append(mean_ll)
      converged = True
      break   # the old parameters already met tol: keep them.
    lls.append(mean_ll)
    params = new
  params = SSMParams(*(np.asarray(p) for p in params))
  return SSMFit(params=params, log_likelihood=lls, converged=converged,
                history=history)


def log_prob(params: SSMParams, x_NxDxT: np.ndarray) -> np.ndarray:
  """Exact `log p(X_i)` per sample [n] (Kalman filter innovations).

  Raises:
    DataError: x is not finite [n, D, T] (T >= 2) with the model's D.
  """
  x = _check_x(x_NxDxT)
  if x.shape[1] != np.asarray(params.c).shape[0]:
    raise DataError(f'samples have {x.shape[1]} features but the SSM was '
                    f'fitted on {np.asarray(params.c).shape[0]}')
  dtype = _float_dtype()
  return np.asarray(_log_likelihood(_as_jax(params, dtype),
                                    _to_time_major(x, dtype)), np.float64)


def reconstruct(params: SSMParams, x_NxDxT: np.ndarray) -> np.ndarray:
  """The smoothed mean `E[y_t | y_1..y_T] = C E[z_t | Y]` [n, D, T]: SSM's
  reconstruction of X, the counterpart of RCBM's `W (x) h` with h inferred
  from the same sample (for the residual likelihoods of the comparison).

  Raises:
    DataError: as `log_prob`.
  """
  x = _check_x(x_NxDxT)
  if x.shape[1] != np.asarray(params.c).shape[0]:
    raise DataError(f'samples have {x.shape[1]} features but the SSM was '
                    f'fitted on {np.asarray(params.c).shape[0]}')
  dtype = _float_dtype()
  mean = _smoothed_mean(_as_jax(params, dtype), _to_time_major(x, dtype))
  return np.transpose(np.asarray(mean, np.float64), (1, 2, 0))
