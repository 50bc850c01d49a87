"""Continuations of partially observed cascades and Monte Carlo size forecasts.

CYAN-RNN (paper section 2.2, equations.md A4) models a cascade event by event:
given the history `H_k`, the next user has law `p(u_{k+1} | H_k) =
softmax(g([x_k; T_k; s_k]))` with users already active in the cascade masked
out, and the gap
`d = t_{k+1} - t_k` has the density of Eq. 2, `log f(d) = b_k + w d -
(e^{b_k}/w)(e^{w d} - 1)`. The likelihood of a cascade (Eq. 8) is the
product of these terms, so a continuation is drawn by ancestral sampling:

1. run the model on the events so far and read, at the last event, the user
   logits and the log base intensity `b`;
2. draw `u ~ p(. | H)` with active users removed (`mask_active`);
3. draw `d ~ f(.; b, w)` by the closed-form inverse CDF
   (`cyan_rcbm.cyan.tpp.sample_gap`). When the prefix is known to be
   complete up to `observed_until > t_N`, the first gap is drawn conditioned
   on `d > d0 = observed_until - t_N`: given `d > d0` the excess `d - d0` has
   the same law with `b' = b + w d0` (the intensity is `exp(w (d0 + x) + b)`);
4. stop a row when its next time passes `start + horizon` (that event is
   dropped), when every user is active (with masking), or after `max_events`
   new events.

All samples of all prefixes are rows of one batch that run in a single
jitted `jax.lax.while_loop` (no Python work per event). The model runs
event by event (`cyan_rcbm.cyan.event_step`): a scan reads each prefix once,
then each new event costs one step, `O(R l)` work.

Monte Carlo forecast of the size at a horizon: `N + (events sampled up to
start + horizon)` per sample; the interval is `[q_lo, q_hi]` with `q_lo` the
`(1 - level)/2` and `q_hi` the `(1 + level)/2` quantile of the sampled sizes
(inverted-CDF quantiles of integers, so the interval holds at least `level`
of the sampled law).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cyan_rcbm import errors
from cyan_rcbm.common import backend_defaults
from cyan_rcbm.common import precision
from cyan_rcbm.cyan import event_step
from cyan_rcbm.cyan import tpp
from cyan_rcbm.data import batching
from cyan_rcbm.data import types


# -- the sampler ---------------------------------------------------------------


@precision.exact
def _sample_rows(graphdef, mask_active: bool, time_scale: float,
                 num_samples: int, width: int, params, prefix: dict, max_new,
                 key):
  """Reads N prefixes, then draws `num_samples` continuations of each.

  Returns `(users [R, width], gaps [R, width], done [R])`, rows
  prefix-major; users -1 / gaps 0 past a row's last new event.
  """
  model = nnx.merge(graphdef, params)
  users, mask = prefix['users'], prefix['mask']
  win = event_step.window(model, users.shape[1] + width)
  rep = lambda a: jnp.repeat(a, num_samples, axis=0)
  state = jax.tree.map(rep, event_step.read_prefix(
      model, users, prefix['gaps'], mask, prefix.get('calendar'), win))
  active = rep(event_step.active_mask(users, mask, model.num_users))
  d0, limit = rep(prefix['d0']), rep(prefix['limit'])
  r = active.shape[0]
  index = jnp.arange(r)
  calendar = 'day' in prefix
  if calendar:
    day, second = rep(prefix['day']), rep(prefix['second'])
  done = jnp.zeros((r,), bool)
  if mask_active:
    done = jnp.all(active, axis=-1)
  loop = dict(state=state, active=active, done=done,
              elapsed=jnp.zeros((r,), d0.dtype), j=jnp.zeros((), jnp.int32),
              users=jnp.full((r, width), -1, jnp.int32),
              gaps=jnp.zeros((r, width), d0.dtype))

  def cond(s):
    return (s['j'] < max_new) & ~jnp.all(s['done'])

  def body(s):
    out = event_step.heads(model, s['state'])
    k_user, k_gap = jax.random.split(jax.random.fold_in(key, s['j']))
    logits = out.logits
    if mask_active:
      logits = jnp.where(s['active'], -jnp.inf, logits)
    user = jax.random.categorical(k_user, logits, axis=-1).astype(jnp.int32)
    first = jnp.where(s['j'] == 0, d0, 0.0)
    gap = first + tpp.sample_gap(k_gap, out.b + out.w * first, out.w)
    elapsed = s['elapsed'] + gap
    stop = s['done'] | (elapsed > limit)
    write = ~stop
    cal = (event_step.calendar_from_days(day, second + elapsed * time_scale)
           if calendar else None)
    active = s['active'].at[index, user].max(write)
    done = stop | jnp.all(active, axis=-1) if mask_active else stop
    return dict(
        state=event_step.advance(
            model, s['state'], event_step.event_inputs(model, user, gap, cal),
            write, user),
        active=active, done=done,
        elapsed=jnp.where(write, elapsed, s['elapsed']), j=s['j'] + 1,
        users=s['users'].at[:, s['j']].set(jnp.where(write, user, -1)),
        gaps=s['gaps'].at[:, s['j']].set(jnp.where(write, gap, 0.0)))

  final = jax.lax.while_loop(cond, body, loop)
  return final['users'], final['gaps'], final['done']


@functools.lru_cache(maxsize=None)
def _jitted_sampler(graphdef, mask_active: bool, time_scale: float,
                    num_samples: int, width: int):
  return jax.jit(functools.partial(_sample_rows, graphdef, mask_active,
                                   time_scale, num_samples, width))


class Continuations(NamedTuple):
  """Sampled continuations; row `i * num_samples + s` is sample s of prefix i."""
  users: np.ndarray      # int32 [R, M] new users (dense ids), -1 after counts
  gaps: np.ndarray       # float64 [R, M] gaps before each new event, 0 after
  times: np.ndarray      # float64 [R, M] times of the new events, nan after
  counts: np.ndarray     # int32 [R] number of new events
  truncated: np.ndarray  # bool [R] still going when max_events was reached


def _padded_length(n: int) -> int:
  """Rounds the sequence length up to a power of two >= 8 (few compiles)."""
  return max(8, 1 << (int(n) - 1).bit_length())


def check_int(name: str, value: Any, low: int) -> int:
  """`value` as an int >= `low`, else `InputError` naming `name`."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise errors.InputError(
        f'{name} must be an integer >= {low}; got {value!r} '
        f'({type(value).__name__}).')
  if value < low:
    raise errors.InputError(f'{name} must be >= {low}; got {value}.')
  return int(value)


