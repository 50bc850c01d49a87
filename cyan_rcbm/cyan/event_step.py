"""The CYAN-RNN / RMTPP model one event at a time, for the sampler (equations.md
A4).

The sampler (`cyan_rcbm.cyan.sampling`) extends cascades event by event.
Rather than re-running the scans over the whole padded sequence for each new
event, it keeps the state of every row and advances it: `advance` is one step
of the encoder scan and of the decoder scan over a window of the last `l`
events (the same arithmetic as `CyanRNN.encode` / `CyanRNN.decode`, Eqs. 1,
3-7), `heads` the user and time heads (Eq. 2 and the user softmax). A scan
reads each prefix once (`read_prefix`); each new event then costs `O(R l)`
work. Tests check the step against the full forward pass. Memory is
`O(R (l + U))`.

`calendar_from_days` computes the calendar inputs (equations.md A3) of sampled
events inside the jitted loop.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from cyan_rcbm import errors
from cyan_rcbm.cyan import layers
from cyan_rcbm.data import batching

SECONDS_PER_DAY = 86400


class NextEvent(NamedTuple):
  """The model's law of the event after the last event of each row."""
  logits: jax.Array   # [R, U] user logits, no active-user mask applied
  b: jax.Array        # [R] log base intensity of the next gap (Eq. 2)
  w: jax.Array        # [] slope of the log intensity, > 0


# -- the model, one event at a time ------------------------------------------
#
# The state of a row after events 0..k: the encoder state h_k; for the
# attention variants the decoder state T_k, the context s_k and the window of
# the last L events (their projections [U_a h_i | h_i | W_cov h_i + b], the
# coverage vectors V_{k,i} and alignments alpha_{k,i}); the input x_k; the
# number of events seen. `advance` is one step of the model's encoder and
# decoder scans (`CyanRNN.encode` / `CyanRNN.decode`, Eqs. 1, 3-7) and
# `heads` its heads; tests check both against the full forward pass.


def window(model, length: int) -> int:
  """The attention window of a sequence of `length` events (as the model's)."""
  return min(model.dependence_length, length)


def _initial_state(model, rows: int, win: int, dtype) -> dict[str, jax.Array]:
  x_dim = model.encoder.w_in.shape[0]
  hdim = model.encoder.hidden
  state = dict(h=jnp.zeros((rows, hdim), dtype),
               x=jnp.zeros((rows, x_dim), dtype),
               k=jnp.zeros((rows,), jnp.int32))
  if model.transition_prior:  # the last events' users, newest last
    state['recent'] = jnp.zeros((rows, model.prior_window), jnp.int32)
    state['recent_valid'] = jnp.zeros((rows, model.prior_window), bool)
  if model.variant != 'rmtpp':
    proj = model.att_u.shape[1] + hdim
    if model.variant == 'cyan_cov':
      proj += model.cov_h.shape[1]
      state['v'] = jnp.zeros((rows, win, model.cov_rec_b.shape[0]), dtype)
      state['alpha'] = jnp.zeros((rows, win), dtype)
    state.update(t=jnp.zeros((rows, model.decoder.hidden), dtype),
                 s=jnp.zeros((rows, hdim), dtype),
                 proj=jnp.zeros((rows, win, proj), dtype))
  return state


