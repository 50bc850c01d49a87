"""Task 2 of Algorithm 1: the filter update of CBM (equations.md B4; Eqs. 7, 9).

`f1(W) = 1/2 sum_i ||X_i - W (x) h_i||^2` is a quadratic in W. Unfolding the
activation windows of sample i, `U_i[t, (j, k)] = h_ik[t + j]`, and writing
the filters as the matrix `Wm[(j, k), d] = W[k, d, Tw-1-j]`
(`filter_matrix`), `Xhat_i = U_i Wm`, so with

  `G = sum_i U_i^T U_i` [Tw*K, Tw*K] and `B = sum_i U_i^T X_i` [Tw*K, D]

(`window_gram`), `f1(W) = 1/2 tr(Wm^T G Wm) - tr(Wm^T B) + 1/2 sum_i
||X_i||^2`, `grad f1 = G Wm - B`, and the Lipschitz constant of the gradient
is exactly `L_W = lambda_max(G)` (the cheaper Parseval bound
`cbm_step.lipschitz_w` is 2-3x loose on trained models). G and B are sums
over samples: with the samples split over a device mesh, each device sums
its own and XLA all-reduces the [Tw*K, .] results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from jax import lax

from cyan_rcbm.rcbm import fista

if TYPE_CHECKING:
  from cyan_rcbm.rcbm.cbm_step import SolverConfig  # pylint: disable=g-bad-import-order

Array = jax.Array


def sum_over_chunks(fn, *xs):
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

  See the module docstring. Cost per outer iteration: `O(n T (K Tw)^2)` as
  dense matrix products.
  """
  t = x_CxBxTxD.shape[2]

  def one(x_c, h_c):
    idx = jnp.arange(t)[:, None] + jnp.arange(filter_length)[None, :]
    u = h_c[:, idx, :].reshape(-1, filter_length * h_c.shape[-1])
    return u.T @ u, u.T @ x_c.reshape(-1, x_c.shape[-1])

  return sum_over_chunks(one, x_CxBxTxD, h_CxBxSxK)


def w_step(w: Array, w_prev: Array, w_t: Array, lip_w: Array, x: Array,
           h: Array, cfg: SolverConfig
           ) -> tuple[dict[str, Array], Array, Array]:
  """Task 2: `cfg.w_steps` accelerated projected steps on all K filters.

  `W <- Pi(Y - grad f1(Y) / L)`, `Y = W^[r-1] + m_r (W^[r-1] - W^[r-2])`,
  `Pi` the projection onto `||W_k||_F <= 1` (Algorithm 1). The momentum
  sequence continues across outer iterations (Alg. 1's `(r-2)/(r+1)`, in
  FISTA's t-form) and restarts where f1 rises. The result is kept only if
  it does not increase f1 (else W is kept and the momentum restarts); f1 is
  evaluated exactly and for free through `window_gram`.

  Args:
    w, w_prev: filters [K, Dp, Tw] at outer iterations r - 1 and r - 2.
    w_t: FISTA momentum scalar; lip_w: last accepted `L_W` (line search).
    x: data [C, B, T, Dp]; h: activations [C, B, S, K] after Task 1.
    cfg: `step` ('fixed': `L = lambda_max(G) / alpha`; 'line_search':
      backtracking by `ls_eta` from the last accepted `L / ls_eta`;
      'line_search_paper': backtracking from `ls_init_lipschitz` at every
      step) and `w_steps`.

  Returns:
    (dict of the new `w`, `w_prev`, `w_t`, `lip_w`; accepted; the L used).
  """
  dtype = x.dtype
  tiny = jnp.finfo(dtype).tiny
  k = w.shape[0]
  g, b = window_gram(x, h, w.shape[-1])

  def q(wm):  # f1 - 1/2 sum ||X||^2
    return 0.5 * jnp.sum(wm * (g @ wm)) - jnp.sum(wm * b)

  def project(wm):
    tw = wm.shape[0] // k
    return fista.project_frobenius_ball(
        wm.reshape(tw, k, -1), axes=(0, 2)).reshape(wm.shape)

  lip_exact = jnp.maximum(jnp.linalg.eigvalsh(g)[-1], tiny)
  line_search = cfg.step in ('line_search', 'line_search_paper')
  fresh = cfg.step == 'line_search_paper'

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

      start = (jnp.asarray(cfg.ls_init_lipschitz, dtype) if fresh
               else jnp.maximum(lip / cfg.ls_eta, tiny))
      lip = lax.while_loop(lambda l: violated(l) & (l < 1e30),
                           lambda l: l * cfg.ls_eta, start)
    else:
      lip = lip_exact / cfg.alpha
    new = project(y - grad / lip)
    rose = q(new) > q(wm)
    return (new, wm, jnp.where(rose, jnp.ones_like(t_next), t_next), lip), None

  wm0 = filter_matrix(w)
  (wm, wm_prev, t, lip), _ = lax.scan(
      step, (wm0, filter_matrix(w_prev), w_t, lip_w), None,
      length=cfg.w_steps)
  accept = q(wm) <= q(wm0)
  new = dict(w=jnp.where(accept, filter_tensor(wm, k), w),
             w_prev=jnp.where(accept, filter_tensor(wm_prev, k), w),
             w_t=jnp.where(accept, t, jnp.ones_like(t)), lip_w=lip)
  return new, accept, lip