def check_real(name: str, value: Any, *, allow_none: bool = False,
               positive: bool = False, allow_inf: bool = False
               ) -> float | None:
  """`value` as a float (finite unless `allow_inf`), else `InputError`."""
  if value is None and allow_none:
    return None
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
    raise errors.InputError(f'{name} must be a number; got {value!r} '
                            f'({type(value).__name__}).')
  value = float(value)
  if math.isnan(value) or (math.isinf(value) and not allow_inf):
    raise errors.InputError(f'{name} must be finite; got {value}.')
  if positive and value <= 0:
    raise errors.InputError(f'{name} must be > 0; got {value}.')
  return value


def check_level(level: Any) -> float:
  """An interval's nominal coverage as a float in (0, 1), else `InputError`."""
  level = check_real('level', level)
  if not 0 < level < 1:
    raise errors.InputError(f'level must be in (0, 1); got {level}.')
  return level


def _prefix_arrays(prefixes: Sequence[types.Cascade], starts: np.ndarray,
                   horizon: float | None, calendar: bool
                   ) -> dict[str, np.ndarray]:
  """numpy arrays of the prefixes (one row each) for the sampler."""
  n_prefix, p = len(prefixes), _padded_length(max(len(c) for c in prefixes))
  out = dict(users=np.zeros((n_prefix, p), np.int32),
             gaps=np.zeros((n_prefix, p), np.float32),
             mask=np.zeros((n_prefix, p), bool),
             d0=np.zeros((n_prefix,), np.float32),
             limit=np.full((n_prefix,), np.inf, np.float32))
  if calendar:
    out['calendar'] = np.zeros((n_prefix, p, len(batching.CALENDAR_FIELDS)),
                               np.int32)
    out['day'] = np.zeros((n_prefix,), np.int32)
    out['second'] = np.zeros((n_prefix,), np.float32)
  for i, c in enumerate(prefixes):
    n = len(c)
    times = np.asarray(c.times, np.float64)
    out['users'][i, :n] = c.users
    out['gaps'][i, 1:n] = np.diff(times)
    out['mask'][i, :n] = True
    out['d0'][i] = starts[i] - times[-1]
    if horizon is not None:
      out['limit'][i] = out['d0'][i] + horizon
    if calendar:
      stamps = np.asarray(c.timestamps, np.float64)
      out['calendar'][i, :n] = batching.calendar_fields(stamps)
      day = math.floor(stamps[-1] / event_step.SECONDS_PER_DAY)
      out['day'][i] = day
      out['second'][i] = stamps[-1] - day * event_step.SECONDS_PER_DAY
  return out


