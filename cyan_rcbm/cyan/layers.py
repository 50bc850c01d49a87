"""Building blocks of the CYAN-RNN scans (`cyan_rcbm.cyan.model`).

GRU weights with fused gates, the GRU update along any gate axis, and the
window helpers of the decoder: reductions by halving (fast on XLA:CPU),
the softmax over window slots, the decoder's scan segments and the
conversion of static-window alignments to the sliding layout.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx


def orthogonal_blocks(key, rows: int, cols: int, blocks: int) -> jax.Array:
  """`[rows, blocks*cols]` of independent orthogonal blocks (one per gate)."""
  init = nnx.initializers.orthogonal()
  keys = jax.random.split(key, blocks)
  return jnp.concatenate([init(k, (rows, cols)) for k in keys], axis=1)


class GRUWeights(nnx.Module):
  """A GRU with fused gates `[r, z, n]` (reset applied after the matmul).

  `project` (`x W + b`) and `step` (one `[B, H] x [H, 3H]` matmul) are the
  batch-major single-event form, used by `event_step`; the model's scans
  use the transposed weights feature-major (`gru_update(..., axis=0)`).
  """

  def __init__(self, in_dim: int, hidden: int, *, rngs: nnx.Rngs):
    self.hidden = hidden
    self.w_in = nnx.Param(nnx.initializers.lecun_normal()(
        rngs.params(), (in_dim, 3 * hidden)))
    self.b_in = nnx.Param(jnp.zeros((3 * hidden,)))
    self.w_rec = nnx.Param(orthogonal_blocks(rngs.params(), hidden, hidden, 3))
    self.b_rec_n = nnx.Param(jnp.zeros((hidden,)))

  def project(self, x: jax.Array) -> jax.Array:
    return x @ self.w_in[...] + self.b_in[...]

  def step(self, gates_in: jax.Array, state: jax.Array) -> jax.Array:
    hh = state @ self.w_rec[...]
    return gru_update(gates_in, hh, self.b_rec_n[...], state)


def gru_update(gates_in, hh, b_rec_n, state, axis: int = -1):
  """GRU update from gate pre-activations `[r, z, n]` stacked along `axis`.

  `b_rec_n` must broadcast against one gate block (shape `[H]` for the last
  axis, `[H, 1, ...]` for a leading one).
  """
  h = state.shape[axis]
  gate = functools.partial(jax.lax.slice_in_dim, axis=axis % state.ndim)
  rz = jax.nn.sigmoid(gate(gates_in, 0, 2 * h) + gate(hh, 0, 2 * h))
  r, z = gate(rz, 0, h), gate(rz, h, 2 * h)
  n = jnp.tanh(gate(gates_in, 2 * h, 3 * h) +
               r * (gate(hh, 2 * h, 3 * h) + b_rec_n))
  return n + z * (state - n)


def tree_reduce(x: jax.Array, axis: int, op=jnp.add,
                identity: float = 0.0) -> jax.Array:
  """Reduces `axis` of `x` by halving it with `op` (log2 steps).

  On CPU, XLA emits a reduction over a non-minor axis as a scalar loop;
  halving with elementwise ops vectorises along the minor (batch) axis and
  is 5-15x faster here for the window sums of the decoder (and their
  gradients).
  """
  while x.shape[axis] > 1:
    m = x.shape[axis]
    half = (m + 1) // 2
    lo = jax.lax.slice_in_dim(x, 0, half, axis=axis)
    hi = jax.lax.slice_in_dim(x, half, m, axis=axis)
    if m % 2:
      pad = [(0, 0)] * x.ndim
      pad[axis] = (0, 1)
      hi = jnp.pad(hi, pad, constant_values=identity)
    x = op(lo, hi)
  return jnp.squeeze(x, axis)


def softmax_over_slots(e_LxB: jax.Array) -> jax.Array:
  """Softmax over axis 0 with `tree_reduce` (masked slots are -inf)."""
  e_LxB = e_LxB - jax.lax.stop_gradient(
      tree_reduce(e_LxB, 0, jnp.maximum, -jnp.inf))
  p = jnp.exp(e_LxB)
  return p / tree_reduce(p, 0)


def decoder_segments(n: int, win: int, count: int
                     ) -> list[tuple[int, int, int, bool]]:
  """`(first step, end step, window slots, sliding)` of the decoder scans.

  Steps k < win can only attend to events 0..k, so they run over static
  windows of the first w events (w = win/4, win/2, win with count = 3): the
  slots they skip would all be masked. Steps k >= win (only when the
  cascade is longer than the window) slide a window of win slots. Results
  are identical for every count (tested); fewer slots, less work.
  """
  bounds = []
  if count >= 3 and win >= 8:
    bounds.append(win // 4)
  if count >= 2 and win >= 4:
    bounds.append(win // 2)
  bounds.append(win)
  segments, lo = [], 0
  for hi in bounds:
    if lo < hi <= n:
      segments.append((lo, hi, hi, False))
      lo = hi
  if lo < n:
    segments.append((lo, n, win, True))
  return segments


def to_sliding_layout(alpha_SxBxW: jax.Array, first_step: int,
                      win: int) -> jax.Array:
  """Static-window alignments (slot j = event j) of steps first_step.. to
  the sliding layout `[steps, B, win]` (slot j = event k - win + 1 + j)."""
  steps, _, w = alpha_SxBxW.shape
  k = first_step + jnp.arange(steps)[:, None]
  event = k - win + 1 + jnp.arange(win)[None, :]            # [steps, win]
  inside = (event >= 0) & (event < w)
  gathered = jnp.take_along_axis(
      alpha_SxBxW, jnp.clip(event, 0, w - 1)[:, None, :], axis=2)
  return jnp.where(inside[:, None, :], gathered, 0.0)
