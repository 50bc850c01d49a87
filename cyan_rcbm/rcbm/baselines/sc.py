"""Sparse coding (SC): global, non-convolutional atoms (equations.md B7; ref.
[21]).

The paper's non-deep latent-factor baseline ("Sparse Coding [21] can be used
to discover global signatures for pre-aligned time series"). A sample
`X_i in R^{D x T}` is flattened to `x_i in R^P`, `P = D T`, and modelled by M
global atoms `A_m in R^P`:

  `min_{A, h}  sum_i [ 1/2 ||x_i - sum_m h_im A_m||^2 + lam ||h_i||_1 ]`
  `s.t.  ||A_m||_2 <= 1,  h_im >= 0`,

i.e. Eq. 6 with the scale-and-copy convolution replaced by a plain product
(no time shifts). It is learned by the same algorithm as CBM (Alg. 1), with
the same pieces: Task 1 is `cyan_rcbm.rcbm.fista.nonneg_lasso` with
`forward = h @ A`, `adjoint = r @ A^T` and step `alpha / ||A||_2^2`; Task 2 is
one accelerated projected gradient step on A with step `alpha / ||H||_2^2`
(the exact Lipschitz constant of the A-gradient), kept only if `f1` does not
rise (so the objective never increases); Task 3 is the closed-form MLE of
sigma and beta.

Likelihood (what the perplexity comparison uses): the sample-level densities
of equations.md B3 with h inferred by the h-step from h = 0 on the learned
atoms,
`log P(X) = log HalfNormal(e; sigma) + log Exp(a; beta)`,
`e = ||x - h A||_2`, `a = ||h||_1` — the same as a one-level RCBM
(`cyan_rcbm.rcbm.likelihood.cbm_log_joint`).

Parameters: `M D T + 2` (atoms, sigma, beta); `matched_num_atoms` picks the
smallest M with at least a given count ("an equal or slightly larger number
of parameters compared to that of RCBM-FS", paper Figs. 7-8).
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

from cyan_rcbm.data import dynamics as dynamics_lib
from cyan_rcbm.errors import DataError
from cyan_rcbm.rcbm import fista
from cyan_rcbm.rcbm import likelihood

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class SCConfig:
  """Static settings of the SC solver (hashable: a jit static argument).

  Attributes:
    lam: penalty weight of the l1 term (RCBM's `sigma^2 / beta`, fixed).
    alpha: step multiplier in (0, 1] of both fixed steps.
    inner_max_iters: FISTA iterations per h-step, at most.
    inner_tol: h-step relative objective change at which to stop.
    min_sigma, min_beta: floors of the MLE (finite log-densities).
  """
  lam: float = 0.3
  alpha: float = 1.0
  inner_max_iters: int = 20
  inner_tol: float = 1e-4
  min_sigma: float = 1e-6
  min_beta: float = 1e-6

  def __post_init__(self):
    if not self.lam > 0:
      raise ValueError(f'lam must be > 0, got {self.lam}')
    if not 0 < self.alpha <= 1:
      raise ValueError(f'alpha must be in (0, 1], got {self.alpha}')
    if self.inner_max_iters < 1:
      raise ValueError(f'inner_max_iters must be >= 1, got '
                       f'{self.inner_max_iters}')


class SCState(NamedTuple):
  """Carry of one outer iteration (atoms [M, P], codes [n, M])."""
  atoms: Array
  atoms_prev: Array
  t: Array
  h: Array
  xhat: Array
  sq_err: Array
  l1: Array


@dataclasses.dataclass(frozen=True)
class SCModel:
  """A learned SC model.

  Attributes:
    atoms: [M, D, T], unit norm or less.
    sigma: MLE of the per-sample error scale (half-normal).
    beta: MLE of the mean per-sample activation (exponential).
    lam: the penalty used for training and inference.
    infer_max_iters, infer_tol: h-step settings for new samples.
  """
  atoms: np.ndarray
  sigma: float
  beta: float
  lam: float
  infer_max_iters: int = 200
  infer_tol: float = 1e-4

  @property
  def num_atoms(self) -> int:
    return int(self.atoms.shape[0])

  @property
  def num_params(self) -> int:
    return num_params(*self.atoms.shape)


@dataclasses.dataclass
class SCFit:
  """A trained SC model and its trace.

  Attributes:
    model: the `SCModel`.
    h: training codes [n, M].
    sq_err, l1: per-sample `e^2` and `a` on the training data [n].
    history: per outer iteration: objective, sigma, beta, seconds.
    converged: the relative objective change fell below `tol`.
  """
  model: SCModel
  h: np.ndarray
  sq_err: np.ndarray
  l1: np.ndarray
  history: list[dict[str, float]]
  converged: bool


def num_params(num_atoms: int, num_features: int, length: int) -> int:
  """`M D T + 2` (atoms, sigma, beta)."""
  return num_atoms * num_features * length + 2


def matched_num_atoms(target_params: int, num_features: int, length: int
                      ) -> int:
  """Smallest M (>= 1) with `num_params(M, D, T) >= target_params`."""
  return max(1, math.ceil((target_params - 2) / (num_features * length)))


def init_atoms(x_NxP: np.ndarray, num_atoms: int, seed: int) -> np.ndarray:
  """M training samples drawn with probability proportional to their energy,
  plus 1% noise, normalised (random initialisation of Alg. 1)."""
  x = np.asarray(x_NxP, np.float64)
  rng = np.random.default_rng([seed, 2024])
  energy = np.square(x).sum(axis=1)
  noise = rng.standard_normal((num_atoms, x.shape[1]))
  if np.count_nonzero(energy) >= num_atoms:
    pick = rng.choice(x.shape[0], size=num_atoms, replace=False,
                      p=energy / energy.sum())
    base = x[pick]
    scale = np.linalg.norm(base, axis=1, keepdims=True)
    atoms = base + 0.01 * scale * noise / math.sqrt(x.shape[1])
  else:
    atoms = noise
  return atoms / np.maximum(np.linalg.norm(atoms, axis=1, keepdims=True),
                            1e-12)


def _lipschitz(m: Array) -> Array:
  """`lambda_max(m^T m)` (squared spectral norm), floored at `tiny`."""
  gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
  return jnp.maximum(jnp.linalg.eigvalsh(gram)[-1], jnp.finfo(m.dtype).tiny)


def _solve_codes(x_NxP, atoms_MxP, h0, xhat0, lam, alpha, max_iters, tol):
  step = alpha / _lipschitz(atoms_MxP)
  return fista.nonneg_lasso(
      x_NxP, lambda h: h @ atoms_MxP, lambda r: r @ atoms_MxP.T, h0, xhat0,
      lam, step, max_iters=max_iters, tol=tol)


@functools.partial(jax.jit, static_argnames=('cfg',))
def outer_step(state: SCState, x_NxP: Array, *, cfg: SCConfig
               ) -> tuple[SCState, dict[str, Array]]:
  """One outer iteration (Tasks 1-3 of Alg. 1 with a product for `(x)`)."""
  dtype = x_NxP.dtype
  n = x_NxP.shape[0]
  lam = jnp.asarray(cfg.lam, dtype)
  objective_start = jnp.mean(0.5 * state.sq_err + lam * state.l1)
  res = _solve_codes(x_NxP, state.atoms, state.h, state.xhat, lam, cfg.alpha,
                     cfg.inner_max_iters, cfg.inner_tol)
  h = res.h
  # Task 2: one accelerated projected step on the atoms, kept if f1 drops.
  a, a_prev = state.atoms, state.atoms_prev
  t_next = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * state.t * state.t))
  y = a + ((state.t - 1.0) / t_next) * (a - a_prev)
  grad = -(h.T @ (x_NxP - h @ y))
  cand = fista.project_frobenius_ball(y - (cfg.alpha / _lipschitz(h)) * grad,
                                      axes=(-1,))
  xhat_c = h @ cand
  sq_c = fista.per_sample_sq(x_NxP - xhat_c)
  accept = jnp.sum(sq_c) <= jnp.sum(res.sq_err)
  pick = lambda u, v: jnp.where(accept, u, v)
  sq = pick(sq_c, res.sq_err)
  new = SCState(atoms=pick(cand, a), atoms_prev=a,
                t=pick(t_next, jnp.ones_like(t_next)), h=h,
                xhat=pick(xhat_c, res.xhat), sq_err=sq, l1=res.l1)
  # Task 3: MLE of sigma and beta.
  sigma = jnp.maximum(jnp.sqrt(jnp.mean(sq)), cfg.min_sigma)
  beta = jnp.maximum(jnp.mean(res.l1), cfg.min_beta)
  info = dict(objective_start=objective_start,
              objective=jnp.mean(0.5 * sq + lam * res.l1), sigma=sigma,
              beta=beta, inner_iters=res.num_iters.astype(dtype),
              accepted=accept, n=jnp.asarray(n, dtype))
  return new, info


def _float_dtype():
  return np.float64 if jax.config.jax_enable_x64 else np.float32


def fit_sc(x_NxDxT: np.ndarray, num_atoms: int, *, cfg: SCConfig = SCConfig(),
           max_iters: int = 200, tol: float = 1e-3, min_iters: int = 3,
           seed: int = 0, infer_max_iters: int = 200, infer_tol: float = 1e-4
           ) -> SCFit:
  """Learns M global atoms from n samples (module docstring).

  Args:
    x_NxDxT: training samples.
    num_atoms: M.
    cfg: solver settings.
    max_iters: outer iterations, at most.
    tol: stop when the per-sample objective changes by less than this,
      relative, in one outer iteration (after `min_iters`).
    min_iters: outer iterations before testing `tol`.
    seed: seed of the initial atoms.
    infer_max_iters, infer_tol: stored in the model for `log_prob`.

  Returns:
    An `SCFit`.

  Raises:
    DataError: x is not a non-empty finite [n, D, T] array.
    FloatingPointError: the objective became NaN or infinite.
  """
  dynamics_lib.validate_dynamics(x_NxDxT)
  if num_atoms < 1:
    raise ValueError(f'num_atoms must be >= 1, got {num_atoms}')
  x_np = np.asarray(x_NxDxT)
  n, d, t = x_np.shape
  dtype = _float_dtype()
  x = jnp.asarray(x_np.reshape(n, d * t), dtype)
  atoms = jnp.asarray(init_atoms(x_np.reshape(n, d * t), num_atoms, seed),
                      dtype)
  state = SCState(atoms=atoms, atoms_prev=atoms, t=jnp.ones((), dtype),
                  h=jnp.zeros((n, num_atoms), dtype), xhat=jnp.zeros_like(x),
                  sq_err=jnp.sum(jnp.square(x), axis=1),
                  l1=jnp.zeros((n,), dtype))
  history, converged = [], False
  for it in range(1, max_iters + 1):
    t0 = time.perf_counter()
    state, info = outer_step(state, x, cfg=cfg)
    info = {k: float(v) for k, v in jax.device_get(info).items()}
    info['iteration'] = it
    info['seconds'] = time.perf_counter() - t0
    if not math.isfinite(info['objective']):
      raise FloatingPointError(f'SC objective is not finite at outer '
                               f'iteration {it}: {info}')
    start = info['objective_start']
    info['rel_change'] = (start - info['objective']) / max(abs(start), 1e-30)
    history.append(info)
    if it >= min_iters and abs(info['rel_change']) < tol:
      converged = True
      break
  model = SCModel(atoms=np.asarray(state.atoms).reshape(num_atoms, d, t),
                  sigma=history[-1]['sigma'], beta=history[-1]['beta'],
                  lam=float(cfg.lam), infer_max_iters=int(infer_max_iters),
                  infer_tol=float(infer_tol))
  return SCFit(model=model, h=np.asarray(state.h),
               sq_err=np.asarray(state.sq_err), l1=np.asarray(state.l1),
               history=history, converged=converged)


@functools.partial(jax.jit, static_argnames=('max_iters', 'tol'))
def _infer(x_NxP, atoms_MxP, lam, *, max_iters, tol):
  h0 = jnp.zeros((x_NxP.shape[0], atoms_MxP.shape[0]), x_NxP.dtype)
  res = _solve_codes(x_NxP, atoms_MxP, h0, jnp.zeros_like(x_NxP), lam, 1.0,
                     max_iters, tol)
  return res.h, res.xhat, res.sq_err, res.l1


def infer_codes(model: SCModel, x_NxDxT: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Codes by the h-step from h = 0: (h [n, M], xhat [n, D, T], e^2, a).

  Raises:
    DataError: x is not finite [n, D, T] with the model's D and T.
  """
  dynamics_lib.validate_dynamics(x_NxDxT)
  x_np = np.asarray(x_NxDxT)
  if x_np.shape[1:] != model.atoms.shape[1:]:
    raise DataError(f'samples have shape {x_np.shape[1:]} (D, T) but the SC '
                    f'model was trained on {model.atoms.shape[1:]}')
  n = x_np.shape[0]
  dtype = _float_dtype()
  x = jnp.asarray(x_np.reshape(n, -1), dtype)
  atoms = jnp.asarray(model.atoms.reshape(model.num_atoms, -1), dtype)
  h, xhat, sq, l1 = _infer(x, atoms, jnp.asarray(model.lam, dtype),
                           max_iters=model.infer_max_iters,
                           tol=model.infer_tol)
  return (np.asarray(h), np.asarray(xhat).reshape(x_np.shape),
          np.asarray(sq), np.asarray(l1))


def log_prob(model: SCModel, x_NxDxT: np.ndarray) -> np.ndarray:
  """`log P(X_i)` per sample: half-normal error + exponential activation."""
  _, _, sq, l1 = infer_codes(model, x_NxDxT)
  return likelihood.cbm_log_joint(sq, l1, model.sigma, model.beta)