def advance(model, state: dict[str, jax.Array], x_RxX: jax.Array,
             valid_R: jax.Array, user_R: jax.Array | None = None
             ) -> dict[str, jax.Array]:
  """Feeds one event (input `x_RxX`, user `user_R`) to rows where `valid_R`.

  Other rows keep their state. `user_R` is needed by the transition prior.
  """
  h = model.encoder.step(model.encoder.project(x_RxX), state['h'])
  new = dict(h=h, x=x_RxX, k=state['k'] + 1)
  if model.transition_prior:
    if user_R is None:
      raise errors.ConfigError(
          'advance: a model with model.transition_prior needs user_R.')
    new['recent'] = jnp.concatenate(
        [state['recent'][:, 1:], jnp.asarray(user_R, jnp.int32)[:, None]], 1)
    new['recent_valid'] = jnp.pad(state['recent_valid'][:, 1:],
                                  ((0, 0), (0, 1)), constant_values=True)
  if model.variant != 'rmtpp':
    t_prev, win = state['t'], state['proj'].shape[1]
    a, hdim = model.att_u.shape[1], h.shape[-1]
    parts = [h @ model.att_u[...], h]
    if model.variant == 'cyan_cov':
      parts.append(h @ model.cov_h[...] + model.cov_b[...])
    proj = jnp.concatenate([state['proj'][:, 1:],
                            jnp.concatenate(parts, -1)[:, None]], axis=1)
    # slot j holds event k - win + 1 + j; it exists iff that index >= 0.
    valid_L = (jnp.arange(win, dtype=jnp.int32)[None] >=
               win - 1 - state['k'][:, None])
    pre = proj[..., :a] + (t_prev @ model.att_w[...] +
                           model.att_b[...])[:, None, :]
    if model.variant == 'cyan_cov':
      alpha_prev = jnp.pad(state['alpha'][:, 1:], ((0, 0), (0, 1)))
      v_prev = jnp.pad(state['v'][:, 1:], ((0, 0), (0, 1), (0, 0)))
      cov_in = (proj[..., a + hdim:] + (t_prev @ model.cov_t[...])[:, None] +
                alpha_prev[..., None] * model.cov_alpha[...])
      rec = v_prev @ model.cov_rec[...]
      if model.coverage_cell == 'gru':
        v = layers.gru_update(cov_in, rec, model.cov_rec_b[...], v_prev)
      else:
        v = jnp.tanh(cov_in + rec + model.cov_rec_b[...])
      pre = pre + v @ model.att_z[...]
      new['v'] = v
    e = jnp.sum(jnp.tanh(pre) * model.att_v[...], axis=-1)
    alpha = jax.nn.softmax(jnp.where(valid_L, e, -jnp.inf), axis=-1)
    s = jnp.sum(alpha[..., None] * proj[..., a:a + hdim], axis=1)
    gates = model.decoder.project(x_RxX) + s @ model.dec_s[...]
    new.update(t=model.decoder.step(gates, t_prev), s=s, proj=proj)
    if model.variant == 'cyan_cov':
      new['alpha'] = alpha
  return {key: jnp.where(valid_R.reshape((-1,) + (1,) * (old.ndim - 1)),
                         new[key], old) for key, old in state.items()}


def heads(model, state: dict[str, jax.Array]) -> NextEvent:
  """Next-user logits `g([x_k; T_k; s_k])` and `b_k` of Eq. 2 (equations.md A4)."""
  if model.variant == 'rmtpp':
    feat = time_feat = state['h']
  else:
    feat = jnp.concatenate([state['x'], state['t'], state['s']], axis=-1)
    ctx = state['h'] if model.time_context == 'h' else state['s']
    time_feat = jnp.concatenate([state['t'], ctx, state['x']], axis=-1)
  logits = model.head(feat)
  if model.transition_prior:
    logits = logits + model.user_prior(state['recent'], state['recent_valid'])
  return NextEvent(logits, *model.time_head(time_feat))


def read_prefix(model, users_RxP, gaps_RxP, mask_RxP, calendar_RxPxF,
                 win: int) -> dict[str, jax.Array]:
  """The state after each row's real events (a scan over the positions)."""
  x_RxPxX = model.inputs(users_RxP, gaps_RxP, calendar_RxPxF)

  def step(state, xs):
    x, valid, user = xs
    return advance(model, state, x, valid, user), None

  state = _initial_state(model, users_RxP.shape[0], win, x_RxPxX.dtype)
  state, _ = jax.lax.scan(step, state, (jnp.swapaxes(x_RxPxX, 0, 1),
                                        jnp.swapaxes(mask_RxP, 0, 1),
                                        jnp.swapaxes(users_RxP, 0, 1)))
  return state


