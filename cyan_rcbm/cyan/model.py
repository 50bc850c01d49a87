"""CYAN-RNN, CYAN-RNN(cov) and RMTPP as one Flax NNX module (SPEC A3, A4).

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
from cyan_rcbm.cyan import metrics
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


def _orthogonal_blocks(key, rows: int, cols: int, blocks: int) -> jax.Array:
  """`[rows, blocks*cols]` of independent orthogonal blocks (one per gate)."""
  init = nnx.initializers.orthogonal()
  keys = jax.random.split(key, blocks)
  return jnp.concatenate([init(k, (rows, cols)) for k in keys], axis=1)


class _GRUWeights(nnx.Module):
  """A GRU with fused gates `[r, z, n]` (reset applied after the matmul).

  The input projection `x W + b` is done outside the recurrence for all
  steps at once (`project`); `step` does one `[B, H] x [H, 3H]` matmul.
  """

  def __init__(self, in_dim: int, hidden: int, *, rngs: nnx.Rngs):
    self.hidden = hidden
    self.w_in = nnx.Param(nnx.initializers.lecun_normal()(
        rngs.params(), (in_dim, 3 * hidden)))
    self.b_in = nnx.Param(jnp.zeros((3 * hidden,)))
    self.w_rec = nnx.Param(_orthogonal_blocks(rngs.params(), hidden, hidden, 3))
    self.b_rec_n = nnx.Param(jnp.zeros((hidden,)))

  def project(self, x: jax.Array) -> jax.Array:
    return x @ self.w_in[...] + self.b_in[...]

  def step(self, gates_in: jax.Array, state: jax.Array) -> jax.Array:
    hh = state @ self.w_rec[...]
    return _gru_update(gates_in, hh, self.b_rec_n[...], state)


def _gru_update(gates_in, hh, b_rec_n, state):
  h = state.shape[-1]
  rz = jax.nn.sigmoid(gates_in[..., :2 * h] + hh[..., :2 * h])
  r, z = rz[..., :h], rz[..., h:]
  n = jnp.tanh(gates_in[..., 2 * h:] + r * (hh[..., 2 * h:] + b_rec_n))
  return n + z * (state - n)


def _window_segments(n: int, win: int, count: int
                     ) -> list[tuple[int, int, int]]:
  """`(first step, end step, window size)` of the decoder scans.

  A step k < win can only attend to events 0..k, so the first steps run with
  a smaller window (the slots they skip would all be masked): with count = 3,
  steps [0, win/4) use win/4 slots, [win/4, win/2) use win/2, the rest win.
  This saves ~30% of the attention work of a short cascade; results are
  identical (tested).
  """
  bounds = []
  if count >= 3 and win >= 8:
    bounds.append(win // 4)
  if count >= 2 and win >= 4:
    bounds.append(win // 2)
  segments, lo = [], 0
  for hi in bounds:
    if hi < n:
      segments.append((lo, hi, hi))
      lo = hi
  segments.append((lo, n, win))
  return segments


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
               remat: bool = False, rngs: nnx.Rngs):
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
                        ('window_segments', window_segments)]:
      if value < 1:
        raise errors.ConfigError(f'model.{name} must be >= 1; got {value}.')
    if num_users < 1:
      raise errors.ConfigError(f'the data has {num_users} users.')
    self.variant = variant
    self.num_users = num_users
    self.dependence_length = dependence_length
    self.coverage_cell = coverage_cell
    self.time_context = time_context
    self.mask_active = mask_active
    self.log_gap_eps = log_gap_eps
    self.unroll = unroll
    self.window_segments = window_segments
    self.remat = remat
    self.calendar_embed = calendar_embed
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
    self.encoder = _GRUWeights(x_dim, h, rngs=rngs)

    attend = variant != 'rmtpp'
    if attend:
      self.att_u = nnx.Param(dense(rngs.params(), (h, a)))      # U_a
      self.att_w = nnx.Param(dense(rngs.params(), (d, a)))      # W_a
      self.att_b = nnx.Param(jnp.zeros((a,)))
      self.att_v = nnx.Param(dense(rngs.params(), (a, 1))[:, 0])  # v
      # decoder GRU input [x_k; s_k]: x part hoisted, s part per step.
      self.decoder = _GRUWeights(x_dim, d, rngs=rngs)
      self.dec_s = nnx.Param(dense(rngs.params(), (h, 3 * d)))
      if variant == 'cyan_cov':
        gates = 3 if coverage_cell == 'gru' else 1
        self.cov_h = nnx.Param(dense(rngs.params(), (h, gates * c)))
        self.cov_t = nnx.Param(dense(rngs.params(), (d, gates * c)))
        self.cov_alpha = nnx.Param(dense(rngs.params(), (1, gates * c))[0])
        self.cov_b = nnx.Param(jnp.zeros((gates * c,)))
        self.cov_rec = nnx.Param(_orthogonal_blocks(rngs.params(), c, c,
                                                    gates))
        self.cov_rec_b = nnx.Param(jnp.zeros((c,)))
        self.att_z = nnx.Param(dense(rngs.params(), (c, a)))   # Z_a
      feat = x_dim + d + h
    else:
      feat = h
    if head_hidden:
      self.head = nnx.Sequential(nnx.Linear(feat, head_hidden, rngs=rngs),
                                 jnp.tanh,
                                 nnx.Linear(head_hidden, num_users, rngs=rngs))
    else:
      self.head = nnx.Linear(feat, num_users, rngs=rngs)
    # Time head (Eq. 2): b_k = w_T.T_k + w_h.h_k + w_x.x_k + b.
    time_in = (d + h + x_dim) if attend else h
    self.time_w_in = nnx.Param(jnp.zeros((time_in,)))
    self.time_b = nnx.Param(jnp.asarray(time_b_init, jnp.float32))
    # softplus^{-1}(w_init), so that w = softplus(raw) starts at w_init.
    self.time_w_raw = nnx.Param(jnp.log(jnp.expm1(
        jnp.asarray(time_w_init, jnp.float32))))

  # -- pieces ---------------------------------------------------------------

  def inputs(self, users_BxN, gaps_BxN, calendar_BxNxF=None) -> jax.Array:
    """`x_BxNxX = [E[u]; log(gap + eps) (0 for k = 1); calendar]` (SPEC A3)."""
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

  def encode(self, x_BxNxX: jax.Array) -> jax.Array:
    """GRU encoder as one scan; returns `h_NxBxH` (time-major)."""
    gates_NxBx3H = self.encoder.project(jnp.swapaxes(x_BxNxX, 0, 1))
    h0_BxH = jnp.zeros((x_BxNxX.shape[0], self.encoder.hidden),
                       x_BxNxX.dtype)
    w_rec, b_rec_n = self.encoder.w_rec[...], self.encoder.b_rec_n[...]

    def step(h_BxH, g_Bx3H):
      h_BxH = _gru_update(g_Bx3H, h_BxH @ w_rec, b_rec_n, h_BxH)
      return h_BxH, h_BxH

    _, h_NxBxH = jax.lax.scan(step, h0_BxH, gates_NxBx3H, unroll=self.unroll)
    return h_NxBxH

  def decode(self, x_BxNxX: jax.Array, h_NxBxH: jax.Array,
             return_alignments: bool = False):
    """The attention decoder scan (Eqs. 1, 3-7).

    Returns:
      `(T_NxBxD, s_NxBxH, alpha_NxBxL or None)`.
    """
    n, b, hdim = h_NxBxH.shape
    win = min(self.dependence_length, n)
    d = self.decoder.hidden
    cov = self.variant == 'cyan_cov'
    dtype = h_NxBxH.dtype
    dec_in_NxBx3D = self.decoder.project(jnp.swapaxes(x_BxNxX, 0, 1))
    # Per-event projections that enter the window, concatenated so that one
    # shift per step moves them all: [U_a h_i | h_i (| W_h h_i + b)].
    parts = [h_NxBxH @ self.att_u[...], h_NxBxH]
    a = parts[0].shape[-1]
    if cov:
      parts.append(h_NxBxH @ self.cov_h[...] + self.cov_b[...])
      cov_t, cov_alpha = self.cov_t[...], self.cov_alpha[...]
      cov_rec, cov_rec_b, att_z = (self.cov_rec[...], self.cov_rec_b[...],
                                   self.att_z[...])
      c = cov_rec_b.shape[0]
    proj_NxBxP = jnp.concatenate(parts, axis=-1)
    att_w, att_b, att_v = self.att_w[...], self.att_b[...], self.att_v[...]
    dec_s, dec_rec, dec_rec_b = (self.dec_s[...], self.decoder.w_rec[...],
                                 self.decoder.b_rec_n[...])

    def step(w, carry, xs):
      """Decoder step k with a window of the last w events (slots 0..w-1)."""
      t_prev = carry['t']
      proj_win = jnp.concatenate([carry['proj'][:, 1:],
                                  xs['proj'][:, None]], axis=1)
      uh_win, h_win = proj_win[..., :a], proj_win[..., a:a + hdim]
      # slot j holds event k - w + 1 + j; it exists iff that index >= 0.
      valid_L = jnp.arange(w, dtype=jnp.int32) >= w - 1 - xs['k']
      pre_BxLxA = uh_win + (t_prev @ att_w + att_b)[:, None, :]
      new = dict(proj=proj_win)
      if cov:
        # shift the previous step's alignments and coverage by one slot; the
        # entries of the new event start at 0 (paper section 2.2).
        alpha_prev = jnp.pad(carry['alpha'][:, 1:], ((0, 0), (0, 1)))
        v_prev = jnp.pad(carry['v'][:, 1:], ((0, 0), (0, 1), (0, 0)))
        cov_in = (proj_win[..., a + hdim:] + (t_prev @ cov_t)[:, None, :] +
                  alpha_prev[..., None] * cov_alpha)
        rec = v_prev @ cov_rec
        if self.coverage_cell == 'gru':
          v_win = _gru_update(cov_in, rec, cov_rec_b, v_prev)
        else:
          v_win = jnp.tanh(cov_in + rec + cov_rec_b)
        pre_BxLxA = pre_BxLxA + v_win @ att_z
        new['v'] = v_win
      # v^T tanh(.) and sum_i alpha_i h_i as multiply-and-reduce: on CPU this
      # is several times faster than the equivalent batched dot products.
      e_BxL = jnp.sum(jnp.tanh(pre_BxLxA) * att_v, axis=-1)
      e_BxL = jnp.where(valid_L, e_BxL, -jnp.inf)
      alpha_BxL = jax.nn.softmax(e_BxL, axis=-1)
      s_BxH = jnp.sum(alpha_BxL[..., None] * h_win, axis=1)
      gates = xs['dec_in'] + s_BxH @ dec_s
      t_new = _gru_update(gates, t_prev @ dec_rec, dec_rec_b, t_prev)
      new['t'] = t_new
      if cov:
        new['alpha'] = alpha_BxL
      return new, (t_new, s_BxH, alpha_BxL if return_alignments else None)

    def grow(carry, w):
      """Zero-pads the window arrays of the carry at the front to w slots."""
      out = {}
      for key, value in carry.items():
        if key == 't':
          out[key] = value
        else:
          pad = [(0, 0)] * value.ndim
          pad[1] = (w - value.shape[1], 0)
          out[key] = jnp.pad(value, pad)
      return out

    xs = dict(proj=proj_NxBxP, dec_in=dec_in_NxBx3D,
              k=jnp.arange(n, dtype=jnp.int32))
    carry = dict(t=jnp.zeros((b, d), dtype),
                 proj=jnp.zeros((b, 0, proj_NxBxP.shape[-1]), dtype))
    if cov:
      carry['v'] = jnp.zeros((b, 0, c), dtype)
      carry['alpha'] = jnp.zeros((b, 0), dtype)
    outs = []
    for lo, hi, w in _window_segments(n, win, self.window_segments):
      carry = grow(carry, w)
      body = functools.partial(step, w)
      if self.remat:  # keep only the carries per step; recompute the rest
        body = jax.checkpoint(body, prevent_cse=False)
      carry, out = jax.lax.scan(
          body, carry,
          jax.tree.map(lambda v, lo=lo, hi=hi: v[lo:hi], xs),
          unroll=self.unroll)
      if return_alignments:  # to the full window layout [steps, B, win]
        out = out[:2] + (jnp.pad(out[2], ((0, 0), (0, 0), (win - w, 0))),)
      outs.append(out)
    t_NxBxD, s_NxBxH, alpha_NxBxL = (
        jnp.concatenate(pieces, axis=0) if pieces[0] is not None else None
        for pieces in zip(*outs))
    return t_NxBxD, s_NxBxH, alpha_NxBxL

  # -- forward --------------------------------------------------------------

  def __call__(self, users_BxN: jax.Array, gaps_BxN: jax.Array,
               mask_BxN: jax.Array, calendar_BxNxF: jax.Array | None = None,
               *, return_alignments: bool = False) -> Outputs:
    x_BxNxX = self.inputs(users_BxN, gaps_BxN, calendar_BxNxF)
    h_NxBxH = self.encode(x_BxNxX)
    h_BxNxH = jnp.swapaxes(h_NxBxH, 0, 1)
    alpha = None
    if self.variant == 'rmtpp':
      feat = h_BxNxH
      time_feat = h_BxNxH
    else:
      t_NxBxD, s_NxBxH, alpha_NxBxL = self.decode(x_BxNxX, h_NxBxH,
                                                  return_alignments)
      t_BxNxD = jnp.swapaxes(t_NxBxD, 0, 1)
      s_BxNxH = jnp.swapaxes(s_NxBxH, 0, 1)
      feat = jnp.concatenate([x_BxNxX, t_BxNxD, s_BxNxH], axis=-1)
      ctx = h_BxNxH if self.time_context == 'h' else s_BxNxH
      time_feat = jnp.concatenate([t_BxNxD, ctx, x_BxNxX], axis=-1)
      if return_alignments:
        alpha = jnp.swapaxes(alpha_NxBxL, 0, 1)
    logits = self.head(feat)
    if self.mask_active:
      active = metrics.active_users(users_BxN, mask_BxN, self.num_users)
      logits = jnp.where(active, _MASKED, logits)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    b = time_feat @ self.time_w_in[...] + self.time_b[...]
    w = jax.nn.softplus(self.time_w_raw[...])
    return Outputs(log_probs, b, w, alpha)


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
