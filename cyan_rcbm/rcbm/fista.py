"""Proximal pieces and a batched, monotone FISTA for non-negative lasso.

Used by CBM's h-step (Algorithm 2) and by the sparse-coding baseline, which
solves the same problem with a different linear map. The problem, one per
sample `i` (samples are independent and solved together, batched on axis 0):

  `min_{h_i >= 0}  F_i(h_i) = 1/2 ||x_i - A h_i||^2 + lam sum(h_i)`,

with `A` given as a pair of batched functions `forward(h) -> xhat` and
`adjoint(r) -> g` (`<A h, r> = <h, A^T r>`). For CBM, `A h = sum_k W_k (x) h_k`
(Eq. 2), `A^T r = W (.) r` (Eq. 8) and `lam = sigma^2 / beta` (Eq. 6).

The iteration is FISTA (Beck & Teboulle 2009) with the non-negative soft
threshold `S+_{lam t}(v) = max(v - lam t, 0)` as proximal map, made *monotone*
per sample: where the objective of a sample rises, its momentum restarts
(O'Donoghue & Candes 2015, function-value restart), and at the end a sample
whose objective is above its warm start's keeps the warm start, so
`F_i(h_out) <= F_i(h0)` for every sample and every step size. `forward` is
applied once per iteration (to the new iterate); `A y` at the extrapolated
point follows by linearity, so an iteration costs one `forward` and one
`adjoint`, as in plain FISTA, and the per-sample objective comes for free.

Step sizes: fixed (`step <= 1 / ||A||_2^2` for the accelerated guarantee), or
backtracking line search per sample (`line_search=True`): the local Lipschitz
estimate `L_i` starts at `1 / step` and is multiplied by `eta` until the
sufficient-decrease condition `f(z) <= f(y) + <g, z - y> + L_i/2 ||z - y||^2`
holds (each trial costs one `forward`). The estimate carries over from one
iteration to the next (it only grows), so later iterations rarely
backtrack. With `fresh_backtracking=True` every iteration starts again from
`1 / step` (`fresh_lipschitz`): the line search as the paper's "Stepsize
assignment" paragraph rejects it, many extra `forward`s per iteration.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array


def soft_threshold_nonneg(v: Array, threshold: Array | float) -> Array:
  """`S+_lambda(v) = max(v - lambda, 0)`: the prox of `lambda ||h||_1 + [h>=0]`.

  (Algorithm 2; `threshold` broadcasts against `v`.)
  """
  return jnp.maximum(v - threshold, 0)


def project_frobenius_ball(w: Array, radius: float = 1.0,
                           axes: tuple[int, ...] = (-2, -1)) -> Array:
  """`Pi(w)`: projects each block onto `{||w||_F <= radius}` (Algorithm 1).

  Blocks are the sub-arrays over `axes` (by default the last two: a filter
  `W_k in R^{D x Tw}` of a stack `[K, D, Tw]`). Blocks already inside the
  ball are unchanged.
  """
  norm = jnp.sqrt(jnp.sum(jnp.square(w), axis=axes, keepdims=True))
  scale = jnp.minimum(1.0, radius / jnp.maximum(norm, jnp.finfo(w.dtype).tiny))
  return w * scale


def fresh_lipschitz(carried: Array, initial: Array, fresh: bool) -> Array:
  """The Lipschitz estimate an iteration's backtracking starts from: the
  carried one (warm-started line search), or `initial` again (`fresh`: the
  line search that backtracks from the initial step at every update)."""
  return initial if fresh else carried


def _per_sample(fn, a):
  return fn(a.reshape(a.shape[0], -1), axis=1)


def per_sample_sum(a: Array) -> Array:
  """Sum over all axes but the first: [N, ...] -> [N]."""
  return _per_sample(jnp.sum, a)


def per_sample_sq(a: Array) -> Array:
  """Squared Frobenius norm per sample: [N, ...] -> [N]."""
  return per_sample_sum(jnp.square(a))


def _bc(v_N: Array, like: Array) -> Array:
  """[N] -> [N, 1, ..., 1] broadcastable against `like`."""
  return v_N.reshape(v_N.shape + (1,) * (like.ndim - 1))


class LassoResult(NamedTuple):
  """Result of `nonneg_lasso` (all batched over samples on axis 0).

  Attributes:
    h: solution, `>= 0`.
    xhat: `forward(h)`.
    sq_err: `||x - forward(h)||^2` per sample, [N].
    l1: `sum(h)` per sample, [N] (`= ||h||_1` since h >= 0).
    num_iters: iterations run (int32 scalar).
    rel_change: last relative change of the summed objective.
  """
  h: Array
  xhat: Array
  sq_err: Array
  l1: Array
  num_iters: Array
  rel_change: Array


class _Carry(NamedTuple):
  """Loop state. It keeps the previous iterate, not the difference
  `h^[r] - h^[r-1]`: XLA computed such a difference in a fusion of its own
  that derived the prox a second time."""
  it: Array
  h: Array       # h^[r]
  h_prev: Array  # h^[r-1]
  xh: Array      # forward(h^[r])
  xh_prev: Array  # forward(h^[r-1])
  sq: Array      # ||x - A h||^2 per sample
  obj: Array     # F_i(h) per sample
  t: Array       # FISTA momentum sequence, per sample
  lip: Array     # per-sample Lipschitz estimate (line search) or 1/step
  rel: Array


def nonneg_lasso(x: Array, forward: Callable[[Array], Array],
                 adjoint: Callable[[Array], Array], h0: Array, xhat0: Array,
                 lam: Array | float, step: Array | float, *, max_iters: int,
                 tol: float = 1e-4, min_iters: int = 1,
                 line_search: bool = False, eta: float = 2.0,
                 max_backtracks: int = 40,
                 fresh_backtracking: bool = False) -> LassoResult:
  """Solves the batched non-negative lasso of the module docstring.

  Args:
    x: data [N, ...].
    forward: h [N, ...] -> xhat (same shape as x), linear.
    adjoint: r (shape of x) -> shape of h, the adjoint of `forward`.
    h0: warm start, `>= 0`.
    xhat0: `forward(h0)` (passed in so that warm starts cost nothing).
    lam: penalty weight (scalar or [N]).
    step: fixed step `t` (use `alpha / L`, `L >= ||A||_2^2`, `alpha <= 1`),
      or the initial trial step of the line search.
    max_iters: iteration cap.
    tol: stop when the summed objective changes by less than `tol` relative
      to itself in one iteration (after `min_iters`).
    min_iters: iterations to run before testing `tol`.
    line_search: backtracking per sample instead of the fixed step.
    eta: backtracking factor (> 1).
    max_backtracks: cap on trials per iteration.
    fresh_backtracking: with `line_search`, every iteration backtracks from
      `1 / step` instead of the last accepted estimate (`fresh_lipschitz`).

  Returns:
    A `LassoResult` with `F_i(h) <= F_i(h0)` for every sample.
  """
  dtype = x.dtype
  n = x.shape[0]
  tiny = jnp.finfo(dtype).tiny
  lam_n = jnp.broadcast_to(jnp.asarray(lam, dtype), (n,))
  lip0 = jnp.broadcast_to(1.0 / jnp.asarray(step, dtype), (n,))

  def prox_point(y, g, lip):
    inv = _bc(1.0 / lip, y)
    return soft_threshold_nonneg(y - inv * g, inv * _bc(lam_n, y))

  def body(c: _Carry) -> _Carry:
    t_next = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * c.t * c.t))
    mom = (c.t - 1.0) / t_next
    y = c.h + _bc(mom, c.h) * (c.h - c.h_prev)
    r_y = x - (c.xh + _bc(mom, x) * (c.xh - c.xh_prev))
    g = -adjoint(r_y)                       # grad of 1/2||x - A y||^2 at y.
    lip = fresh_lipschitz(c.lip, lip0, fresh_backtracking and line_search)
    z = prox_point(y, g, lip)
    xz = forward(z)
    sq_z = per_sample_sq(x - xz)
    if line_search:
      f_y = 0.5 * per_sample_sq(r_y)

      def violated(z, sq_z, lip):
        d = z - y
        model = (f_y + per_sample_sum(g * d) + 0.5 * lip * per_sample_sq(d))
        return 0.5 * sq_z > model + 1e-6 * jnp.abs(f_y) + tiny

      def bt_cond(s):
        k, z, xz, sq_z, lip = s
        return (k < max_backtracks) & jnp.any(violated(z, sq_z, lip))

      def bt_body(s):
        k, z, xz, sq_z, lip = s
        bad = violated(z, sq_z, lip)
        lip = jnp.where(bad, lip * eta, lip)
        z_new = prox_point(y, g, lip)
        xz_new = forward(z_new)
        z = jnp.where(_bc(bad, z), z_new, z)
        xz = jnp.where(_bc(bad, xz), xz_new, xz)
        sq_z = jnp.where(bad, per_sample_sq(x - xz_new), sq_z)
        return k + 1, z, xz, sq_z, lip

      _, z, xz, sq_z, lip = lax.while_loop(
          bt_cond, bt_body, (jnp.int32(0), z, xz, sq_z, lip))

    obj_z = 0.5 * sq_z + lam_n * per_sample_sum(z)
    # Function-value restart: where the objective rose, momentum restarts.
    t = jnp.where(obj_z > c.obj, jnp.ones_like(t_next), t_next)
    total, total_z = jnp.sum(c.obj), jnp.sum(obj_z)
    rel = jnp.abs(total - total_z) / jnp.maximum(jnp.abs(total_z), tiny)
    return _Carry(c.it + 1, z, c.h, xz, c.xh, sq_z, obj_z, t, lip, rel)

  def cond(c: _Carry):
    return (c.it < max_iters) & ((c.it < min_iters) | (c.rel >= tol))

  sq0 = per_sample_sq(x - xhat0)
  obj0 = 0.5 * sq0 + lam_n * per_sample_sum(h0)
  init = _Carry(jnp.int32(0), h0, h0, xhat0, xhat0, sq0, obj0,
                jnp.ones((n,), dtype), lip0, jnp.asarray(jnp.inf, dtype))
  c = lax.while_loop(cond, body, init)
  # Safeguard: a sample whose objective rose keeps its warm start.
  keep = c.obj <= obj0
  h = jnp.where(_bc(keep, h0), c.h, h0)
  xh = jnp.where(_bc(keep, xhat0), c.xh, xhat0)
  sq = jnp.where(keep, c.sq, sq0)
  return LassoResult(h, xh, sq, per_sample_sum(h), c.it, c.rel)
