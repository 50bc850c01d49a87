"""Evaluation loop for any next-event model (CYAN-RNN, RMTPP, baselines).

The predict interface
---------------------
A model is anything with

    predict(batch: cyan_rcbm.data.batching.Batch)
        -> (scores_BxNxU | None, expected_gap_BxN | None)
        or (scores_BxNxU | None, expected_gap_BxN | None, nll_BxN | None)
        or (scores_BxNxU | None, expected_gap_BxN | None, nll_BxN | None,
            extras: dict[str, array [B, N]])

where position k of every array is the prediction for event k+1 of the
row's cascade, made from events 1..k only (`batch.users`, `batch.gaps`,
`batch.times`, `batch.calendar` up to position k; `batch.index` says which
cascade of the data set a row holds, -1 for an empty padding row):

* `scores_BxNxU`: any score per candidate user, higher = more likely
  (log-probabilities, probabilities, counts...). The evaluator itself drops
  users already active at positions <= k from the candidates, so a model need
  not mask them. None if the model does not predict users.
* `expected_gap_BxN`: predicted `t_{k+1} - t_k` in the data's time unit
  (after `data.time_scale`). None if the model does not predict times.
* `nll_BxN` (optional): `-log p(u_{k+1}, t_{k+1} | history)`, for
  `nll_per_event`.
* a 4th element (optional): dict name -> per-position array [B, N]; the
  result gets each name with its mean over the next events (e.g. the user
  and time parts of the NLL).

Arrays may be numpy or jax; values at positions without a next event are
ignored. `evaluate` returns `metrics.compute_metrics`'s dict (see there).
`ModelPredictor` (CYAN-RNN / RMTPP) also has `predict_scored`, which fuses
prediction and scoring into one compiled call; `evaluate` uses it when a
predictor has it.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cyan_rcbm.cyan import metrics
from cyan_rcbm.cyan import model as model_lib
from cyan_rcbm.cyan import tpp
from cyan_rcbm.data import batching
from cyan_rcbm.data import types


class Predictor(Protocol):
  def predict(self, batch: batching.Batch) -> tuple[Any, ...]:
    ...


def _score(scores_BxNxU, gap_BxN, nll_BxN, extras, users_BxN, mask_BxN,
           exclude_active=True):
  """Ranks and masked sums of one batch (None passes through)."""
  out = {}
  if scores_BxNxU is not None:
    out['greater'], out['ties'], _ = metrics.target_ranks(
        scores_BxNxU, users_BxN, mask_BxN, exclude_active=exclude_active)
  _, has_next = metrics.next_targets(users_BxN, mask_BxN)
  if gap_BxN is not None:
    out['gap'] = jnp.asarray(gap_BxN, jnp.float32)
  if nll_BxN is not None:
    out['nll'] = jnp.asarray(nll_BxN, jnp.float32)
  out['extras'] = {k: jnp.sum(jnp.where(has_next, v, 0.0))
                   for k, v in extras.items()}
  return out


_score_batch = jax.jit(_score, static_argnames=('exclude_active',))


def _next_gaps(batch: batching.Batch) -> np.ndarray:
  return np.concatenate([batch.gaps[:, 1:], np.zeros_like(batch.gaps[:, :1])],
                        axis=1)


def evaluate(predictor: Predictor,
             data: types.CascadeDataset | batching.CascadeBatcher, *,
             batch_size: int = 256, max_events: int = 0,
             exclude_active: bool = True, return_events: bool = False):
  """Scores `predictor` on every next event of every cascade of `data`.

  Args:
    predictor: an object with the predict interface (module docstring).
    data: a data set (batched here with `batch_size`, `max_events`) or a
      ready `CascadeBatcher` (its evaluation order is used).
    batch_size, max_events: batching of a data set.
    exclude_active: rank only users not yet active in the cascade.
    return_events: also return the per-event arrays (`index`: cascade,
      `position`: k, `rank`, `ties`, `pred_gap`, `true_gap`, `nll`).

  Returns:
    the metrics dict, or `(metrics, events)` with `return_events`.
  """
  if hasattr(data, 'batches'):  # a CascadeBatcher (or anything like it)
    batcher = data
  else:
    batcher = batching.CascadeBatcher(data, batch_size=batch_size,
                                      max_events=max_events)
  parts = []  # device arrays, fetched at the end (keeps dispatch async)
  fused = getattr(predictor, 'predict_scored', None)
  for batch in batcher.batches():
    if fused is not None:  # prediction and scoring in one compiled call
      scored = fused(batch, exclude_active)
    else:
      out = tuple(predictor.predict(batch)) + (None, {})
      scored = _score_batch(out[0], out[1], out[2], out[3] or {}, batch.users,
                            batch.mask, exclude_active=exclude_active)
    parts.append((batch, scored))
  cols = {k: [] for k in ('index', 'position', 'rank', 'ties', 'pred_gap',
                          'true_gap', 'nll', 'mask')}
  extra_sums = {}
  have = dict(greater=True, gap=True, nll=True)
  for batch, scored in jax.device_get(parts):
    for k, v in scored['extras'].items():
      extra_sums[k] = extra_sums.get(k, 0.0) + float(v)
    b, n = batch.users.shape
    cols['index'].append(np.repeat(batch.index[:, None], n, 1))
    cols['position'].append(np.broadcast_to(np.arange(n), (b, n)))
    has_next = np.zeros((b, n), bool)
    has_next[:, :-1] = batch.mask[:, 1:]
    cols['mask'].append(has_next)
    cols['true_gap'].append(_next_gaps(batch))
    for key in have:
      have[key] &= key in scored
    if 'greater' in scored:
      cols['rank'].append(scored['greater'] + 1)
      cols['ties'].append(scored['ties'])
    if 'gap' in scored:
      cols['pred_gap'].append(scored['gap'].astype(np.float64))
    if 'nll' in scored:
      cols['nll'].append(scored['nll'].astype(np.float64))
  flat = {k: (np.concatenate([np.ravel(a) for a in v]) if v else None)
          for k, v in cols.items()}
  if not have['greater']:
    flat['rank'] = flat['ties'] = None
  if not have['gap']:
    flat['pred_gap'] = None
  if not have['nll']:
    flat['nll'] = None
  mask = flat['mask'] if flat['mask'] is not None else np.zeros(0, bool)
  result = metrics.compute_metrics(
      flat['rank'], flat['pred_gap'], flat['true_gap'], flat['nll'], mask,
      ties=flat['ties'])
  for k, v in extra_sums.items():
    result[k] = v / max(result['num_events'], 1)
  if not return_events:
    return result
  events = {k: (v[mask] if v is not None else None) for k, v in flat.items()
            if k != 'mask'}
  return result, events


def model_inputs(batch: batching.Batch) -> tuple:
  """The arrays the model reads: `(users, gaps, mask, calendar or None)`."""
  return batch.users, batch.gaps, batch.mask, batch.calendar


def _model_predict(graphdef, params, users, gaps, mask, calendar):
  model = nnx.merge(graphdef, params)
  out = model(users, gaps, mask, calendar)
  user_nll, time_nll, _ = model_lib.event_nll(out, users, gaps, mask)
  return (out.log_probs, tpp.expected_gap(out.b, out.w),
          user_nll + time_nll, user_nll, time_nll)


@functools.lru_cache(maxsize=None)
def _jitted_predict(graphdef):
  return jax.jit(functools.partial(_model_predict, graphdef))


@functools.lru_cache(maxsize=None)
def _jitted_scored(graphdef, exclude_active: bool):
  def scored(params, users, gaps, mask, calendar):
    log_probs, gap, nll, user_nll, time_nll = _model_predict(
        graphdef, params, users, gaps, mask, calendar)
    return _score(log_probs, gap, nll, {'user_nll_per_event': user_nll,
                                        'time_nll_per_event': time_nll},
                  users, mask, exclude_active)
  return jax.jit(scored)


@functools.lru_cache(maxsize=None)
def _jitted_alignments(graphdef):
  def align(params, users, gaps, mask, calendar):
    model = nnx.merge(graphdef, params)
    return model(users, gaps, mask, calendar, return_alignments=True).alpha
  return jax.jit(align)


class ModelPredictor:
  """The predict interface for a `CyanRNN` given as `(graphdef, params)`.

  Compiled functions are cached per graphdef, so a new predictor for new
  params (every validation pass) does not recompile.
  """

  def __init__(self, graphdef, params):
    self.graphdef = graphdef
    self.params = params
    # looked up once: hashing a graphdef per batch costs time (docs/performance.md)
    self._predict = _jitted_predict(graphdef)
    self._scored = {flag: _jitted_scored(graphdef, flag)
                    for flag in (False, True)}

  def predict(self, batch: batching.Batch):
    log_probs, gap, nll, user_nll, time_nll = self._predict(
        self.params, *model_inputs(batch))
    return log_probs, gap, nll, {'user_nll_per_event': user_nll,
                                 'time_nll_per_event': time_nll}

  def predict_scored(self, batch: batching.Batch, exclude_active: bool):
    """`predict` and the evaluator's scoring fused in one compiled call."""
    return self._scored[bool(exclude_active)](self.params,
                                              *model_inputs(batch))

  def alignments(self, batch: batching.Batch) -> jax.Array:
    """alpha [B, N, L] (window layout, see `analysis.alignments_to_absolute`)."""
    return _jitted_alignments(self.graphdef)(self.params,
                                             *model_inputs(batch))
