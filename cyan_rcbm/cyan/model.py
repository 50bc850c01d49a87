"""CYAN-RNN, CYAN-RNN(cov) and RMTPP as one Flax NNX module (equations.md A3,
A4).

B = batch, N = events (padded), U = users, X = input features, H = encoder
hidden, D = decoder hidden, A = attention size, C = coverage size,
L = window (length of dependence `l`, capped at N).

* inputs (A3): `x_k = [E[u_k]; log(d_k + eps); calendar embeddings]`.
* encoder: `h_k = GRU_enc(x_k, h_{k-1})`, one `jax.lax.scan`.
* decoder (Eqs. 1, 3-7), a second scan, for the attention variants: at step
  k the window holds events `k-L+1 .. k`; `e_{k,i} = v^T tanh(W_a T_{k-1} +
  U_a h_i [+ Z_a V_{k,i}])`, `alpha_k = softmax(e_k)` over the window,
  `s_k = sum_i alpha_{k,i} h_i`, `T_k = GRU_dec([x_k; s_k], T_{k-1})`; with
  coverage, `V_{k,i} = RNN_cov([alpha_{k-1,i}; T_{k-1}; h_i], V_{k-1,i})`
  first (footnote 1: the energies use `V_k`). The window is a fixed-size
  carry `[B, L, .]` shifted by one event per step, so memory and work per
  step are O(B L), never O(B N^2).
* heads, applied to all steps at once after the scans: next user
  `softmax(g([x_k; T_k; s_k]))` (`g(h_k)` for RMTPP), users already active
  in the cascade masked out (option); next gap (Eq. 2) with log base
  intensity `b_k = w_T.T_k + w_h.h_k + w_x.x_k + b` (`h_k` -> `s_k` by
  option; `w_h.h_k + b` for RMTPP) and slope `w = softplus(.) > 0`, see
  `cyan_rcbm.cyan.tpp`.

Position k of every output predicts event k+1; the last position has no
target. The module is a pure function of (params, arrays): train and eval
steps call it through plain `jax.jit` (`nnx.split` / `nnx.merge`).
"""

from __future__ import annotations

import functools
import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from cyan_rcbm import errors
from cyan_rcbm.common import backend_defaults
from cyan_rcbm.common import precision
from cyan_rcbm.cyan import layers
from cyan_rcbm.cyan import metrics
from cyan_rcbm.cyan import prior as prior_lib
from cyan_rcbm.cyan import tpp
from cyan_rcbm.data import batching

VARIANTS = ('cyan', 'cyan_cov', 'rmtpp')
# A masked user's logit: finite, so that a row where every user is masked
# (only possible on padding) stays finite instead of NaN.
_MASKED = -1e9


class Outputs(NamedTuple):
  """What the model predicts at every position k (for event k+1)."""
  log_probs: jax.Array        # [B, N, U] log p(u_{k+1} = u | H_k)
  b: jax.Array                # [B, N] log base intensity of the next gap
  w: jax.Array                # [] slope of the log intensity, > 0
  alpha: jax.Array | None     # [B, N, L] alignments over events k-L+1..k