def next_event(model, users_RxP: jax.Array, gaps_RxP: jax.Array,
               mask_RxP: jax.Array, calendar_RxPxF: jax.Array | None = None
               ) -> NextEvent:
  """`p(u_{N+1} | H_N)` logits and `b_N` after each row's last event
  (equations.md A4).

  The model's encoder and decoder (inputs A3, Eqs. 1, 3-7) run event by
  event over the real events (`mask_RxP`, a prefix of each row); the heads
  (Eq. 2 and the user softmax) are applied at the last one only. Equal to
  `CyanRNN.__call__` at that position (tested).

  Args:
    model: a `cyan_rcbm.cyan.model.CyanRNN`.
    users_RxP, gaps_RxP, mask_RxP, calendar_RxPxF: padded rows (see
      `cyan_rcbm.data.batching.Batch`).
  """
  state = read_prefix(model, users_RxP, gaps_RxP, mask_RxP, calendar_RxPxF,
                       window(model, users_RxP.shape[1]))
  return heads(model, state)


def active_mask(users_RxP: jax.Array, mask_RxP: jax.Array,
                num_users: int) -> jax.Array:
  """bool [R, U]: user u occurs among the real events of row r."""
  users_RxP = jnp.asarray(users_RxP)
  rows = jnp.arange(users_RxP.shape[0])[:, None]
  return jnp.zeros((users_RxP.shape[0], num_users), bool).at[
      rows, users_RxP].max(jnp.asarray(mask_RxP, bool))


def event_inputs(model, user_R, gap_R, calendar_RxF) -> jax.Array:
  """`x = [E[u]; log(gap + eps); calendar]` of one new event per row (A3)."""
  # model.inputs treats position 0 as a cascade's first event (log gap 0):
  # give it a dummy first column and keep the second.
  users = jnp.stack([user_R, user_R], axis=1)
  gaps = jnp.stack([jnp.zeros_like(gap_R), gap_R], axis=1)
  calendar = None
  if calendar_RxF is not None:
    calendar = jnp.stack([calendar_RxF, calendar_RxF], axis=1)
  return model.inputs(users, gaps, calendar)[:, 1]


# -- calendar fields of sampled events (equations.md A3)
# -------------------------------


def calendar_from_days(days_R: jax.Array, seconds_R: jax.Array) -> jax.Array:
  """int32 [R, 7] calendar fields of `days * 86400 + seconds` Unix seconds.

  The same fields as `cyan_rcbm.data.batching.calendar_fields` (year since
  1970 clipped to the table, month 0-11, day of month 0-30, weekday with
  Monday 0, hour, minute, second; UTC), in jax integer arithmetic (days
  -> civil date by H. Hinnant's `civil_from_days`), so that sampled events
  get calendar inputs inside the jitted loop. `seconds_R` may exceed a day.
  """
  carry = jnp.floor(seconds_R / SECONDS_PER_DAY)
  days = days_R.astype(jnp.int32) + carry.astype(jnp.int32)
  in_day = jnp.clip(jnp.floor(seconds_R - carry * SECONDS_PER_DAY), 0,
                    SECONDS_PER_DAY - 1).astype(jnp.int32)
  z = days + 719468
  era = jnp.floor_divide(z, 146097)
  doe = z - era * 146097
  yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  mp = (5 * doy + 2) // 153
  day = doy - (153 * mp + 2) // 5            # 0-based day of month
  month = jnp.where(mp < 10, mp + 2, mp - 10)  # 0-based, January = 0
  year = yoe + era * 400 + (month <= 1)
  fields = [jnp.clip(year - 1970, 0, batching.CALENDAR_SIZES[0] - 1), month,
            day, jnp.mod(days + 3, 7), in_day // 3600, (in_day % 3600) // 60,
            in_day % 60]
  return jnp.stack(fields, axis=-1).astype(jnp.int32)
