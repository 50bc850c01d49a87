"""The censored last gap: an optional term of the CYAN training loss.

Eq. 8 scores every next event but not the silence after a cascade's last
event. With `train.censor_end = T > 0` (cascades observed for T time units
after their first event, e.g. the synthetic generator's horizon), the loss
adds `-log S(T - t_N)` per cascade (`tpp.log_survival`), the probability of
no further event before the end of observation. `train.censor_end = 0`
(the default) is Eq. 8 exactly, as in the paper.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from cyan_rcbm import errors
from cyan_rcbm.cyan import evaluate as evaluate_lib
from cyan_rcbm.cyan import model as model_lib
from cyan_rcbm.cyan import parallel
from cyan_rcbm.cyan import tpp
from cyan_rcbm.data import batching
from cyan_rcbm.data import splits as splits_lib


def censored_nll(outputs: model_lib.Outputs, gaps_BxN: jax.Array,
                 mask_BxN: jax.Array, censor_end: float) -> jax.Array:
  """`-log S(censor_end - t_N)` at each row's last event, 0 elsewhere [B, N].

  `t_N - t_1` is the sum of the row's gaps (`gaps_BxN[:, 0] = 0`), so the
  rows must hold whole cascades (`check_censoring`). A last event at or
  after `censor_end` scores 0 (`S(0) = 1`).
  """
  last_BxN = mask_BxN & ~jnp.concatenate(
      [mask_BxN[:, 1:], jnp.zeros_like(mask_BxN[:, :1])], axis=1)
  end_Bx1 = jnp.sum(jnp.where(mask_BxN, gaps_BxN, 0.0), axis=1, keepdims=True)
  remaining_Bx1 = jnp.maximum(censor_end - end_Bx1, 0.0)
  return jnp.where(last_BxN, -tpp.log_survival(remaining_Bx1, outputs.b,
                                               outputs.w), 0.0)


def censor_end_of(train_config) -> float:
  """`train.censor_end` (0.0 when absent: configs written before it)."""
  value = train_config.get('censor_end', 0.0)
  try:
    value = float(value)
  except (TypeError, ValueError):
    value = math.nan
  if not math.isfinite(value) or value < 0:
    raise errors.ConfigError(
        f'train.censor_end must be a finite time >= 0 (0: off, Eq. 8 as the '
        f'paper); got {train_config.get("censor_end")!r}.')
  return value


def check_censoring(censor_end: float, splits: splits_lib.Splits,
                     batchers) -> None:
  """Every cascade must end by `censor_end` and reach the model whole."""
  if censor_end <= 0:
    return
  for (name, data), batcher in zip(splits.items(), batchers):
    late = [c for c in data.cascades
            if float(c.times[-1] - c.times[0]) > censor_end]
    if late:
      c = late[0]
      raise errors.ConfigError(
          f'train.censor_end={censor_end:g} but {len(late)} {name} cascades '
          f'have events later than that after their first event (cascade '
          f'{c.id!r}: last event at {float(c.times[-1] - c.times[0]):g}); '
          'set train.censor_end to the end of the observation window (>= the '
          'latest event) or 0.')
    if batcher is not None and batcher.report.num_truncated:
      raise errors.ConfigError(
          f'train.censor_end needs whole cascades, but data.max_events='
          f'{batcher.lengths.max()} truncated {batcher.report.num_truncated} '
          f'{name} cascades; set data.max_events=0 or train.censor_end=0.')


@functools.lru_cache(maxsize=None)
def _jitted_censored_sum(graphdef, censor_end: float):
  def total(params, users, gaps, mask, calendar):
    out = nnx.merge(graphdef, params)(users, gaps, mask, calendar)
    return jnp.sum(censored_nll(out, gaps, mask, censor_end))
  return jax.jit(total)


def censored_per_event(graphdef, params, batcher: batching.CascadeBatcher,
                       censor_end: float, mesh: Mesh | None = None) -> float:
  """Sum of `censored_nll` over `batcher`'s cascades / its next events."""
  fn = _jitted_censored_sum(graphdef, float(censor_end))
  sums = [fn(params, *evaluate_lib.model_inputs(
      parallel.device_batch(batch, mesh))) for batch in batcher.batches()]
  events = int(batcher.lengths.sum() - len(batcher.lengths))
  return float(np.sum(jax.device_get(sums))) / max(events, 1)