class CyanRNN(nnx.Module):
  """CYAN-RNN (`cyan`), CYAN-RNN(cov) (`cyan_cov`) or RMTPP (`rmtpp`)."""

  def __init__(self, num_users: int, *, variant: str = 'cyan_cov',
               embed_dim: int = 16, encoder_hidden: int = 32,
               decoder_hidden: int = 32, attention_size: int = 16,
               coverage_size: int = 10, coverage_cell: str = 'gru',
               dependence_length: int = 200, head_hidden: int = 0,
               time_context: str = 'h', calendar_embed: int = 0,
               mask_active: bool = True, log_gap_eps: float = 1e-4,
               time_w_init: float = 0.1, time_b_init: float = 0.0,
               unroll: int = 1, window_segments: int = 3,
               remat: bool | None = None, transition_prior: bool = False,
               prior_top_m: int = 64, prior_window: int = 16,
               prior_decay: float = 0.8, prior_reach: int = 1,
               popularity_bias: bool = False,
               rngs: nnx.Rngs):
    if variant not in VARIANTS:
      raise errors.ConfigError(
          f'model.variant is {variant!r}; expected one of {VARIANTS}.')
    if coverage_cell not in ('gru', 'tanh'):
      raise errors.ConfigError(
          f"model.coverage_cell is {coverage_cell!r}; expected 'gru' or 'tanh'.")
    if time_context not in ('h', 's'):
      raise errors.ConfigError(
          f"model.time_context is {time_context!r}; expected 'h' or 's'.")
    for name, value in [('embed_dim', embed_dim),
                        ('encoder_hidden', encoder_hidden),
                        ('decoder_hidden', decoder_hidden),
                        ('attention_size', attention_size),
                        ('coverage_size', coverage_size),
                        ('dependence_length', dependence_length),
                        ('unroll', unroll),
                        ('window_segments', window_segments),
                        ('prior_top_m', prior_top_m),
                        ('prior_window', prior_window),
                        ('prior_reach', prior_reach)]:
      if value < 1:
        raise errors.ConfigError(f'model.{name} must be >= 1; got {value}.')
    if num_users < 1:
      raise errors.ConfigError(f'the data has {num_users} users.')
    if not 0.0 < prior_decay <= 1.0:
      raise errors.ConfigError(
          f'model.prior_decay must be in (0, 1]; got {prior_decay}.')
    self.variant = variant
    self.num_users = num_users
    self.dependence_length = dependence_length
    self.coverage_cell = coverage_cell
    self.time_context = time_context
    self.mask_active = mask_active
    self.log_gap_eps = log_gap_eps
    self.unroll = unroll
    self.window_segments = window_segments
    # Recomputing the decoder step in the backward pass beats storing its
    # per-step window residuals for the coverage variant, not for plain
    # attention (timings: docs/performance.md).
    self.remat = backend_defaults.remat(variant, remat)
    self.calendar_embed = calendar_embed
    self.transition_prior = transition_prior
    self.prior_window = prior_window
    self.prior_decay = prior_decay
    self.prior_reach = prior_reach
    if prior_reach > prior_window:
      raise errors.ConfigError(
          f'model.prior_reach ({prior_reach}) must be <= model.prior_window '
          f'({prior_window}).')
    h, d, a, c = encoder_hidden, decoder_hidden, attention_size, coverage_size
    dense = nnx.initializers.lecun_normal()

    self.user_embed = nnx.Embed(num_users, embed_dim, rngs=rngs)
    x_dim = embed_dim + 1
    if calendar_embed:
      self.calendar_offsets = tuple(
          int(o) for o in np.cumsum((0,) + batching.CALENDAR_SIZES[:-1]))
      self.calendar_table = nnx.Embed(sum(batching.CALENDAR_SIZES),
                                      calendar_embed, rngs=rngs)
      x_dim += calendar_embed * len(batching.CALENDAR_SIZES)
    self.encoder = layers.GRUWeights(x_dim, h, rngs=rngs)

    attend = variant != 'rmtpp'
    if attend:
      self.att_u = nnx.Param(dense(rngs.params(), (h, a)))      # U_a
      self.att_w = nnx.Param(dense(rngs.params(), (d, a)))      # W_a
      self.att_b = nnx.Param(jnp.zeros((a,)))
      self.att_v = nnx.Param(dense(rngs.params(), (a, 1))[:, 0])  # v
      # decoder GRU input [x_k; s_k]: x part hoisted, s part per step.
      self.decoder = layers.GRUWeights(x_dim, d, rngs=rngs)
      self.dec_s = nnx.Param(dense(rngs.params(), (h, 3 * d)))
      if variant == 'cyan_cov':
        gates = 3 if coverage_cell == 'gru' else 1
        self.cov_h = nnx.Param(dense(rngs.params(), (h, gates * c)))
        self.cov_t = nnx.Param(dense(rngs.params(), (d, gates * c)))
        self.cov_alpha = nnx.Param(dense(rngs.params(), (1, gates * c))[0])
        self.cov_b = nnx.Param(jnp.zeros((gates * c,)))
        self.cov_rec = nnx.Param(layers.orthogonal_blocks(rngs.params(), c, c,
                                                    gates))
        self.cov_rec_b = nnx.Param(jnp.zeros((c,)))
        self.att_z = nnx.Param(dense(rngs.params(), (c, a)))   # Z_a
      feat = x_dim + d + h
    else:
      feat = h
    # With counts-based output statistics (prior.install) the user layer
    # starts at 0, so the initial user law is the counts' and training
    # learns what they miss.
    out_init = (nnx.initializers.zeros if popularity_bias or transition_prior
                else nnx.nn.linear.default_kernel_init)
    if head_hidden:
      self.head = nnx.Sequential(
          nnx.Linear(feat, head_hidden, rngs=rngs), jnp.tanh,
          nnx.Linear(head_hidden, num_users, kernel_init=out_init, rngs=rngs))
    else:
      self.head = nnx.Linear(feat, num_users, kernel_init=out_init, rngs=rngs)
    if transition_prior:  # fixed statistics, filled by prior.install
      table = lambda: nnx.Param(jnp.zeros((num_users, prior_top_m)))
      self.prior_users, self.prior_counts = table(), table()
      self.prior_near_users, self.prior_near_counts = table(), table()
      self.prior_graph_users, self.prior_graph_counts = table(), table()
      self.prior_log_share = nnx.Param(jnp.zeros((num_users,)))
      # learned weights of the four features: direct successors, successors
      # within prior_reach events, graph, popularity
      self.prior_weights = nnx.Param(jnp.asarray([1.0, 1.0, 1.0, 0.0]))
    # Time head (Eq. 2): b_k = w_T.T_k + w_h.h_k + w_x.x_k + b.
    time_in = (d + h + x_dim) if attend else h
    self.time_w_in = nnx.Param(jnp.zeros((time_in,)))
    self.time_b = nnx.Param(jnp.asarray(time_b_init, jnp.float32))
    # softplus^{-1}(w_init), so that w = softplus(raw) starts at w_init.
    self.time_w_raw = nnx.Param(jnp.log(jnp.expm1(
        jnp.asarray(time_w_init, jnp.float32))))

  # -- pieces ---------------------------------------------------------------

  def inputs(self, users_BxN, gaps_BxN, calendar_BxNxF=None) -> jax.Array:
    """`x_BxNxX = [E[u]; log(gap + eps) (0 for k = 1); calendar]` (equations.md A3)."""
    log_gap = jnp.log(gaps_BxN + self.log_gap_eps)
    log_gap = log_gap.at[:, 0].set(0.0)
    parts = [self.user_embed(users_BxN), log_gap[..., None]]
    if self.calendar_embed:
      if calendar_BxNxF is None:
        raise errors.ConfigError(
            'the model was built with calendar features but the batch has '
            'none (the data has no timestamps).')
      emb = self.calendar_table(calendar_BxNxF + jnp.asarray(
          self.calendar_offsets, jnp.int32))
      parts.append(emb.reshape(emb.shape[:2] + (-1,)))
    return jnp.concatenate(parts, axis=-1)

  def encode(self, x_NxXxB: jax.Array) -> jax.Array:
    """GRU encoder as one scan over `x_NxXxB`; returns `h_NxBxH`.

    The scan runs feature-major (`h`: `[H, B]`, gates `[3H, B]`) so that
    gate slices are whole rows and the elementwise update vectorises along
    the batch. The input projection `W_in^T x_k` is done inside the step:
    XLA:CPU fuses the scan's per-step slice of a precomputed `[N, 3H, B]`
    into the elementwise update and then does not vectorise it (~3x slower
    here), while a matmul reading the `[X, B]` slice is cheap.
    """
    h0_HxB = jnp.zeros((self.encoder.hidden, x_NxXxB.shape[2]), x_NxXxB.dtype)
    w_in_T = self.encoder.w_in[...].T
    b_in = self.encoder.b_in[...][:, None]
    w_rec_T = self.encoder.w_rec[...].T
    b_rec_n = self.encoder.b_rec_n[...][:, None]

    def step(h_HxB, x_XxB):
      gates = w_in_T @ x_XxB + b_in
      h_HxB = layers.gru_update(gates, w_rec_T @ h_HxB, b_rec_n, h_HxB,
                                axis=0)
      return h_HxB, h_HxB

    _, h_NxHxB = jax.lax.scan(step, h0_HxB, x_NxXxB, unroll=self.unroll)
    return jnp.swapaxes(h_NxHxB, 1, 2)

  def decode(self, x_NxXxB: jax.Array, h_NxBxH: jax.Array,
             return_alignments: bool = False):
    """The attention decoder scan (Eqs. 1, 3-7).

    Layout: inside the scan every array is feature-major and batch-minor
    (`T`: `[D, B]`, window arrays `[features, L, B]`), so that elementwise
    work over a window vectorises along the batch and every matmul is 2-D;
    the decoder's input projection is done in the step (see `encode`).
    The per-event projections `P_i = [U_a h_i | h_i (| W_h h_i + b)]` are
    computed for all events at once, outside the scan.

    Steps k < L (all steps when N <= L) see events 0..k: their window is
    the static slice `P[:, :w]` (slot j = event j, future events masked, a
    future event's coverage held at 0), so nothing is copied per step.
    Steps k >= L slide: the window (slot j = event k-L+1+j) is sliced out of
    `P` and the coverage state shifts by one slot. Only `T` and, with
    coverage, `V` (`[C, L, B]`) and the previous alignments (`[L, B]`) are
    carried.

    Returns:
      `(T_NxBxD, s_NxBxH, alpha_NxBxL or None)`; alignments in the sliding
      layout (slot j = event k-L+1+j) for every step.
    """
    n, b, hdim = h_NxBxH.shape
    win = min(self.dependence_length, n)
    d = self.decoder.hidden
    cov = self.variant == 'cyan_cov'
    dtype = h_NxBxH.dtype
    dec_in_T = self.decoder.w_in[...].T
    dec_in_b = self.decoder.b_in[...][:, None]
    mats = [self.att_u[...], jnp.eye(hdim, dtype=dtype)]
    a = mats[0].shape[-1]
    if cov:
      mats.append(self.cov_h[...])
      cov_alpha = self.cov_alpha[...][:, None, None]
      cov_rec_T, cov_rec_b, att_z_T = (self.cov_rec[...].T,
                                       self.cov_rec_b[...][:, None, None],
                                       self.att_z[...].T)
      c = cov_rec_T.shape[1]
    proj_PxNxB = jnp.einsum('nbh,hp->pnb', h_NxBxH,
                            jnp.concatenate(mats, axis=1))
    if cov:
      proj_PxNxB = proj_PxNxB.at[a + hdim:].add(self.cov_b[...][:, None, None])
    att_b, att_v = self.att_b[...][:, None], self.att_v[...][:, None, None]
    dec_s_T, dec_rec_b = self.dec_s[...].T, self.decoder.b_rec_n[...][:, None]
    # One matmul per step for T_{k-1}: [W_a | W_dec_rec (| W_cov_T)]^T T.
    t_mat = [self.att_w[...], self.decoder.w_rec[...]]
    if cov:
      t_mat.append(self.cov_t[...])
    t_mat_T = jnp.concatenate(t_mat, axis=1).T

    def step(w, sliding, carry, xs):
      """Decoder step k over a window of w slots."""
      k, t_prev = xs['k'], carry['t']
      if sliding:  # slot j = event k - w + 1 + j: all slots hold events
        proj_win = jax.lax.dynamic_slice_in_dim(proj_PxNxB, k - w + 1, w, 1)
      else:        # slot j = event j: events after k are masked
        proj_win = proj_PxNxB[:, :w]
        valid_L = jnp.arange(w, dtype=jnp.int32) <= k
      uh_win, h_win = proj_win[:a], proj_win[a:a + hdim]
      tt = t_mat_T @ t_prev
      pre_AxLxB = uh_win + (tt[:a] + att_b)[:, None]
      new = {}
      if cov:
        alpha_prev, v_prev = carry['alpha'], carry['v']
        if sliding:  # shift by one slot; the new event's entries start at 0
          alpha_prev = jnp.pad(alpha_prev[1:], ((0, 1), (0, 0)))
          v_prev = jnp.pad(v_prev[:, 1:], ((0, 0), (0, 1), (0, 0)))
        cov_in = (proj_win[a + hdim:] + tt[a + 3 * d:, None] +
                  alpha_prev * cov_alpha)
        rec = (cov_rec_T @ v_prev.reshape(c, w * b)).reshape(-1, w, b)
        if self.coverage_cell == 'gru':
          v_win = layers.gru_update(cov_in, rec, cov_rec_b, v_prev, axis=0)
        else:
          v_win = jnp.tanh(cov_in + rec + cov_rec_b)
        if not sliding:  # future events keep V = 0 until they occur
          v_win = jnp.where(valid_L[:, None], v_win, 0.0)
        pre_AxLxB = pre_AxLxB + (att_z_T @ v_win.reshape(c, w * b)
                                 ).reshape(a, w, b)
        new['v'] = v_win
      # v^T tanh(.) and sum_i alpha_i h_i as multiply-and-reduce.
      e_LxB = layers.tree_reduce(jnp.tanh(pre_AxLxB) * att_v, 0)
      if not sliding:
        e_LxB = jnp.where(valid_L[:, None], e_LxB, -jnp.inf)
      alpha_LxB = layers.softmax_over_slots(e_LxB)
      s_HxB = layers.tree_reduce(alpha_LxB * h_win, 1)
      gates = dec_in_T @ xs['x'] + dec_in_b + dec_s_T @ s_HxB
      t_new = layers.gru_update(gates, tt[a:a + 3 * d], dec_rec_b, t_prev,
                                axis=0)
      new['t'] = t_new
      if cov:
        new['alpha'] = alpha_LxB
      return new, (t_new, s_HxB, alpha_LxB.T if return_alignments else None)

    xs = dict(x=x_NxXxB, k=jnp.arange(n, dtype=jnp.int32))
    carry = dict(t=jnp.zeros((d, b), dtype))
    if cov:
      carry['v'] = jnp.zeros((c, 0, b), dtype)
      carry['alpha'] = jnp.zeros((0, b), dtype)
    outs = []
    segments = layers.decoder_segments(n, win, self.window_segments)
    for lo, hi, w, sliding in segments:
      if cov:  # static windows grow at the end (slots of future events)
        grow = w - carry['alpha'].shape[0]
        carry['v'] = jnp.pad(carry['v'], ((0, 0), (0, grow), (0, 0)))
        carry['alpha'] = jnp.pad(carry['alpha'], ((0, grow), (0, 0)))
      body = functools.partial(step, w, sliding)
      if self.remat:  # keep only the carries per step; recompute the rest
        body = jax.checkpoint(body, prevent_cse=False)
      carry, out = jax.lax.scan(
          body, carry,
          jax.tree.map(lambda v, lo=lo, hi=hi: v[lo:hi], xs),
          unroll=self.unroll)
      if return_alignments and not sliding:
        out = out[:2] + (layers.to_sliding_layout(out[2], lo, win),)
      outs.append(out)
    t_NxDxB, s_NxHxB, alpha_NxBxL = (
        jnp.concatenate(pieces, axis=0) if pieces[0] is not None else None
        for pieces in zip(*outs))
    return (jnp.swapaxes(t_NxDxB, 1, 2), jnp.swapaxes(s_NxHxB, 1, 2),
            alpha_NxBxL)

  def _prior_tables(self):
    """The fixed `(users, counts, reach)` tables of the count features."""
    fixed = jax.lax.stop_gradient
    return ((fixed(self.prior_users[...]), fixed(self.prior_counts[...]), 1),
            (fixed(self.prior_near_users[...]),
             fixed(self.prior_near_counts[...]), self.prior_reach),
            (fixed(self.prior_graph_users[...]),
             fixed(self.prior_graph_counts[...]), 0))

  def user_prior(self, recent_XxW: jax.Array, valid_XxW: jax.Array,
                 leave_out_X: jax.Array | None = None) -> jax.Array:
    """The transition prior's logits [..., U] (`cyan_rcbm.cyan.prior`).

    `w_1 log(1 + A_1) + w_r log(1 + A_r) + w_g log(1 + G) + w_p log q`:
    decayed training counts of direct successors and of successors within
    `prior_reach` events, graph out-neighbours of the recent users (reach 0:
    nothing to leave out), popularity.
    """
    w = self.prior_weights[...]
    out = w[3] * jax.lax.stop_gradient(self.prior_log_share[...])
    for weight, (users, counts, reach) in zip(w, self._prior_tables()):
      out = out + weight * prior_lib.log_prior(
          users, counts, recent_XxW, valid_XxW, self.prior_decay,
          self.num_users, leave_out_X if reach else None, max(reach, 1))
    return out

  def user_prior_at(self, recent_XxW, valid_XxW, targets_X, candidates_K,
                    leave_one_out: bool):
    """`user_prior` at each row's target [X] and at shared candidates [X, K]."""
    w = self.prior_weights[...]
    share = jax.lax.stop_gradient(self.prior_log_share[...])
    at_t, at_k = w[3] * share[targets_X], w[3] * share[candidates_K]
    for weight, (users, counts, reach) in zip(w, self._prior_tables()):
      t, k = prior_lib.log_prior_at(
          users, counts, recent_XxW, valid_XxW, self.prior_decay,
          self.num_users, targets_X, candidates_K,
          leave_one_out and reach > 0, max(reach, 1))
      at_t, at_k = at_t + weight * t, at_k + weight * k
    return at_t, at_k

  # -- forward --------------------------------------------------------------

  def features(self, users_BxN, gaps_BxN, calendar_BxNxF=None,
               return_alignments: bool = False):
    """`(user_feat, time_feat, alpha)`: what the heads read at every position.

    `user_feat = [x_k; T_k; s_k]` (`h_k` for RMTPP), `time_feat = [T_k; h_k
    or s_k; x_k]` (`h_k`), alignments `[B, N, L]` if asked for.
    """
    x_BxNxX = self.inputs(users_BxN, gaps_BxN, calendar_BxNxF)
    x_NxXxB = jnp.transpose(x_BxNxX, (1, 2, 0))  # both scans run batch-minor
    h_NxBxH = self.encode(x_NxXxB)
    h_BxNxH = jnp.swapaxes(h_NxBxH, 0, 1)
    if self.variant == 'rmtpp':
      return h_BxNxH, h_BxNxH, None
    t_NxBxD, s_NxBxH, alpha_NxBxL = self.decode(x_NxXxB, h_NxBxH,
                                                return_alignments)
    t_BxNxD = jnp.swapaxes(t_NxBxD, 0, 1)
    s_BxNxH = jnp.swapaxes(s_NxBxH, 0, 1)
    feat = jnp.concatenate([x_BxNxX, t_BxNxD, s_BxNxH], axis=-1)
    ctx = h_BxNxH if self.time_context == 'h' else s_BxNxH
    time_feat = jnp.concatenate([t_BxNxD, ctx, x_BxNxX], axis=-1)
    alpha = jnp.swapaxes(alpha_NxBxL, 0, 1) if return_alignments else None
    return feat, time_feat, alpha

  def time_head(self, time_feat) -> tuple[jax.Array, jax.Array]:
    """`(b_k, w)` of Eq. 2."""
    b = time_feat @ self.time_w_in[...] + self.time_b[...]
    return b, jax.nn.softplus(self.time_w_raw[...])

  def _output_layer(self):
    """`(hidden_fn, Linear)`: the user head is `Linear(hidden_fn(feat))`."""
    if isinstance(self.head, nnx.Sequential):
      first, act, last = self.head.layers
      return (lambda f: act(first(f))), last
    return (lambda f: f), self.head

  @precision.exact
  def __call__(self, users_BxN: jax.Array, gaps_BxN: jax.Array,
               mask_BxN: jax.Array, calendar_BxNxF: jax.Array | None = None,
               *, return_alignments: bool = False,
               leave_one_out: bool = False) -> Outputs:
    """The outputs at every position (`leave_one_out`: see `prior`)."""
    feat, time_feat, alpha = self.features(users_BxN, gaps_BxN,
                                           calendar_BxNxF, return_alignments)
    logits = self.head(feat)
    if self.transition_prior:
      recent, valid = prior_lib.recent_users(users_BxN, mask_BxN,
                                             self.prior_window)
      leave_out = (metrics.next_targets(users_BxN, mask_BxN)[0]
                   if leave_one_out else None)
      logits = logits + self.user_prior(recent, valid, leave_out)
    if self.mask_active:
      active = metrics.active_users(users_BxN, mask_BxN, self.num_users)
      logits = jnp.where(active, _MASKED, logits)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    b, w = self.time_head(time_feat)
    return Outputs(log_probs, b, w, alpha)

  @precision.exact
  def sampled_user_nll(self, users_BxN, gaps_BxN, mask_BxN, calendar_BxNxF,
                       negatives_K: jax.Array, log_inclusion_U: jax.Array,
                       leave_one_out: bool = True):
    """Sampled-softmax user NLL and the time head (`train.softmax='sampled'`).

    The softmax runs over each position's next user and `K` shared
    negatives (distinct users) instead of all U; every candidate's logit
    is corrected by `-log pi(u)`, its probability of being a candidate
    (log-Q correction, so the objective's optimum matches the full
    softmax's); negatives equal to the target or already active in the
    cascade are dropped. Returns `(user_nll_BxN, b_BxN, w)`.
    """
    feat, time_feat, _ = self.features(users_BxN, gaps_BxN, calendar_BxNxF)
    hidden, out = self._output_layer()
    z = hidden(feat)
    target, _ = metrics.next_targets(users_BxN, mask_BxN)
    kernel, bias = out.kernel[...], out.bias[...]
    logit_t = jnp.sum(z * kernel.T[target], -1) + bias[target]
    logit_k = z @ kernel[:, negatives_K] + bias[negatives_K]
    if self.transition_prior:
      recent, valid = prior_lib.recent_users(users_BxN, mask_BxN,
                                             self.prior_window)
      at_t, at_k = self.user_prior_at(recent, valid, target, negatives_K,
                                      leave_one_out)
      logit_t, logit_k = logit_t + at_t, logit_k + at_k
    logit_t = logit_t - log_inclusion_U[target]
    logit_k = logit_k - log_inclusion_U[negatives_K]
    drop = negatives_K == target[..., None]
    if self.mask_active:
      first = metrics.first_positions(users_BxN, mask_BxN, self.num_users)
      n = users_BxN.shape[1]
      drop |= (first[:, negatives_K][:, None, :] <=
               jnp.arange(n, dtype=jnp.int32)[None, :, None])
    logit_k = jnp.where(drop, _MASKED, logit_k)
    norm = jnp.logaddexp(logit_t, jax.nn.logsumexp(logit_k, -1))
    b, w = self.time_head(time_feat)
    return norm - logit_t, b, w


