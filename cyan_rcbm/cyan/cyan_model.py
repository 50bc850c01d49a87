"""`CyanModel`: a CYAN-RNN / RMTPP model with its vocabulary (equations.md A4).

Built by `cyan_rcbm.cyan.api` (`train_cyan`, `load_cyan`, `create_cyan`). A
`CyanModel` holds the run's config, the model (`graphdef` + best
parameters), the data set's user vocabulary (dense id -> original token) and
whether the model reads calendar features. Cascades given to its methods are
either `Cascade`s with dense user ids (as `load_splits` returns them) or
sequences of `(time, user token)` pairs with the original tokens; times are
in the model's unit (the data's unit after `config.data.time_scale`). Bad
input raises `cyan_rcbm.errors.InputError` with a message naming the cascade
and the problem (`cyan_rcbm.cyan.api_inputs`).

`predict`, `evaluate` and `infer_network` see what the training run's own
evaluation saw (the last `config.data.max_events` events when that is set);
`alignments` and `sample` use the whole prefix.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from cyan_rcbm import errors
from cyan_rcbm.common import backend_defaults
from cyan_rcbm.common import precision
from cyan_rcbm.cyan import analysis
from cyan_rcbm.cyan import api_inputs
from cyan_rcbm.cyan import evaluate as evaluate_lib
from cyan_rcbm.cyan import event_step
from cyan_rcbm.cyan import recalibration
from cyan_rcbm.cyan import sampling
from cyan_rcbm.cyan import tpp
from cyan_rcbm.data import batching
from cyan_rcbm.data import registry
from cyan_rcbm.data import splits as splits_lib
from cyan_rcbm.data import types

# Default cap on new events per sample in size forecasts.
_FORECAST_MAX_EVENTS = 256


@dataclasses.dataclass(frozen=True)
class Prediction:
  """The model's law of the event after the last one of a cascade (equations.md
  A4).

  Attributes:
    cascade_id: the cascade's id ('0', '1', ... for cascades given as pairs).
    users: the top-k candidate users as original tokens, most likely first
      (users already active are not candidates when the model masks them).
    user_ids: their dense ids.
    probs: `p(u_{N+1} = user | H_N)`, descending (sums to <= 1).
    expected_gap: `E[t_{N+1} - t_N] = (1/w) e^a E_1(a)`, `a = e^b / w`
      (Eq. 2, closed form), in the model's time unit.
    expected_time: `t_N + expected_gap`.
  """
  cascade_id: str
  users: tuple[str, ...]
  user_ids: np.ndarray
  probs: np.ndarray
  expected_gap: float
  expected_time: float


@functools.lru_cache(maxsize=None)
def _jitted_predict(graphdef, mask_active: bool):
  """`(params, users, gaps, mask, calendar) -> (probs [B, U], E[d] [B])`."""
  return jax.jit(functools.partial(_predict, graphdef, mask_active))


@precision.exact
def _predict(graphdef, mask_active, params, users, gaps, mask, calendar):
  out = event_step.next_event(nnx.merge(graphdef, params), users, gaps,
                              mask, calendar)
  logits = out.logits
  if mask_active:
    logits = jnp.where(event_step.active_mask(users, mask, logits.shape[-1]),
                       -jnp.inf, logits)
  return jax.nn.softmax(logits, axis=-1), tpp.expected_gap(out.b, out.w)


class CyanModel:
  """A trained (or freshly initialised) CYAN-RNN / CYAN-RNN(cov) / RMTPP.

  Build one with `train_cyan`, `load_cyan` or `create_cyan` (`api`).

  Attributes:
    config: the run's config (configs/cyan.py).
    graphdef, params: the Flax NNX model split into structure and a pure
      dict of parameters (the best-validation parameters of a run).
    vocab: original user tokens; `vocab[i]` is dense id i.
    calendar: whether the model reads calendar features (cascades then need
      `timestamps`).
    time_unit: the unit of times (after `config.data.time_scale`).
    workdir, step: where and at which step the parameters were loaded.
    test_metrics: the run's `eval_test.json`, if any.
  """

  def __init__(self, config: ml_collections.ConfigDict, graphdef, params,
               vocab: Sequence[str], *, calendar: bool = False,
               time_unit: str = 'unspecified', workdir: str | None = None,
               step: int | None = None,
               test_metrics: dict[str, Any] | None = None,
               splits: splits_lib.Splits | None = None):
    self.config = config
    self.graphdef = graphdef
    self.params = params
    self.vocab = tuple(str(t) for t in vocab)
    self.calendar = bool(calendar)
    self.time_unit = time_unit
    self.workdir = workdir
    self.step = step
    self.test_metrics = test_metrics
    self._splits = splits
    self._inputs = api_inputs.CascadeInputs(
        self.vocab, calendar=self.calendar, time_unit=time_unit)

  def __repr__(self) -> str:
    return (f'CyanModel(variant={self.variant!r}, users={self.num_users}, '
            f'workdir={self.workdir!r}, step={self.step})')

  @property
  def num_users(self) -> int:
    return len(self.vocab)

  @property
  def variant(self) -> str:
    return self.config.model.variant

  @property
  def time_scale(self) -> float:
    """Seconds (or source units) per model time unit (`data.time_scale`)."""
    return float(self.config.data.time_scale)

  def splits(self) -> splits_lib.Splits:
    """The run's train/valid/test data (`config.data`, loaded once)."""
    if self._splits is None:
      self._splits = registry.load_splits(self.config.data)
    return self._splits

  def user_tokens(self, ids: Sequence[int] | np.ndarray) -> list[str]:
    """Original tokens of dense user ids."""
    return [self.vocab[int(i)] for i in np.asarray(ids).ravel()]

  # -- inputs (cyan_rcbm.cyan.api_inputs) --------------------------------------

  def _dataset(self, data: Any) -> types.CascadeDataset:
    return self._inputs.dataset(data, self.splits)

  def _eval_batcher(self, data: types.CascadeDataset, truncate: bool = True
                    ) -> batching.CascadeBatcher:
    return api_inputs.eval_batcher(self.config, data, calendar=self.calendar,
                                   truncate=truncate)

  def _predictor(self) -> evaluate_lib.ModelPredictor:
    return evaluate_lib.ModelPredictor(self.graphdef, self.params)

  # -- evaluation and prediction -----------------------------------------------

  def evaluate(self, data: types.CascadeDataset | str | Sequence[Any]
               ) -> dict[str, Any]:
    """Next-event metrics of every event of `data` (equations.md A6).

    Acc@1/5, MRR, hits@k, map@k of the next user (ranked among users not yet
    active), RMSE of the expected next time (Eq. 2 closed form) and the NLL
    per event of Eq. 8: the keys of the training run's `eval_test.json`.

    Args:
      data: a `CascadeDataset` (mapped to the model's ids by token), a split
        name of the run's data ('train', 'valid', 'test'), or a list of
        cascades.
    """
    return evaluate_lib.evaluate(self._predictor(),
                                 self._eval_batcher(self._dataset(data)))

  def predict(self, cascades: Any, k: int = 10) -> list[Prediction]:
    """The next-event law after the last event of each cascade (equations.md
    A4).

    Next user: `p(u_{N+1} | H_N) = softmax(g([x_N; T_N; s_N]))` (Eqs. 1-7),
    with users already active given probability 0 when the model masks
    them; next time: `t_N + E[d]`, `E[d] = (1/w) e^a E_1(a)` (Eq. 2).

    Args:
      cascades: a list of cascades (`Cascade`s with dense ids, or sequences
        of `(time, user token)` pairs), a single `Cascade`, or a
        `CascadeDataset`.
      k: how many candidate users to return (fewer if fewer are possible).

    Returns:
      One `Prediction` per cascade, in order; users as original tokens.
    """
    k = sampling.check_int('k', k, 1)
    data = types.CascadeDataset(
        cascades=tuple(self._inputs.as_cascades(cascades)), vocab=self.vocab,
        time_unit=self.time_unit)
    b = self.config.batching
    batcher = batching.CascadeBatcher(
        data, batch_size=backend_defaults.resolve(
            b.eval_batch_size, 'batching.eval_batch_size'),
        max_events=int(self.config.data.max_events), min_bucket=8,
        bucket_growth=2.0, calendar=self.calendar)
    fn = _jitted_predict(self.graphdef, bool(self.config.model.mask_active))
    outs = []
    for batch in batcher.batches():
      outs.append((batch, fn(self.params, batch.users, batch.gaps, batch.mask,
                             batch.calendar)))
    result: list[Prediction | None] = [None] * len(data)
    for batch, (probs, gap) in jax.device_get(outs):
      for row, i in enumerate(batch.index):
        if i < 0:
          continue
        p = np.asarray(probs[row], np.float64)
        order = np.argsort(-p, kind='stable')
        if self.config.model.mask_active:
          active = np.zeros(self.num_users, bool)
          active[batch.users[row][batch.mask[row]]] = True
          order = order[~active[order]]
        top = order[:k]
        cascade = data.cascades[i]
        result[i] = Prediction(
            cascade_id=str(cascade.id), users=tuple(self.user_tokens(top)),
            user_ids=top.astype(np.int32), probs=p[top],
            expected_gap=float(gap[row]),
            expected_time=float(cascade.times[-1]) + float(gap[row]))
    return result  # type: ignore[return-value]

  def alignments(self, cascade: Any) -> np.ndarray:
    """The attention `alpha_{k,i}` of one cascade (Eq. 4; paper Fig. 5).

    Args:
      cascade: a `Cascade` or a sequence of `(time, user token)` pairs.

    Returns:
      float32 [N, N]: row k is the alignment of the step that predicts event
      k+1 over events `max(0, k-l+1) .. k` (zero elsewhere); each row sums
      to 1.
    """
    self._require_attention('alignments')
    c = self._inputs.as_cascade(cascade)
    batcher = self._eval_batcher(
        types.CascadeDataset(cascades=(c,), vocab=self.vocab), truncate=False)
    alpha = np.asarray(self._predictor().alignments(next(batcher.batches())))
    return analysis.alignments_to_absolute(alpha[0, :len(c)])

  def _require_attention(self, what: str) -> None:
    if self.variant == 'rmtpp':
      raise errors.InputError(
          f'the rmtpp variant has no attention ({what} reads the '
          'attention); use model.variant '
          "'cyan' or 'cyan_cov'.")

  def _attention_parents(self, data: Any):
    self._require_attention('network inference')
    dataset = self._dataset(data)
    parents = analysis.collect_alignments(self._predictor(),
                                          self._eval_batcher(dataset))
    return dataset, parents

  def infer_network(self, data: Any) -> np.ndarray:
    """Influence counts from attention (paper Fig. 6, equations.md A6).

    For every predicted event k+1 the parent is the user of `argmax_i
    alpha_{k,i}`; `counts[v, u]` is how often v was u's parent over all
    cascades of `data`. Threshold it (e.g. at `network_report`'s best-F1
    threshold) for an adjacency matrix.

    Args:
      data: as for `evaluate`.

    Returns:
      int64 [U, U] counts, rows = influencer, columns = influenced.
    """
    dataset, parents = self._attention_parents(data)
    return analysis.infer_network(parents, self.num_users, dataset.edges)[1]

  def network_report(self, data: Any) -> dict[str, Any]:
    """`infer_network` scored against the true graph / parents (equations.md
    A6).

    Returns precision, recall and F1 at the best-F1 threshold and the PR-AUC
    against `data.edges` (when given), the same against the true
    (parent -> user) pairs, and the parent accuracy (when cascades have
    parents); see `cyan_rcbm.cyan.analysis.infer_network`.
    """
    dataset, parents = self._attention_parents(data)
    return analysis.infer_network(parents, self.num_users, dataset.edges)[0]

  # -- sampling ----------------------------------------------------------------

  def sample(self, prefix: Any, *, num_samples: int, max_events: int,
             horizon: float | None = None, seed: int = 0,
             mask_active: bool = True,
             observed_until: float | None = None) -> list[types.Cascade]:
    """Continuations of a partially observed cascade (equations.md A4, Eqs.
    2-8).

    Ancestral sampling from the model: next user from the softmax with
    active users masked (`mask_active`), next gap from the closed-form
    inverse CDF of Eq. 2; see `cyan_rcbm.cyan.sampling`.

    Args:
      prefix: the observed events (`Cascade` or `(time, token)` pairs).
      num_samples: continuations to draw.
      max_events: at most this many new events each.
      horizon: drop events after `start + horizon` (None: no limit); `start`
        is `observed_until`, default the prefix's last time.
      seed: random seed (same seed, same samples).
      mask_active: a user activates at most once; stop when all are active.
      observed_until: the prefix is complete up to this time (>= its last
        time): the first new event comes after it.

    Returns:
      `num_samples` cascades: the prefix followed by the new events (dense
      ids; `user_tokens` maps them to tokens), ids `'<id>/sample<j>'`.
    """
    c = self._inputs.as_cascade(prefix)
    cont = sampling.sample_continuations(
        self.graphdef, self.params, [c], num_samples=num_samples,
        max_events=max_events, horizon=horizon,
        observed_until=None if observed_until is None else [observed_until],
        seed=seed, mask_active=mask_active, calendar=self.calendar,
        time_scale=self.time_scale)
    return sampling.continuation_cascades(c, cont, range(num_samples),
                                          time_scale=self.time_scale)

  def forecast_size(self, prefix: Any, *, horizon: float,
                    num_samples: int = 200, level: float = 0.9,
                    seed: int = 0, observed_until: float | None = None,
                    max_events: int | None = None,
                    mask_active: bool = True,
                    calibration: recalibration.ForecastCalibration | None
                    = None) -> sampling.SizeForecast:
    """Monte Carlo forecast of the size at `start + horizon` with an interval.

    Sizes of `num_samples` continuations (`sample`), summarised by their
    mean, median and the `level` interval of their quantiles.

    Args:
      prefix: the observed events.
      horizon: how far after `start` (`observed_until`, default the last
        event time) to count events; `math.inf` for the final size.
      num_samples: Monte Carlo samples.
      level: nominal coverage of the interval, in (0, 1).
      seed: random seed.
      observed_until: the prefix is complete up to this time.
      max_events: cap on new events per sample (default: every user not yet
        active, at most 256); `SizeForecast.truncated` says how many samples
        hit it.
      mask_active: a user activates at most once.
      calibration: if given (`calibrate_forecasts`, same horizon, prefix
        observed up to the same cut after its start), the interval is
        recalibrated on its held-out cascades (`calibrated=True`).
    """
    return self.forecast_sizes(
        [prefix], horizon=horizon, num_samples=num_samples, level=level,
        seed=seed,
        observed_until=None if observed_until is None else [observed_until],
        max_events=max_events, mask_active=mask_active,
        calibration=calibration)[0]

  def forecast_sizes(self, prefixes: Any, *, horizon: float,
                     num_samples: int = 200, level: float = 0.9,
                     seed: int = 0,
                     observed_until: Sequence[float] | None = None,
                     max_events: int | None = None,
                     mask_active: bool = True,
                     calibration: recalibration.ForecastCalibration | None
                     = None) -> list[sampling.SizeForecast]:
    """`forecast_size` for many prefixes in one batched sampling run."""
    level = sampling.check_level(level)
    horizon = sampling.check_real('horizon', horizon, positive=True,
                                   allow_inf=True)
    cascades = self._inputs.as_cascades(prefixes)
    if max_events is None:
      room = self.num_users - min(len(c) for c in cascades)
      max_events = max(1, min(room if mask_active else _FORECAST_MAX_EVENTS,
                              _FORECAST_MAX_EVENTS))
    num_samples = sampling.check_int('num_samples', num_samples, 1)
    cont = sampling.sample_continuations(
        self.graphdef, self.params, cascades, num_samples=num_samples,
        max_events=max_events, horizon=None if math.isinf(horizon) else
        horizon, observed_until=observed_until, seed=seed,
        mask_active=mask_active, calendar=self.calendar,
        time_scale=self.time_scale)
    observed = np.array([len(c) for c in cascades])
    sizes = observed[:, None] + cont.counts.reshape(len(cascades), num_samples)
    forecasts = sampling.size_forecasts(
        sizes, observed, cont.truncated.reshape(len(cascades), num_samples),
        level=level, horizon=horizon)
    return forecasts if calibration is None else calibration.apply(forecasts)

  def calibrate_forecasts(self, data: Any, *, cut: float, horizon: float,
                          num_samples: int = 200, seed: int = 0,
                          level: float = 0.9
                          ) -> recalibration.ForecastCalibration:
    """Recalibrates size forecasts on held-out cascades (Kuleshov et al.).

    Forecasts each cascade of `data` from its events up to `cut` after its
    first one, at `horizon` after that, and records where its true size
    falls in the sampled law (randomised PIT); pass the result as
    `calibration=` to `forecast_size(s)` to get intervals that cover at
    least `level` of new cascades like these, at this cut and horizon, as
    far as the samples reach (`cyan_rcbm.cyan.recalibration` says what is
    and is not guaranteed).

    Args:
      data: complete cascades the model was not trained on: a split name
        ('valid', 'test'), a `CascadeDataset` or a list of cascades.
      cut: observation window after each cascade's first event (> 0).
      horizon: forecast horizon after the cut (`math.inf`: final size).
      num_samples: Monte Carlo samples per forecast.
      seed: random seed.
      level: the highest interval level to support (it needs
        `recalibration.min_cascades(level)` cascades: 19 for 0.9).
    """
    return recalibration.fit_forecast_calibration(
        self, self._dataset(data).cascades, cut=cut, horizon=horizon,
        num_samples=num_samples, seed=seed, level=level)