def sample_continuations(graphdef, params, prefixes: Sequence[types.Cascade],
                         *, num_samples: int, max_events: int,
                         horizon: float | None = None,
                         observed_until: Sequence[float] | None = None,
                         seed: int = 0, mask_active: bool = True,
                         calendar: bool = False, time_scale: float = 1.0,
                         max_rows: int | str = 'auto') -> Continuations:
  """Draws `num_samples` continuations of every prefix (module docstring).

  Ancestral sampling from the CYAN-RNN / RMTPP law of the next event
  (equations.md A4: the user softmax and the time density of Eq. 2), jitted and
  batched over all samples of all prefixes (in chunks of at most `max_rows`
  rows).

  Args:
    graphdef, params: the model (`nnx.split` parts; params a pure dict).
    prefixes: observed cascades with dense user ids in `[0, U)`,
      sorted times, at least one event each (checked by the caller, see
      `cyan_rcbm.cyan.api_inputs`); with `calendar`, also `timestamps`.
    num_samples: continuations per prefix.
    max_events: at most this many new events per continuation.
    horizon: drop events later than `start + horizon` (None: no limit).
    observed_until: per prefix, the time up to which it is known to be
      complete (`start`; default its last event time). The first new event
      is drawn after it.
    seed: the random seed; the same seed gives the same samples.
    mask_active: a user activates at most once (active users get p = 0);
      a row stops when every user is active.
    calendar: the model reads calendar features (prefixes have timestamps;
      new events get `timestamp = last + elapsed * time_scale`).
    time_scale: seconds per model time unit (`config.data.time_scale`).
    max_rows: rows per compiled batch (bounds memory); 'auto': 8192 on CPU,
      65536 on GPU/TPU (`cyan_rcbm.common.backend_defaults`).

  Returns:
    `Continuations` with `M = max_events` columns.
  """
  num_samples = check_int('num_samples', num_samples, 1)
  max_events = check_int('max_events', max_events, 1)
  horizon = check_real('horizon', horizon, allow_none=True, positive=True,
                        allow_inf=True)
  seed = check_int('seed', seed, 0)
  if not prefixes:
    raise errors.InputError('no prefix to continue.')
  last = np.array([float(c.times[-1]) for c in prefixes])
  if observed_until is None:
    starts = last
  else:
    starts = np.asarray([check_real('observed_until', t) for t in
                         observed_until], np.float64)
    if starts.shape != last.shape:
      raise errors.InputError(
          f'observed_until has {starts.size} values for {len(prefixes)} '
          'prefixes.')
    bad = np.flatnonzero(starts < last)
    if bad.size:
      i = int(bad[0])
      raise errors.InputError(
          f'observed_until={starts[i]} is before the last event of cascade '
          f'{prefixes[i].id!r} (t={last[i]}); it must be >= that time.')
  arrays = _prefix_arrays(prefixes, starts, horizon, calendar)
  width = _padded_length(max_events)
  per_call = max(1, min(len(prefixes), backend_defaults.resolve(
      max_rows, 'sampling.max_rows') // num_samples))
  sampler = _jitted_sampler(graphdef, bool(mask_active), float(time_scale),
                            num_samples, width)
  key = jax.random.key(seed)
  parts = []
  for c, lo in enumerate(range(0, len(prefixes), per_call)):
    # the last call is padded with copies of the last prefix (same shapes).
    take = np.minimum(np.arange(lo, lo + per_call), len(prefixes) - 1)
    parts.append(sampler(params, {k: v[take] for k, v in arrays.items()},
                         jnp.int32(max_events), jax.random.fold_in(key, c)))
  parts = jax.device_get(parts)
  total = len(prefixes) * num_samples
  new_users = np.concatenate([u for u, _, _ in parts])[:total, :max_events]
  new_gaps = np.concatenate([g for _, g, _ in parts])[:total, :max_events
                                                     ].astype(np.float64)
  done = np.concatenate([d for _, _, d in parts])[:total]
  valid = new_users >= 0
  times = np.repeat(last, num_samples)[:, None] + np.cumsum(new_gaps, axis=1)
  if horizon is not None:  # the loop checked in float32; make it exact here
    valid &= times <= np.repeat(starts, num_samples)[:, None] + horizon
  valid &= np.cumprod(valid, axis=1).astype(bool)
  counts = valid.sum(1).astype(np.int32)
  return Continuations(
      users=np.where(valid, new_users, -1).astype(np.int32),
      gaps=np.where(valid, new_gaps, 0.0),
      times=np.where(valid, times, np.nan),
      counts=counts, truncated=~done & (counts == max_events))


def continuation_cascades(prefix: types.Cascade, cont: Continuations,
                          rows: Sequence[int], *, time_scale: float = 1.0
                          ) -> list[types.Cascade]:
  """`Cascade`s of `prefix` followed by the continuations in `rows`.

  Users are dense ids; times continue the prefix's; timestamps (when the
  prefix has them) continue as `last + (t - t_N) * time_scale`; parents are
  unknown (None). Ids are `'<prefix id>/sample<j>'`.
  """
  out = []
  t_last = float(prefix.times[-1])
  for j, r in enumerate(rows):
    n = int(cont.counts[r])
    times = np.concatenate([np.asarray(prefix.times, np.float64),
                            cont.times[r, :n]])
    stamps = None
    if prefix.timestamps is not None:
      stamps = np.concatenate([
          np.asarray(prefix.timestamps, np.float64),
          float(prefix.timestamps[-1]) + (cont.times[r, :n] - t_last) *
          time_scale])
    out.append(types.Cascade(
        id=f'{prefix.id}/sample{j}',
        users=np.concatenate([np.asarray(prefix.users, np.int32),
                              cont.users[r, :n]]).astype(np.int32),
        times=times, parents=None, timestamps=stamps))
  return out


@dataclasses.dataclass(frozen=True)
class SizeForecast:
  """Monte Carlo forecast of a cascade's size at `start + horizon`.

  Attributes:
    mean, median: of the sampled sizes.
    lower, upper: the `level` interval (inverted-CDF quantiles
      `(1 - level)/2` and `(1 + level)/2` of the sampled sizes, or the
      recalibrated levels when `calibrated`).
    samples: int [num_samples] sampled sizes (prefix events included).
    level: nominal coverage of `[lower, upper]`.
    observed: events in the prefix.
    horizon: the horizon after `start`.
    truncated: fraction of samples cut by `max_events` (their size is a
      lower bound; raise `max_events` if this is not 0).
    calibrated: `lower`, `upper` were recalibrated on held-out cascades
      (`cyan_rcbm.cyan.recalibration`); False: the nominal quantiles.
  """
  mean: float
  median: float
  lower: int
  upper: int
  samples: np.ndarray
  level: float
  observed: int
  horizon: float
  truncated: float
  calibrated: bool = False

  def covers(self, size: int) -> bool:
    """Whether `lower <= size <= upper`."""
    return self.lower <= size <= self.upper


def size_forecasts(sizes_NxS: np.ndarray, observed_N: np.ndarray,
                   truncated_NxS: np.ndarray, *, level: float,
                   horizon: float) -> list[SizeForecast]:
  """Summaries (mean, median, `level` interval) of sampled sizes per prefix."""
  out = []
  lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
  for sizes, n, cut in zip(sizes_NxS, observed_N, truncated_NxS):
    out.append(SizeForecast(
        mean=float(np.mean(sizes)), median=float(np.median(sizes)),
        lower=int(np.quantile(sizes, lo_q, method='inverted_cdf')),
        upper=int(np.quantile(sizes, hi_q, method='inverted_cdf')),
        samples=np.asarray(sizes, np.int64), level=float(level),
        observed=int(n), horizon=float(horizon),
        truncated=float(np.mean(cut))))
  return out


def observed_prefix(cascade: types.Cascade, until: float) -> types.Cascade:
  """The events of `cascade` with `time <= until` (same id and fields).

  The first event is always kept (a prefix is never empty), so `until`
  below the first time gives the root alone.
  """
  n = max(1, int(np.searchsorted(np.asarray(cascade.times), until,
                                 side='right')))
  return types.Cascade(
      id=cascade.id, users=np.asarray(cascade.users)[:n],
      times=np.asarray(cascade.times)[:n],
      parents=None if cascade.parents is None else
      np.asarray(cascade.parents)[:n],
      timestamps=None if cascade.timestamps is None else
      np.asarray(cascade.timestamps)[:n])