def event_nll(outputs: Outputs, users_BxN: jax.Array, gaps_BxN: jax.Array,
              mask_BxN: jax.Array):
  """Per-position NLL of the next event (Eq. 8 terms).

  Returns:
    `(user_nll_BxN, time_nll_BxN, target_BxN)`: `-log p(u_{k+1})`,
    `-log f(t_{k+1} - t_k)` and the bool mask of positions that have a next
    event. NLLs are 0 where `target` is False.
  """
  next_users, target_BxN = metrics.next_targets(users_BxN, mask_BxN)
  next_gaps = jnp.concatenate(
      [gaps_BxN[:, 1:], jnp.zeros_like(gaps_BxN[:, :1])], axis=1)
  if outputs.log_probs is None:  # a sampled-softmax user term elsewhere
    user_ll = jnp.zeros(next_users.shape, outputs.b.dtype)
  else:
    user_ll = jnp.take_along_axis(outputs.log_probs, next_users[..., None],
                                  axis=-1)[..., 0]
  time_ll = tpp.log_density(next_gaps, outputs.b, outputs.w)
  user_nll = jnp.where(target_BxN, -user_ll, 0.0)
  time_nll = jnp.where(target_BxN, -time_ll, 0.0)
  return user_nll, time_nll, target_BxN


