"""CBM learning: Algorithms 1 and 2 of the paper (SPEC B3, B4; Eqs. 6-9).

One outer iteration (`outer_step`, one jitted function over all samples):

1. Task 1 (Alg. 2): per sample, FISTA on h, warm-started from the previous
   outer iteration (`fista.nonneg_lasso`: non-negative soft threshold,
   function-value restarts, never worse than the warm start).
2. Task 2 (Alg. 1): accelerated projected steps on all K filters jointly,
   `W <- Pi(Y - t_W grad_W f1(Y))`, `Y = W^[r-1] + m_r (W^[r-1] - W^[r-2])`,
   `Pi` the projection onto `||W_k||_F <= 1`. The paper takes one step per
   outer iteration (`w_steps=1`, the default).
3. Task 3: closed-form MLE `sigma = sqrt(mean_i e_i^2)`, `beta = mean_i a_i`
   (e_i: per-sample error `||X_i - Xhat_i||_F`; a_i: per-sample activation
   `sum_k ||h_ik||_1`).

Step sizes of the joint (all-K) updates (SPEC B4). Eq. 9 bounds the Lipschitz
constant of one block (filter k): `t_hk = alpha/||W_k||_1^2`,
`t_Wk = alpha / sum_i ||h_ik||_1^2`. Updating all K blocks at once needs the
Lipschitz constant L of the joint gradient; with it, `t = alpha / L`,
`alpha in (0, 1]` (what the accelerated method needs; Eq. 9's `(0, 2)` is the
range of plain gradient steps):

* h-step: the provable bound `L_h = ||M||_2^2`, `M[d, k] = ||W_{k,d,:}||_1`
  (a D x K matrix; `lipschitz_h`). Proof: one sample's model is
  `Xhat_d = sum_k w_kd * h_k`, a "valid" restriction of full 1-D
  convolutions (which only lowers norms). By Parseval and
  `|w_kd^(omega)| <= ||w_kd||_1 = M[d, k]`,
  `||Xhat||^2 <= int sum_d (sum_k M[d,k] |h_k^(omega)|)^2
  <= ||M||_2^2 int sum_k |h_k^(omega)|^2 = ||M||_2^2 ||h||^2`.
  For K = 1 this is the paper's bound (`sum_d ||w_d||_1^2 <= ||W||_1^2`);
  for K > 1 it is at most the sum of the K block bounds. Measured: within 3%
  of the true `||A_W||^2` on trained filters.
* W-step: the exact constant `L_W = lambda_max(G)`, `G = sum_i U_i^T U_i`
  with `U_i` the unfolded activation windows (`window_gram`; `f1` is a
  quadratic in W with Hessian `G` per feature row). The same Parseval
  argument gives the cheaper bound `L_W <= ||A||_2^2`, `A[i, k] =
  ||h_ik||_1` (`lipschitz_w`; the paper's bound for K = 1), 2-3x loose on
  trained models; since G also makes `f1(W)` exact and free, we use G.

Monotonicity (tested). With `lam_r` the penalty weight of outer iteration r
(below), the Eq. 6 objective `J_r(W, h) = sum_i [1/2 e_i^2 + lam_r a_i]`
satisfies `J_r(W^[r], h^[r]) <= J_r(W^[r-1], h^[r-1])`: the h-step returns,
per sample, nothing worse than its warm start, and the W result is kept only
if it does not increase `f1` (else W is kept and its momentum restarts, so
the next iteration starts with a plain projected-gradient step with
`t_W <= 1/L_W`, which provably decreases `f1`). With `penalty='mle'`,
`lam_r = sigma_{r-1}^2 / beta_{r-1}`, and Task 3 minimises the full negative
log joint `N(W, h, sigma, beta) = sum_i [log sigma + e_i^2 / (2 sigma^2) +
log beta + a_i / beta] + n log sqrt(pi/2)` over sigma, beta exactly; since
`N = n log(sigma beta) + J(W, h; sigma^2/beta) / sigma^2 + const`, tasks 1-2
lower N too: N never increases across outer iterations (tested). With
`penalty='fixed'`, `lam_r = lam` for all r and J itself never increases.

Penalty. The paper sets `lam = sigma^2 / beta` from Task 3 at every outer
iteration (`penalty='mle'`). On planted data that update has no fixed point
with activations: the MAP h shrinks with lam, so `g(lam) = sigma^2(lam) /
beta(lam) > lam` for every lam (measured with the true filters, noise 0.05:
g(0.1) = 0.18, g(0.3) = 0.31, g(1) = 1.67), and lam grows until every
activation is zero -- the degenerate maximum of the joint density
(`log P(h = 0) = -log beta -> inf` as `beta -> 0`). We therefore default to
`penalty='fixed'` (lam given, in the units of the scaled data) and still
compute sigma and beta by MLE at every iteration: they define every
likelihood (Eqs. 3, 12: perplexity, anomaly scores, BIC). A run that
collapses is flagged (`FitResult.collapsed`) and loses restarts.

Convergence: an outer iteration is converged when it lowers `J_r` by less
than `tol` relative (`objective_start` vs `objective`).

Line search (`step='line_search'`, RCBM-LS): the same algorithm with
backtracking instead of the step bounds: per-sample backtracking in the
h-step (each trial one convolution), and backtracking on `L_W` (on the exact
quadratic, from the last accepted `L_W / eta`).

Samples are processed in mini-batches of `batch_size` (`lax.map` inside the
one jitted step): each batch runs its own h-step to convergence, and G is a
sum over batches, so the result does not depend on the batch size (up to the
batches' own inner-iteration counts). Batches bound the solver's working
memory and keep it in cache. All functions are pure functions of arrays; the
sample axis can be sharded (G and B are sums over samples).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax import lax

from cyan_rcbm import errors
from cyan_rcbm.data import dynamics as dynamics_lib
from cyan_rcbm.rcbm import fista
from cyan_rcbm.rcbm import ops

Array = jax.Array
STEP_RULES = ('fixed', 'line_search')
PENALTIES = ('fixed', 'mle')
INITS = ('patches', 'gaussian')


@dataclasses.dataclass(frozen=True)
class SolverConfig:
  """Static settings of the CBM solver (hashable: a jit static argument).

  Attributes:
    step: 'fixed' (RCBM-FS, the bounds of the module docstring) or
      'line_search' (RCBM-LS, backtracking).
    penalty: how `lam` of Eq. 6 is set: 'fixed' (`lam` throughout) or 'mle'
      (the paper: `sigma^2 / beta` of the previous iteration's Task 3, after
      `warmup_iters` iterations at `lam`). See "Penalty" in the module doc.
    lam: the penalty weight `sigma^2 / beta` of 'fixed' and of the warm-up.
    warmup_iters: outer iterations at `lam` before 'mle' updates start.
    w_steps: accelerated projected W steps per outer iteration (the paper
      takes 1; see "W-step" in the module docstring).
    alpha: step multiplier in (0, 1] for the fixed rule.
    inner_max_iters: cap on FISTA iterations per h-step (Alg. 2).
    inner_min_iters: FISTA iterations before the inner tolerance is tested.
    inner_tol: h-step stops when the summed objective changes by less than
      this, relative, in one FISTA iteration.
    form: operator form (`ops.FORMS` or 'auto').
    ls_eta: backtracking factor of the line search.
    ls_init_lipschitz: initial Lipschitz estimate of each h line search.
    min_sigma: floor of sigma (keeps `log sigma` finite on exact fits).
    min_beta: floor of beta (keeps the penalty finite when h = 0).
  """
  step: str = 'fixed'
  penalty: str = 'fixed'
  lam: float = 0.3
  warmup_iters: int = 10
  w_steps: int = 1
  alpha: float = 1.0
  inner_max_iters: int = 100
  inner_min_iters: int = 1
  inner_tol: float = 1e-4
  form: str = 'auto'
  ls_eta: float = 2.0
  ls_init_lipschitz: float = 1.0
  min_sigma: float = 1e-6
  min_beta: float = 1e-6

  def __post_init__(self):
    if self.step not in STEP_RULES:
      raise ValueError(f'step must be one of {STEP_RULES}, got {self.step!r}')
    if self.penalty not in PENALTIES:
      raise ValueError(f'penalty must be one of {PENALTIES}, got '
                       f'{self.penalty!r}')
    if self.w_steps < 1:
      raise ValueError(f'w_steps must be >= 1, got {self.w_steps}')
    if not self.lam > 0:
      raise ValueError(f'lam must be > 0, got {self.lam}')
    if not 0 < self.alpha <= 1:
      raise ValueError(f'alpha must be in (0, 1], got {self.alpha}')
    if self.inner_max_iters < 1 or self.inner_min_iters < 0:
      raise ValueError('inner_max_iters must be >= 1 and inner_min_iters >= 0')
    if not self.inner_tol >= 0:
      raise ValueError(f'inner_tol must be >= 0, got {self.inner_tol}')
    if self.ls_eta <= 1:
      raise ValueError(f'ls_eta must be > 1, got {self.ls_eta}')
    ops.resolve_form(self.form)


class CBMParams(NamedTuple):
  """One learned CBM (Eq. 3): filters [K, D, Tw] and the MLE sigma, beta."""
  w: Array
  sigma: Array
  beta: Array


class CBMState(NamedTuple):
  """Everything an outer iteration carries (a pytree; checkpointed as is).

  Samples are stored time-major in batches: C batches of B samples, features
  padded to Dp (zero rows; they never change the fit).

  Attributes:
    w: filters [K, Dp, Tw] at iteration r.
    w_prev: filters at r - 1 (momentum of the W-step).
    w_t: momentum sequence of the W-step (scalar).
    lip_w: last accepted W Lipschitz estimate (line search; scalar).
    h: activations [C, B, S, K].
    xhat: `sum_k W_k (x) h_k` [C, B, T, Dp] at (w, h).
    sq_err: `e_i^2` [C, B] at (w, h).
    l1: `a_i = sum_k ||h_ik||_1` [C, B].
    sigma, beta: current MLE (scalars).
    objective: Eq. 6 per sample after the last iteration (inf before any).
    iteration: outer iterations done (int32 scalar).
  """
  w: Array
  w_prev: Array
  w_t: Array
  lip_w: Array
  h: Array
  xhat: Array
  sq_err: Array
  l1: Array
  sigma: Array
  beta: Array
  objective: Array
  iteration: Array


# ---------------------------------------------------------------------------
# Step-size bounds.


def lipschitz_h(w_KxDxTw: Array) -> Array:
  """`L_h = ||M||_2^2`, `M[d, k] = ||W_{k,d,:}||_1` (module docstring)."""
  m_KxD = jnp.sum(jnp.abs(w_KxDxTw), axis=-1)
  return jnp.linalg.eigvalsh(m_KxD @ m_KxD.T)[-1]


def lipschitz_w(l1_NxK: Array) -> Array:
  """`L_W = ||A||_2^2`, `A[i, k] = ||h_ik||_1` (module docstring)."""
  a = l1_NxK.reshape(-1, l1_NxK.shape[-1])
  return jnp.linalg.eigvalsh(a.T @ a)[-1]


# ---------------------------------------------------------------------------
# Data layout.


def padded_features(num_features: int, form: str) -> int:
  """Feature count used inside the solver (multiples of 8 suit `'conv'`)."""
  if ops.resolve_form(form) == 'conv':
    return -(-num_features // 8) * 8
  return num_features


def batch_layout(num_samples: int, batch_size: int, pad: bool = False
                 ) -> tuple[int, int]:
  """(number of batches C, batch size B) covering `num_samples`.

  B is `batch_size` (all samples when 0), capped at `num_samples` unless
  `pad` (then a small set is zero-padded up to one full batch).
  """
  if batch_size <= 0:
    b = num_samples
  else:
    b = batch_size if pad else min(batch_size, num_samples)
  return -(-num_samples // b), b


def to_solver_layout(x_NxDxT: np.ndarray | Array, batch_size: int,
                     form: str, pad: bool = False) -> Array:
  """[N, D, T] -> time-major, feature-padded batches [C, B, T, Dp] (numpy
  work, one device transfer: no compilation per shape)."""
  x = np.asarray(x_NxDxT)
  n, d, _ = x.shape
  c, b = batch_layout(n, batch_size, pad)
  dp = padded_features(d, form)
  x = np.pad(np.swapaxes(x, 1, 2), ((0, c * b - n), (0, 0), (0, dp - d)))
  return jnp.asarray(x.reshape((c, b) + x.shape[1:]))


def from_solver_layout(a_CxBxLxF: Array, num_samples: int, num_rows: int
                       ) -> np.ndarray:
  """Inverse of `to_solver_layout` for h or xhat: -> [N, num_rows, L]."""
  a = np.asarray(a_CxBxLxF)
  a = a.reshape((-1,) + a.shape[2:])[:num_samples]
  return np.swapaxes(a[..., :num_rows], 1, 2)


# ---------------------------------------------------------------------------
# Initialisation.


def init_filters(x_NxDxT: np.ndarray, num_filters: int, filter_length: int,
                 seed: int, method: str = 'gaussian') -> np.ndarray:
  """Random unit-norm filters [K, D, Tw] ("random initialization", Alg. 1).

  'patches': K windows of the data, drawn k-means++-style (probability
  proportional to energy times the squared cosine distance to the windows
  already drawn: sparse data gives non-empty and diverse filters), plus 1%
  noise;
  'gaussian': i.i.d. normal entries. Both are projected to `||W_k||_F = 1`.
  """
  if method not in INITS:
    raise ValueError(f'init must be one of {INITS}, got {method!r}')
  x = np.asarray(x_NxDxT, np.float64)
  n, d, t = x.shape
  rng = np.random.default_rng([seed, 12345])
  w = rng.standard_normal((num_filters, d, filter_length))
  if method == 'patches' and t >= filter_length:
    sub = x[rng.choice(n, size=min(n, 2000), replace=False)]
    cum = np.cumsum(np.pad(np.square(sub).sum(1), ((0, 0), (1, 0))), axis=1)
    energy = (cum[:, filter_length:] - cum[:, :-filter_length]).ravel()
    total = energy.sum()
    if total > 0 and np.count_nonzero(energy) >= num_filters:
      picks = _diverse_windows(sub, energy, num_filters, filter_length, rng)
      i, s = np.unravel_index(picks, (sub.shape[0], t - filter_length + 1))
      patches = np.stack([sub[a, :, b:b + filter_length]
                          for a, b in zip(i, s)])
      scale = np.linalg.norm(patches.reshape(num_filters, -1), axis=1)
      w = patches + 0.01 * scale[:, None, None] * w / math.sqrt(
          d * filter_length)
  norm = np.linalg.norm(w.reshape(num_filters, -1), axis=1)
  return w / np.maximum(norm, 1e-12)[:, None, None]


def _diverse_windows(x_NxDxT, energy, count, length, rng, pool=4000):
  """k-means++-style draw of `count` windows: probability proportional to
  energy times the squared distance (1 - cosine) to the windows drawn so
  far, among `pool` candidates drawn proportionally to energy."""
  num_windows = x_NxDxT.shape[2] - length + 1
  nonzero = np.count_nonzero(energy)
  cand = rng.choice(energy.size, size=min(pool, nonzero), replace=False,
                    p=energy / energy.sum())
  i, s = np.unravel_index(cand, (x_NxDxT.shape[0], num_windows))
  v = np.stack([x_NxDxT[a, :, b:b + length].ravel() for a, b in zip(i, s)])
  v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
  weight = energy[cand].astype(np.float64)
  chosen = [int(rng.choice(len(cand), p=weight / weight.sum()))]
  dist = np.ones(len(cand))
  for _ in range(count - 1):
    dist = np.minimum(dist, np.maximum(1.0 - v @ v[chosen[-1]], 0.0))
    p = weight * dist ** 2
    p[chosen] = 0.0
    if p.sum() <= 0:
      p = weight.copy()
      p[chosen] = 0.0
    chosen.append(int(rng.choice(len(cand), p=p / p.sum())))
  return cand[chosen]


def init_state(x_CxBxTxD: Array, w_KxDxTw: np.ndarray | Array,
               sigma: float = 1.0, beta: float = 1.0) -> CBMState:
  """State before the first outer iteration: h = 0, given filters."""
  c, b, t, dp = x_CxBxTxD.shape
  dtype = x_CxBxTxD.dtype
  k, d, tw = w_KxDxTw.shape
  w = jnp.pad(jnp.asarray(w_KxDxTw, dtype), ((0, 0), (0, dp - d), (0, 0)))
  h = jnp.zeros((c, b, t + tw - 1, k), dtype)
  return CBMState(
      w=w, w_prev=w, w_t=jnp.ones((), dtype), lip_w=jnp.ones((), dtype),
      h=h, xhat=jnp.zeros_like(x_CxBxTxD),
      sq_err=jnp.sum(jnp.square(x_CxBxTxD), axis=(2, 3)),
      l1=jnp.zeros((c, b), dtype), sigma=jnp.asarray(sigma, dtype),
      beta=jnp.asarray(beta, dtype), objective=jnp.asarray(jnp.inf, dtype),
      iteration=jnp.zeros((), jnp.int32))


# ---------------------------------------------------------------------------
# The outer iteration.


def solve_h(x_BxTxD: Array, w_KxDxTw: Array, h0_BxSxK: Array,
            xhat0_BxTxD: Array, lam: Array, cfg: SolverConfig
            ) -> fista.LassoResult:
  """Task 1 / Algorithm 2 on one batch (time-major), warm-started at h0."""
  fwd, adj = ops.operator_pair(cfg.form)
  line_search = cfg.step == 'line_search'
  if line_search:
    step = 1.0 / jnp.asarray(cfg.ls_init_lipschitz, x_BxTxD.dtype)
  else:
    step = cfg.alpha / jnp.maximum(lipschitz_h(w_KxDxTw),
                                   jnp.finfo(x_BxTxD.dtype).tiny)
  return fista.nonneg_lasso(
      x_BxTxD, lambda h: fwd(w_KxDxTw, h), lambda r: adj(w_KxDxTw, r),
      h0_BxSxK, xhat0_BxTxD, lam, step, max_iters=cfg.inner_max_iters,
      tol=cfg.inner_tol, min_iters=cfg.inner_min_iters,
      line_search=line_search, eta=cfg.ls_eta)


def _sum_over_batches(fn, *xs):
  """sum_c fn(x_c, ...) with `lax.map` (pytrees of sums)."""
  parts = lax.map(lambda args: fn(*args), xs)
  return jax.tree.map(lambda p: jnp.sum(p, axis=0), parts)


def filter_matrix(w_KxDxTw: Array) -> Array:
  """W as the [Tw*K, D] matrix `Wm[(j, k), d] = W[k, d, Tw-1-j]`, so that
  `xhat[t] = U[t] @ Wm` with windows `U[t, (j, k)] = h[k, t + j]`."""
  k, d, tw = w_KxDxTw.shape
  return jnp.transpose(w_KxDxTw[..., ::-1], (2, 0, 1)).reshape(tw * k, d)


def filter_tensor(wm: Array, num_filters: int) -> Array:
  """Inverse of `filter_matrix`: [Tw*K, D] -> [K, D, Tw]."""
  tw = wm.shape[0] // num_filters
  return jnp.transpose(wm.reshape(tw, num_filters, -1), (1, 2, 0))[..., ::-1]


def window_gram(x_CxBxTxD: Array, h_CxBxSxK: Array, filter_length: int
                ) -> tuple[Array, Array]:
  """`G = sum_i U_i^T U_i` [Tw*K, Tw*K] and `B = sum_i U_i^T X_i` [Tw*K, D].

  With them, `f1(W) = 1/2 tr(Wm^T G Wm) - tr(Wm^T B) + 1/2 sum_i ||X_i||^2`
  (Wm = `filter_matrix(W)`), `grad f1 = G Wm - B`, and the Lipschitz constant
  of the W-gradient is exactly `lambda_max(G)`. Cost per outer iteration:
  `O(n T (K Tw)^2)` as dense matrix products.
  """
  t = x_CxBxTxD.shape[2]

  def one(x_c, h_c):
    idx = jnp.arange(t)[:, None] + jnp.arange(filter_length)[None, :]
    u = h_c[:, idx, :].reshape(-1, filter_length * h_c.shape[-1])
    return u.T @ u, u.T @ x_c.reshape(-1, x_c.shape[-1])

  return _sum_over_batches(one, x_CxBxTxD, h_CxBxSxK)


def _w_step(state: CBMState, x, h, cfg: SolverConfig):
  """Task 2: `cfg.w_steps` accelerated projected steps on all K filters.

  The momentum sequence continues across outer iterations (Alg. 1's
  `Y = W^[r-1] + (r-2)/(r+1) (W^[r-1] - W^[r-2])`, in FISTA's t-form), and
  restarts where f1 rises. The result is kept only if it does not increase
  f1 (else W is kept and the momentum restarts). f1 is evaluated exactly and
  for free through `window_gram`.
  """
  dtype = x.dtype
  tiny = jnp.finfo(dtype).tiny
  k = state.w.shape[0]
  g, b = window_gram(x, h, state.w.shape[-1])

  def q(wm):  # f1 - 1/2 sum ||X||^2
    return 0.5 * jnp.sum(wm * (g @ wm)) - jnp.sum(wm * b)

  def project(wm):
    tw = wm.shape[0] // k
    return fista.project_frobenius_ball(
        wm.reshape(tw, k, -1), axes=(0, 2)).reshape(wm.shape)

  lip_exact = jnp.maximum(jnp.linalg.eigvalsh(g)[-1], tiny)
  line_search = cfg.step == 'line_search'

  def step(carry, _):
    wm, wm_prev, t, lip = carry
    t_next = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
    y = wm + ((t - 1.0) / t_next) * (wm - wm_prev)
    grad = g @ y - b
    if line_search:
      q_y = q(y)

      def violated(lip):
        d = project(y - grad / lip) - y
        model = q_y + jnp.sum(grad * d) + 0.5 * lip * jnp.sum(d * d)
        return q(y + d) > model + 1e-6 * jnp.abs(q_y) + tiny

      lip = lax.while_loop(lambda l: violated(l) & (l < 1e30),
                           lambda l: l * cfg.ls_eta,
                           jnp.maximum(lip / cfg.ls_eta, tiny))
    else:
      lip = lip_exact / cfg.alpha
    new = project(y - grad / lip)
    rose = q(new) > q(wm)
    return (new, wm, jnp.where(rose, jnp.ones_like(t_next), t_next), lip), None

  wm0 = filter_matrix(state.w)
  wm_prev0 = filter_matrix(state.w_prev)
  (wm, wm_prev, t, lip), _ = lax.scan(
      step, (wm0, wm_prev0, state.w_t, state.lip_w), None, length=cfg.w_steps)
  accept = q(wm) <= q(wm0)
  w_new = jnp.where(accept, filter_tensor(wm, k), state.w)
  new = dict(w=w_new,
             w_prev=jnp.where(accept, filter_tensor(wm_prev, k), state.w),
             w_t=jnp.where(accept, t, jnp.ones_like(t)), lip_w=lip)
  return new, accept, lip


@functools.partial(jax.jit, static_argnames=('num_samples', 'cfg'))
def outer_step(state: CBMState, x_CxBxTxD: Array, *, num_samples: int,
               cfg: SolverConfig) -> tuple[CBMState, dict[str, Array]]:
  """One outer iteration of Algorithm 1 (Tasks 1-3) over all samples.

  Args:
    state: the carry (see `CBMState`).
    x_CxBxTxD: data in the solver layout (`to_solver_layout`); padding
      samples are all-zero and contribute nothing.
    num_samples: the true number of samples n (for the MLE means).
    cfg: solver settings.

  Returns:
    The new state and per-iteration scalars: `objective_start` and
    `objective` (Eq. 6 per sample, with this iteration's sigma, beta, before
    and after), `neg_log_joint` (per sample, after Task 3), `sigma`, `beta`,
    `lam`, `inner_iters` (mean over batches), `w_accepted`, `lipschitz_w`.
  """
  dtype = x_CxBxTxD.dtype
  lam = jnp.asarray(cfg.lam, dtype)
  if cfg.penalty == 'mle':
    lam = jnp.where(state.iteration < cfg.warmup_iters, lam,
                    jnp.square(state.sigma) / state.beta)
  objective_start = jnp.sum(0.5 * state.sq_err + lam * state.l1)

  # Task 1: h-step per batch.
  def h_batch(args):
    x_c, h_c, xh_c = args
    res = solve_h(x_c, state.w, h_c, xh_c, lam, cfg)
    return res.h, res.xhat, res.sq_err, res.l1, res.num_iters

  h, _, _, l1, iters = lax.map(h_batch, (x_CxBxTxD, state.h, state.xhat))

  # Task 2: W step(s), then the model at the new filters.
  new, accept, lip = _w_step(state, x_CxBxTxD, h, cfg)
  fwd, _ = ops.operator_pair(cfg.form)

  def evaluate(args):
    x_c, h_c = args
    xh = fwd(new['w'], h_c)
    return xh, fista.per_sample_sq(x_c - xh)

  xhat, sq = lax.map(evaluate, (x_CxBxTxD, h))

  # Task 3: MLE of sigma and beta.
  n = jnp.asarray(num_samples, dtype)
  sigma = jnp.maximum(jnp.sqrt(jnp.sum(sq) / n), cfg.min_sigma)
  beta = jnp.maximum(jnp.sum(l1) / n, cfg.min_beta)
  objective = jnp.sum(0.5 * sq + lam * l1) / n
  state = CBMState(h=h, xhat=xhat, sq_err=sq, l1=l1, sigma=sigma, beta=beta,
                   objective=objective, iteration=state.iteration + 1, **new)
  info = dict(
      objective_start=objective_start / n, objective=objective,
      neg_log_joint=neg_log_joint(sq, l1, sigma, beta, num_samples) / n,
      sigma=sigma,
      beta=beta, lam=lam, inner_iters=jnp.mean(iters.astype(dtype)),
      w_accepted=accept, lipschitz_w=lip)
  return state, info


def neg_log_joint(sq_err: Array, l1: Array, sigma: Array, beta: Array,
                  num_samples: int) -> Array:
  """`-sum_i log P(X_i, h_i)` of Eq. 3 (SPEC B3 per-sample densities).

  `sq_err`, `l1` may hold padding entries equal to 0; `num_samples` is the
  true n.
  """
  n = num_samples
  return (n * (jnp.log(sigma) + jnp.log(beta) - 0.5 * math.log(2 / math.pi))
          + jnp.sum(sq_err) / (2 * jnp.square(sigma)) + jnp.sum(l1) / beta)


# ---------------------------------------------------------------------------
# The driver: restarts, convergence, callbacks.


@dataclasses.dataclass
class FitResult:
  """A trained CBM and its training trace.

  Attributes:
    params: filters [K, D, Tw] (unsorted), sigma, beta (numpy).
    h: activations [n, K, S] at the end (numpy).
    sq_err: per-sample squared error `e_i^2` [n].
    l1: per-sample activation `a_i` [n].
    state: the final solver state (solver layout).
    history: one dict of floats per outer iteration of the kept run.
    converged: the relative objective change fell below `tol`.
    restart_objectives: score of each screened restart (`_restart_score`).
    collapsed: every activation is zero (beta at its floor); with
      penalty='mle' this is the degenerate maximum of the joint density.
  """
  params: CBMParams
  h: np.ndarray
  sq_err: np.ndarray
  l1: np.ndarray
  state: CBMState
  history: list[dict[str, float]]
  converged: bool
  restart_objectives: list[float]
  collapsed: bool = False


def _to_floats(info: dict[str, Array]) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(info).items()}


def _run(state, x, n, cfg, *, max_iters, tol, min_iters, on_iter):
  """Outer iterations until convergence; returns (state, converged).

  Converged: the relative decrease of the Eq. 6 objective within one outer
  iteration (same `lam` before and after) is below `tol`.
  """
  while int(state.iteration) < max_iters:
    t0 = time.perf_counter()
    state, info = outer_step(state, x, num_samples=n, cfg=cfg)
    info = _to_floats(info)
    info['iteration'] = int(state.iteration)
    info['seconds'] = time.perf_counter() - t0
    if not all(math.isfinite(info[k]) for k in ('objective', 'sigma', 'beta')):
      raise FloatingPointError(
          f'CBM objective is not finite at outer iteration '
          f'{int(state.iteration)}: {info}')
    start = info['objective_start']
    rel = (start - info['objective']) / max(abs(start), 1e-30)
    info['rel_change'] = rel
    on_iter(state, info)
    if int(state.iteration) >= min_iters and abs(rel) < tol:
      return state, True
  return state, False


def _restart_score(info: dict[str, float], cfg: SolverConfig) -> float:
  """What restarts compare: Eq. 6 at fixed lam, else the negative log joint.

  A collapsed run (no activation left: `beta` at its floor) scores +inf: its
  joint density is degenerate (`log P(h = 0) -> inf` as `beta -> 0`).
  """
  if info['beta'] <= cfg.min_beta:
    return math.inf
  return info['objective' if cfg.penalty == 'fixed' else 'neg_log_joint']


def fit_cbm(x_NxDxT: np.ndarray | Array, num_filters: int, filter_length: int,
            *, cfg: SolverConfig = SolverConfig(), max_iters: int = 200,
            tol: float = 1e-4, min_iters: int = 3, num_restarts: int = 1,
            restart_iters: int = 0, batch_size: int = 0, seed: int = 0,
            init: str = 'gaussian',
            callback: Callable[[CBMState, dict[str, float]], Any] | None = None,
            initial_state: CBMState | None = None) -> FitResult:
  """Learns one CBM (Algorithm 1) from n samples.

  Args:
    x_NxDxT: samples (validated by the caller); float32, or float64 with x64.
    num_filters: K.
    filter_length: Tw (<= T).
    cfg: solver settings.
    max_iters: cap on outer iterations (counted from the first).
    tol: stop when the relative change of the per-sample objective
      (`FitResult.history[...]['objective']`) is below `tol`...
    min_iters: ...but not before this many outer iterations.
    num_restarts: random initialisations; each runs `restart_iters` outer
      iterations (or to convergence), the best one (`_restart_score`) is kept
      and continued.
    restart_iters: length of each screening run (0 or >= max_iters: each
      restart runs to convergence).
    batch_size: samples per mini-batch (0: all at once).
    seed: seed of the initialisations (restart j uses `seed + j`).
    init: 'gaussian' (the paper's random initialisation) or 'patches'
      (`init_filters`).
    callback: called as `callback(state, info)` after every outer iteration
      of the kept run (screening iterations of the kept restart are replayed
      first), e.g. to log metrics and save checkpoints.
    initial_state: resume from this state (no restarts).

  Returns:
    A `FitResult`.

  Raises:
    DataError: x is not a finite, non-empty [n, D, T] array.
    ConfigError: filter_length or num_filters out of range.
    FloatingPointError: the objective became NaN or infinite.
  """
  dynamics_lib.validate_dynamics(x_NxDxT)
  x_np = np.asarray(x_NxDxT)
  n, d, t = x_np.shape
  if not 1 <= filter_length <= t:
    raise errors.ConfigError(
        f'filter_length {filter_length} must be in 1..{t} (the sample length)')
  if num_filters < 1:
    raise errors.ConfigError(f'num_filters must be >= 1, got {num_filters}')
  x = to_solver_layout(x_np, batch_size, cfg.form)
  callback = callback or (lambda state, info: None)
  history = []

  def live(state, info):
    history.append(info)
    callback(state, info)

  run = functools.partial(_run, x=x, n=n, cfg=cfg, tol=tol,
                          min_iters=min_iters)
  restart_objectives = []
  if initial_state is not None:
    state, converged = run(initial_state, max_iters=max_iters, on_iter=live)
  elif num_restarts <= 1:
    w0 = init_filters(x_np, num_filters, filter_length, seed, init)
    state, converged = run(init_state(x, w0, 1.0, 1.0 / cfg.lam),
                           max_iters=max_iters, on_iter=live)
  else:
    best = None
    for j in range(num_restarts):
      w0 = init_filters(x_np, num_filters, filter_length, seed + j, init)
      trace = []
      screen_iters = (restart_iters if 0 < restart_iters < max_iters
                      else max_iters)
      state, converged = run(init_state(x, w0, 1.0, 1.0 / cfg.lam),
                             max_iters=screen_iters,
                             on_iter=lambda s, i: trace.append(i))
      restart_objectives.append(_restart_score(trace[-1], cfg))
      if best is None or restart_objectives[-1] < best[0]:
        best = (restart_objectives[-1], state, converged, trace)
    _, state, converged, trace = best
    for info in trace:
      live(state, info)
    if not converged and int(state.iteration) < max_iters:
      state, converged = run(state, max_iters=max_iters, on_iter=live)
  result = _result(state, n, d, restart_objectives, converged)
  result.history = history
  result.collapsed = bool(float(state.beta) <= cfg.min_beta)
  if result.collapsed:
    logging.warning(
        'CBM collapsed: every activation is zero (beta at its floor %g). With '
        "penalty='mle' the paper's update of sigma^2/beta drifts to this "
        "degenerate optimum; use penalty='fixed' or a smaller lam.",
        cfg.min_beta)
  return result


def _result(state, n, d, restart_objectives, converged) -> FitResult:
  k = state.w.shape[0]
  params = CBMParams(w=np.asarray(state.w[:, :d]),
                     sigma=np.asarray(state.sigma),
                     beta=np.asarray(state.beta))
  return FitResult(
      params=params, h=np.asarray(from_solver_layout(state.h, n, k)),
      sq_err=np.asarray(state.sq_err).ravel()[:n],
      l1=np.asarray(state.l1).ravel()[:n], state=state, history=[],
      converged=converged, restart_objectives=restart_objectives)
