"""One outer iteration of CBM learning: Algorithm 1, Tasks 1-3 (equations.md B3,
B4).

`outer_step` is one jitted function over all samples:

1. Task 1 (Alg. 2): per sample, FISTA on h, warm-started from the previous
   outer iteration (`fista.nonneg_lasso`: non-negative soft threshold,
   function-value restarts, never worse than the warm start).
2. Task 2 (Alg. 1): accelerated projected steps on all K filters jointly
   (`cbm_filters.w_step`); the paper takes one step per outer iteration
   (`w_steps=1`, the default).
3. Task 3: closed-form MLE `sigma = sqrt(mean_i e_i^2)`, `beta = mean_i a_i`
   (e_i: per-sample error `||X_i - Xhat_i||_F`; a_i: per-sample activation
   `sum_k ||h_ik||_1`).

Step sizes of the joint (all-K) updates (equations.md B4). Eq. 9 bounds the
Lipschitz constant of one block (filter k): `t_hk = alpha/||W_k||_1^2`,
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
* W-step: the exact constant `L_W = lambda_max(G)` of `cbm_filters`; the
  same Parseval argument gives the cheaper bound `L_W <= ||A||_2^2`,
  `A[i, k] = ||h_ik||_1` (`lipschitz_w`; the paper's bound for K = 1).

Monotonicity (tested). With `lam_r` the penalty weight of outer iteration r
(`cbm` module docstring, "Penalty"), the Eq. 6 objective
`J_r(W, h) = sum_i [1/2 e_i^2 + lam_r a_i]` satisfies
`J_r(W^[r], h^[r]) <= J_r(W^[r-1], h^[r-1])`: the h-step returns, per
sample, nothing worse than its warm start, and the W result is kept only if
it does not increase `f1` (else W is kept and its momentum restarts, so the
next iteration starts with a plain projected-gradient step with
`t_W <= 1/L_W`, which provably decreases `f1`). With `penalty='mle'`,
`lam_r = sigma_{r-1}^2 / beta_{r-1}`, and Task 3 minimises the full negative
log joint `N(W, h, sigma, beta) = sum_i [log sigma + e_i^2 / (2 sigma^2) +
log beta + a_i / beta] + n log sqrt(pi/2)` over sigma, beta exactly; since
`N = n log(sigma beta) + J(W, h; sigma^2/beta) / sigma^2 + const`, tasks 1-2
lower N too: N never increases across outer iterations (tested). With
`penalty='fixed'`, `lam_r = lam` for all r and J itself never increases.

Line search (`step='line_search'`, RCBM-LS): the same algorithm with
backtracking instead of the step bounds: per-sample backtracking in the
h-step (each trial one convolution), and backtracking on `L_W` (on the exact
quadratic, from the last accepted `L_W / eta`). Both estimates are carried
from one update to the next, so after the first iterations few trials are
needed.

The paper's line search (`step='line_search_paper'`, RCBM-LS as the paper
ran it): the line search its "Stepsize assignment" paragraph rejects, which
"needs many additional convolutions": every FISTA iteration of the h-step
backtracks afresh from `L = ls_init_lipschitz` (`fista.fresh_lipschitz`),
and every W-update from `L_W = ls_init_lipschitz`. The iterates are those
of the warm-started line search up to the step sizes; only the number of
trials (convolutions) per update differs.

Samples are processed in chunks of B (`cbm_layout`; `lax.map` inside the
one jitted step): each chunk runs its own h-step to convergence, and G is a
sum over chunks, so the result does not depend on the chunk size (up to the
chunks' own inner-iteration counts). Data parallel: with a device mesh,
axis B is split over the devices (`mesh`); each device runs the h-step on
its samples (the inner loop's stopping test sums the objective over the
whole chunk, so every device runs the same iterations as one device would),
and XLA all-reduces G, B and the Task 3 sums.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh

from cyan_rcbm.common import precision
from cyan_rcbm.common import sharding
from cyan_rcbm.rcbm import cbm_filters
from cyan_rcbm.rcbm import cbm_layout
from cyan_rcbm.rcbm import fista
from cyan_rcbm.rcbm import ops

Array = jax.Array
STEP_RULES = ('fixed', 'line_search', 'line_search_paper')
LINE_SEARCHES = ('line_search', 'line_search_paper')
PENALTIES = ('fixed', 'mle')


@dataclasses.dataclass(frozen=True)
class SolverConfig:
  """Static settings of the CBM solver (hashable: a jit static argument).

  Attributes:
    step: 'fixed' (RCBM-FS, the bounds of the module docstring),
      'line_search' (RCBM-LS, backtracking from the last accepted step) or
      'line_search_paper' (backtracking from the initial step at every
      update, the paper's RCBM-LS).
    penalty: how `lam` of Eq. 6 is set: 'fixed' (`lam` throughout) or 'mle'
      (the paper: `sigma^2 / beta` of the previous iteration's Task 3, after
      `warmup_iters` iterations at `lam`). See "Penalty" in `cbm`.
    lam: the penalty weight `sigma^2 / beta` of 'fixed' and of the warm-up.
    warmup_iters: outer iterations at `lam` before 'mle' updates start.
    w_steps: accelerated projected W steps per outer iteration (the paper
      takes 1; see `cbm_filters.w_step`).
    alpha: step multiplier in (0, 1] for the fixed rule.
    inner_max_iters: cap on FISTA iterations per h-step (Alg. 2).
    inner_min_iters: FISTA iterations before the inner tolerance is tested.
    inner_tol: h-step stops when the summed objective changes by less than
      this, relative, in one FISTA iteration.
    form: operator form (`ops.FORMS` or 'auto').
    ls_eta: backtracking factor of the line search.
    ls_init_lipschitz: initial Lipschitz estimate of each h line search
      (and, for 'line_search_paper', of every h and W update).
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
    ops.resolve_form(self.form, 'conv')  # checks the name


class CBMParams(NamedTuple):
  """One learned CBM (Eq. 3): filters [K, D, Tw] and the MLE sigma, beta."""
  w: Array
  sigma: Array
  beta: Array


class CBMState(NamedTuple):
  """Everything an outer iteration carries (a pytree; checkpointed as is).

  Samples are stored time-major in C chunks of B samples, features padded
  to Dp (`cbm_layout`; zero rows never change the fit).

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


_PER_SAMPLE = ('h', 'xhat', 'sq_err', 'l1')  # CBMState fields over [C, B].


@precision.exact
def lipschitz_h(w_KxDxTw: Array) -> Array:
  """`L_h = ||M||_2^2`, `M[d, k] = ||W_{k,d,:}||_1` (module docstring)."""
  m_KxD = jnp.sum(jnp.abs(w_KxDxTw), axis=-1)
  return jnp.linalg.eigvalsh(m_KxD @ m_KxD.T)[-1]


@precision.exact
def lipschitz_w(l1_NxK: Array) -> Array:
  """`L_W = ||A||_2^2`, `A[i, k] = ||h_ik||_1` (module docstring)."""
  a = l1_NxK.reshape(-1, l1_NxK.shape[-1])
  return jnp.linalg.eigvalsh(a.T @ a)[-1]


def init_state(x_CxBxTxD: Array, w_KxDxTw: np.ndarray | Array,
               sigma: float = 1.0, beta: float = 1.0,
               mesh: Mesh | None = None) -> CBMState:
  """State before the first outer iteration: h = 0, given filters.

  With a mesh, the per-sample fields are split over it like x
  (`shard_state`).
  """
  c, b, t, dp = x_CxBxTxD.shape
  dtype = x_CxBxTxD.dtype
  k, d, tw = w_KxDxTw.shape
  w = jnp.pad(jnp.asarray(w_KxDxTw, dtype), ((0, 0), (0, dp - d), (0, 0)))
  h = jnp.zeros((c, b, t + tw - 1, k), dtype)
  state = CBMState(
      w=w, w_prev=w, w_t=jnp.ones((), dtype), lip_w=jnp.ones((), dtype),
      h=h, xhat=jnp.zeros_like(x_CxBxTxD),
      sq_err=jnp.sum(jnp.square(x_CxBxTxD), axis=(2, 3)),
      l1=jnp.zeros((c, b), dtype), sigma=jnp.asarray(sigma, dtype),
      beta=jnp.asarray(beta, dtype), objective=jnp.asarray(jnp.inf, dtype),
      iteration=jnp.zeros((), jnp.int32))
  return shard_state(state, mesh)


def shard_state(state: CBMState, mesh: Mesh | None) -> CBMState:
  """Per-sample fields split over the mesh on axis B, the rest replicated
  (identity without a mesh)."""
  if mesh is None:
    return state
  return CBMState(**{
      name: (sharding.shard(value, mesh, cbm_layout.SAMPLE_AXIS)
             if name in _PER_SAMPLE else sharding.replicate(value, mesh))
      for name, value in state._asdict().items()})


def solve_h(x_BxTxD: Array, w_KxDxTw: Array, h0_BxSxK: Array,
            xhat0_BxTxD: Array, lam: Array, cfg: SolverConfig
            ) -> fista.LassoResult:
  """Task 1 / Algorithm 2 on one chunk (time-major), warm-started at h0."""
  fwd, adj = ops.operator_pair(cfg.form)
  line_search = cfg.step in LINE_SEARCHES
  if line_search:
    step = 1.0 / jnp.asarray(cfg.ls_init_lipschitz, x_BxTxD.dtype)
  else:
    step = cfg.alpha / jnp.maximum(lipschitz_h(w_KxDxTw),
                                   jnp.finfo(x_BxTxD.dtype).tiny)
  return fista.nonneg_lasso(
      x_BxTxD, lambda h: fwd(w_KxDxTw, h), lambda r: adj(w_KxDxTw, r),
      h0_BxSxK, xhat0_BxTxD, lam, step, max_iters=cfg.inner_max_iters,
      tol=cfg.inner_tol, min_iters=cfg.inner_min_iters,
      line_search=line_search, eta=cfg.ls_eta,
      fresh_backtracking=cfg.step == 'line_search_paper')


@functools.partial(jax.jit, static_argnames=('num_samples', 'cfg', 'mesh'))
@precision.exact
def outer_step(state: CBMState, x_CxBxTxD: Array, *, num_samples: int,
               cfg: SolverConfig, mesh: Mesh | None = None
               ) -> tuple[CBMState, dict[str, Array]]:
  """One outer iteration of Algorithm 1 (Tasks 1-3) over all samples.

  Args:
    state: the carry (see `CBMState`).
    x_CxBxTxD: data in the solver layout (`cbm_layout.to_solver_layout`);
      padding samples are all-zero and contribute nothing.
    num_samples: the true number of samples n (for the MLE means).
    cfg: solver settings.
    mesh: the device mesh axis B of x and of the state is split over
      (`cyan_rcbm.common.sharding`), or None for one device.

  Returns:
    The new state and per-iteration scalars: `objective_start` and
    `objective` (Eq. 6 per sample, with this iteration's sigma, beta, before
    and after), `neg_log_joint` (per sample, after Task 3), `sigma`, `beta`,
    `lam`, `inner_iters` (mean over chunks), `w_accepted`, `lipschitz_w`.
  """
  dtype = x_CxBxTxD.dtype
  per_sample = functools.partial(sharding.constrain, mesh=mesh,
                                 axis=cbm_layout.SAMPLE_AXIS)
  lam = jnp.asarray(cfg.lam, dtype)
  if cfg.penalty == 'mle':
    lam = jnp.where(state.iteration < cfg.warmup_iters, lam,
                    jnp.square(state.sigma) / state.beta)
  objective_start = jnp.sum(0.5 * state.sq_err + lam * state.l1)

  # Task 1: h-step per chunk.
  def h_chunk(args):
    x_c, h_c, xh_c = args
    res = solve_h(x_c, state.w, h_c, xh_c, lam, cfg)
    return res.h, res.l1, res.num_iters

  h, l1, iters = lax.map(h_chunk, (x_CxBxTxD, state.h, state.xhat))
  h, l1 = per_sample(h), per_sample(l1)

  # Task 2: W step(s), then the model at the new filters.
  new, accept, lip = cbm_filters.w_step(state.w, state.w_prev, state.w_t,
                                        state.lip_w, x_CxBxTxD, h, cfg)
  fwd, _ = ops.operator_pair(cfg.form)

  def evaluate(args):
    x_c, h_c = args
    xh = fwd(new['w'], h_c)
    return xh, fista.per_sample_sq(x_c - xh)

  xhat, sq = lax.map(evaluate, (x_CxBxTxD, h))
  xhat, sq = per_sample(xhat), per_sample(sq)

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
  """`-sum_i log P(X_i, h_i)` of Eq. 3 (equations.md B3 per-sample densities).

  `sq_err`, `l1` may hold padding entries equal to 0; `num_samples` is the
  true n.
  """
  n = num_samples
  return (n * (jnp.log(sigma) + jnp.log(beta) - 0.5 * math.log(2 / math.pi))
          + jnp.sum(sq_err) / (2 * jnp.square(sigma)) + jnp.sum(l1) / beta)