def create_model(model_config, num_users: int, *, calendar: bool,
                 time_b_init: float = 0.0, time_w_scale: float = 1.0,
                 seed: int = 0) -> CyanRNN:
  """Builds the model from `config.model` (see configs/cyan.py) eagerly.

  Args:
    model_config: `config.model`.
    num_users: U.
    calendar: whether batches carry calendar fields.
    time_b_init: initial time-head bias (e.g. -log mean training gap).
    time_w_scale: unit of `model.time_w_init` (1 / largest training gap).
    seed: parameter-init seed.
  """
  m = model_config
  if m.time_w_init <= 0:
    raise errors.ConfigError(
        f'model.time_w_init must be > 0; got {m.time_w_init}.')
  return CyanRNN(
      num_users, variant=m.variant, embed_dim=m.embed_dim,
      encoder_hidden=m.encoder_hidden, decoder_hidden=m.decoder_hidden,
      attention_size=m.attention_size, coverage_size=m.coverage_size,
      coverage_cell=m.coverage_cell, dependence_length=m.dependence_length,
      head_hidden=m.head_hidden, time_context=m.time_context,
      calendar_embed=m.calendar_embed if calendar else 0,
      mask_active=m.mask_active, log_gap_eps=m.log_gap_eps,
      time_w_init=m.time_w_init * time_w_scale, time_b_init=time_b_init,
      unroll=m.unroll, window_segments=m.window_segments, remat=m.remat,
      transition_prior=m.get('transition_prior', False),
      prior_top_m=m.get('prior_top_m', 64),
      prior_window=m.get('prior_window', 16),
      prior_decay=m.get('prior_decay', 0.8),
      prior_reach=m.get('prior_reach', 1),
      popularity_bias=m.get('popularity_bias', False),
      rngs=nnx.Rngs(params=jax.random.key(seed)))


def init_params(model_config, num_users: int, *, calendar: bool,
                time_b_init: float = 0.0, time_w_scale: float = 1.0,
                seed: int = 0):
  """`(graphdef, params)` of `create_model(...)`, params as a pure dict.

  The initializers run in one jitted program, cached per model config (one
  compile instead of one per parameter shape and per run); the values equal
  those of `create_model`.
  """
  key = (json.dumps(model_config.to_dict(), sort_keys=True), int(num_users),
         bool(calendar))
  graphdef, init = _jitted_init(*key)
  params = init(jnp.asarray(seed, jnp.uint32), jnp.float32(time_b_init),
                jnp.float32(time_w_scale))
  return graphdef, params


@functools.lru_cache(maxsize=None)
def _jitted_init(model_json: str, num_users: int, calendar: bool):
  model_config = ml_collections.ConfigDict(json.loads(model_json))

  def build(seed, time_b_init, time_w_scale):
    return create_model(model_config, num_users, calendar=calendar,
                        time_b_init=time_b_init, time_w_scale=time_w_scale,
                        seed=seed)

  graphdef, _ = nnx.split(nnx.eval_shape(lambda: build(0, 0.0, 1.0)),
                          nnx.Param)
  init = jax.jit(lambda *args: nnx.state(build(*args),
                                         nnx.Param).to_pure_dict())
  return graphdef, init
