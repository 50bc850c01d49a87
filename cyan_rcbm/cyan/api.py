"""The public CYAN-RNN / RMTPP API: train, load, evaluate, predict, sample.

    import cyan_rcbm as cr
    model = cr.train_cyan(cr.load_config('configs/cyan.py:tiny'), 'runs/tiny')
    model = cr.load_cyan('runs/tiny')           # later, from the workdir
    model.evaluate('test')                      # the metrics of eval_test.json
    model.predict([[(0.0, '3'), (0.4, '17')]], k=5)
    model.forecast_size(prefix, horizon=20.0)   # Monte Carlo size interval

A `CyanModel` holds the run's config, the model (`graphdef` + best
parameters), the data set's user vocabulary (dense id -> original token) and
whether the model reads calendar features. Cascades given to its methods are
either `Cascade`s with dense user ids (as `load_splits` returns them) or
sequences of `(time, user token)` pairs with the original tokens; times are
in the model's unit (the data's unit after `config.data.time_scale`). Bad
input raises `cyan_rcbm.errors.InputError` with a message naming the cascade
and the problem.

`predict`, `evaluate` and `infer_network` see what the training run's own
evaluation saw (the last `config.data.max_events` events when that is set);
`alignments` and `sample` use the whole prefix.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import warnings
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from cyan_rcbm import errors
from cyan_rcbm.common import checkpoint as checkpoint_lib
from cyan_rcbm.common import config_loading
from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.cyan import analysis
from cyan_rcbm.cyan import evaluate as evaluate_lib
from cyan_rcbm.cyan import model as model_lib
from cyan_rcbm.cyan import sampling
from cyan_rcbm.cyan import tpp
from cyan_rcbm.cyan import train as train_lib
from cyan_rcbm.data import batching
from cyan_rcbm.data import registry
from cyan_rcbm.data import splits as splits_lib
from cyan_rcbm.data import types

MODEL_INFO_FILE = 'cyan_model.json'  # vocab and input kind, next to config.json
SPLITS = ('train', 'valid', 'test')
# Default cap on new events per sample in size forecasts.
_FORECAST_MAX_EVENTS = 256


@dataclasses.dataclass(frozen=True)
class Prediction:
  """The model's law of the event after the last one of a cascade (SPEC A4).

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


def _predict(graphdef, mask_active, params, users, gaps, mask, calendar):
  out = sampling.next_event(nnx.merge(graphdef, params), users, gaps, mask,
                            calendar)
  logits = out.logits
  if mask_active:
    logits = jnp.where(sampling.active_mask(users, mask, logits.shape[-1]),
                       -jnp.inf, logits)
  return jax.nn.softmax(logits, axis=-1), tpp.expected_gap(out.b, out.w)


def _is_number(value: Any) -> bool:
  return (isinstance(value, (int, float, np.integer, np.floating))
          and not isinstance(value, (bool, np.bool_)))


class CyanModel:
  """A trained (or freshly initialised) CYAN-RNN / CYAN-RNN(cov) / RMTPP.

  Build one with `train_cyan`, `load_cyan` or `create_cyan`.

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
    self._token_ids = {t: i for i, t in enumerate(self.vocab)}
    if len(self._token_ids) != len(self.vocab):
      raise errors.InputError('the vocabulary has repeated tokens.')

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

  # -- input checking ----------------------------------------------------------

  def _check_cascade(self, c: types.Cascade) -> types.Cascade:
    """Validates a `Cascade` with dense ids; returns a clean copy."""
    cid = str(c.id)
    users, times = np.asarray(c.users), np.asarray(c.times)
    if users.ndim != 1 or times.shape != users.shape:
      raise errors.InputError(
          f'cascade {cid!r}: users and times must be 1-D of equal length; got '
          f'shapes {users.shape} and {times.shape}.')
    if not len(users):
      raise errors.InputError(
          f'cascade {cid!r} is empty: a cascade needs at least one event.')
    if not np.issubdtype(users.dtype, np.integer):
      raise errors.InputError(
          f'cascade {cid!r}: Cascade.users must be integer dense ids; got '
          f'dtype {users.dtype} (pass (time, token) pairs for tokens).')
    bad = (users < 0) | (users >= self.num_users)
    if bad.any():
      raise errors.InputError(
          f'cascade {cid!r}: user id {int(users[bad][0])} is not a dense id '
          f'of the model (0..{self.num_users - 1}); pass (time, token) pairs '
          'to use original user tokens.')
    if not (np.issubdtype(times.dtype, np.floating) or
            np.issubdtype(times.dtype, np.integer)):
      raise errors.InputError(
          f'cascade {cid!r}: times must be numbers; got dtype {times.dtype}.')
    times = times.astype(np.float64)
    self._check_times(cid, times)
    stamps = c.timestamps
    if self.calendar:
      if stamps is None:
        raise errors.InputError(
            f'cascade {cid!r} has no timestamps, but the model reads calendar '
            'features (config.model.calendar_embed > 0 and the training data '
            'had timestamps).')
      stamps = np.asarray(stamps, np.float64)
      if stamps.shape != times.shape or not np.all(np.isfinite(stamps)):
        raise errors.InputError(
            f'cascade {cid!r}: timestamps must be finite, one per event.')
    return types.Cascade(id=cid, users=users.astype(np.int32), times=times,
                         parents=c.parents, timestamps=stamps)

  @staticmethod
  def _check_times(cid: str, times: np.ndarray) -> None:
    if not np.all(np.isfinite(times)):
      raise errors.InputError(f'cascade {cid!r}: non-finite event time.')
    if np.any(np.diff(times) < 0):
      k = int(np.argmax(np.diff(times) < 0)) + 1
      raise errors.InputError(
          f'cascade {cid!r}: times are not sorted: event {k} at {times[k]} '
          f'comes before event {k - 1} at {times[k - 1]}.')

  def _from_pairs(self, events: Any, cid: str) -> types.Cascade:
    """A cascade given as `(time, user token)` pairs."""
    if isinstance(events, (str, bytes, dict)) or not hasattr(events,
                                                             '__iter__'):
      raise errors.InputError(
          f'cascade {cid!r}: expected a Cascade or a sequence of (time, user '
          f'token) pairs; got {type(events).__name__}.')
    times, users = [], []
    for j, event in enumerate(events):
      if not (isinstance(event, (tuple, list)) and len(event) == 2):
        raise errors.InputError(
            f'cascade {cid!r}: event {j} is {event!r}; expected a (time, user '
            'token) pair.')
      t, token = event
      if not _is_number(t):
        raise errors.InputError(
            f'cascade {cid!r}: event {j} has time {t!r} '
            f'({type(t).__name__}); expected a number.')
      uid = self._token_ids.get(str(token))
      if uid is None:
        shown = ', '.join(repr(v) for v in self.vocab[:5])
        raise errors.InputError(
            f'cascade {cid!r}: event {j} has unknown user token {token!r}: not '
            f'in the model\'s vocabulary of {self.num_users} users (e.g. '
            f'{shown}).')
      times.append(float(t))
      users.append(uid)
    if not users:
      raise errors.InputError(
          f'cascade {cid!r} is empty: a cascade needs at least one event.')
    return self._check_cascade(types.Cascade(
        id=cid, users=np.asarray(users, np.int32),
        times=np.asarray(times, np.float64)))

  def _as_cascade(self, obj: Any, cid: str = '0') -> types.Cascade:
    if isinstance(obj, types.Cascade):
      return self._check_cascade(obj)
    return self._from_pairs(obj, cid)

  def _as_cascades(self, cascades: Any) -> list[types.Cascade]:
    if isinstance(cascades, types.CascadeDataset):
      return list(self._remap(cascades).cascades)
    if isinstance(cascades, types.Cascade):
      return [self._check_cascade(cascades)]
    if isinstance(cascades, (str, bytes, dict)) or not hasattr(cascades,
                                                               '__iter__'):
      raise errors.InputError(
          'expected a list of cascades (Cascade objects or sequences of '
          f'(time, user token) pairs); got {type(cascades).__name__}.')
    out = [self._as_cascade(c, str(i)) for i, c in enumerate(cascades)]
    if not out:
      raise errors.InputError('no cascades given.')
    return out

  def _remap(self, data: types.CascadeDataset) -> types.CascadeDataset:
    """The data set in the model's dense ids (by token), validated."""
    if not len(data):
      raise errors.InputError(f'the data set {data.source!r} has no cascades.')
    if tuple(str(t) for t in data.vocab) == self.vocab:
      cascades = [self._check_cascade(c) for c in data.cascades]
      return dataclasses.replace(data, cascades=tuple(cascades),
                                 vocab=self.vocab)
    mapping = np.array([self._token_ids.get(str(t), -1) for t in data.vocab],
                       np.int64)
    cascades = []
    for c in data.cascades:
      users = np.asarray(c.users)
      if users.size and (users.min() < 0 or users.max() >= len(mapping)):
        raise errors.InputError(
            f'cascade {c.id!r}: user id out of range of its data set\'s '
            f'vocabulary ({len(mapping)} users).')
      ids = mapping[users]
      if (ids < 0).any():
        token = data.vocab[int(users[ids < 0][0])]
        raise errors.InputError(
            f'cascade {c.id!r}: user token {token!r} is unknown to the model '
            f'(its vocabulary has {self.num_users} users).')
      cascades.append(self._check_cascade(dataclasses.replace(
          c, users=ids.astype(np.int32))))
    edges = None
    if data.edges is not None and len(data.edges):
      e = mapping[np.asarray(data.edges)]
      edges = e[(e >= 0).all(1)].astype(np.int32)  # edges among known users
    return dataclasses.replace(data, cascades=tuple(cascades),
                               vocab=self.vocab, edges=edges)

  def _dataset(self, data: Any) -> types.CascadeDataset:
    if isinstance(data, str):
      if data not in SPLITS:
        raise errors.InputError(
            f'unknown split {data!r}; expected one of {SPLITS} or a '
            'CascadeDataset.')
      data = getattr(self.splits(), data)
    if isinstance(data, types.CascadeDataset):
      return self._remap(data)
    return types.CascadeDataset(cascades=tuple(self._as_cascades(data)),
                                vocab=self.vocab, time_unit=self.time_unit)

  def _eval_batcher(self, data: types.CascadeDataset, truncate: bool = True
                    ) -> batching.CascadeBatcher:
    """Batches like the training run's evaluation (`train.make_batchers`).

    The same shapes as the run's evaluation, so that its compiled functions
    are reused; `truncate=False` ignores `data.max_events`.
    """
    b = self.config.batching
    max_events = int(self.config.data.max_events) if truncate else 0
    longest = max(len(c) for c in data.cascades)
    if max_events:
      longest = min(longest, max_events)
    buckets = tuple(b.bucket_lengths)
    if not buckets or max(buckets) < longest:
      buckets = batching.bucket_lengths_for(longest, b.min_bucket,
                                            b.bucket_growth, b.fine_until)
    return batching.CascadeBatcher(
        data, batch_size=b.eval_batch_size, max_events=max_events,
        bucket_lengths=buckets, max_batch_events=b.max_batch_events,
        calendar=self.calendar)

  def _predictor(self) -> evaluate_lib.ModelPredictor:
    return evaluate_lib.ModelPredictor(self.graphdef, self.params)

  # -- evaluation and prediction -----------------------------------------------

  def evaluate(self, data: types.CascadeDataset | str | Sequence[Any]
               ) -> dict[str, Any]:
    """Next-event metrics of every event of `data` (SPEC A6).

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
    """The next-event law after the last event of each cascade (SPEC A4).

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
    data = types.CascadeDataset(cascades=tuple(self._as_cascades(cascades)),
                                vocab=self.vocab, time_unit=self.time_unit)
    b = self.config.batching
    batcher = batching.CascadeBatcher(
        data, batch_size=b.eval_batch_size,
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
    c = self._as_cascade(cascade)
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
    """Influence counts from attention (paper Fig. 6, SPEC A6).

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
    """`infer_network` scored against the true graph / parents (SPEC A6).

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
    """Continuations of a partially observed cascade (SPEC A4, Eqs. 2-8).

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
    c = self._as_cascade(prefix)
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
                    mask_active: bool = True) -> sampling.SizeForecast:
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
    """
    return self.forecast_sizes(
        [prefix], horizon=horizon, num_samples=num_samples, level=level,
        seed=seed,
        observed_until=None if observed_until is None else [observed_until],
        max_events=max_events, mask_active=mask_active)[0]

  def forecast_sizes(self, prefixes: Any, *, horizon: float,
                     num_samples: int = 200, level: float = 0.9,
                     seed: int = 0,
                     observed_until: Sequence[float] | None = None,
                     max_events: int | None = None,
                     mask_active: bool = True
                     ) -> list[sampling.SizeForecast]:
    """`forecast_size` for many prefixes in one batched sampling run."""
    level = sampling.check_real('level', level)
    if not 0 < level < 1:
      raise errors.InputError(f'level must be in (0, 1); got {level}.')
    horizon = sampling.check_real('horizon', horizon, positive=True,
                                   allow_inf=True)
    cascades = self._as_cascades(prefixes)
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
    return sampling.size_forecasts(
        sizes, observed, cont.truncated.reshape(len(cascades), num_samples),
        level=level, horizon=horizon)


# -- building, training and loading ---------------------------------------------


def _as_config(config: Any) -> ml_collections.ConfigDict:
  if isinstance(config, str):
    config = config_loading.load_config(config)
  if not isinstance(config, ml_collections.ConfigDict):
    raise errors.InputError(
        'config must be an ml_collections.ConfigDict (e.g. '
        "cr.load_config('configs/cyan.py:tiny')) or a 'path[:variant]' "
        f'string; got {type(config).__name__}.')
  if config.get('task') != 'cyan':
    raise errors.ConfigError(
        f"config.task is {config.get('task')!r}; train_cyan needs a CYAN "
        'config (configs/cyan.py).')
  return config


def create_cyan(config: ml_collections.ConfigDict | str,
                vocab: Sequence[str] | int, *, calendar: bool = False,
                seed: int | None = None) -> CyanModel:
  """An untrained model with the initial parameters of a run (SPEC A4).

  Args:
    config: a CYAN config or 'configs/cyan.py:variant'.
    vocab: the user tokens, or U (tokens '0'..'U-1').
    calendar: whether the model reads calendar features.
    seed: parameter-init seed (default `config.seed`).
  """
  config = _as_config(config)
  if isinstance(vocab, (int, np.integer)):
    vocab = [str(i) for i in range(int(vocab))]
  # Eager construction: after the first model, building another costs
  # milliseconds, where the jitted `init_params` compiles once per config.
  graphdef, state = nnx.split(model_lib.create_model(
      config.model, len(vocab), calendar=calendar,
      seed=config.seed if seed is None else seed), nnx.Param)
  return CyanModel(config, graphdef, state.to_pure_dict(), vocab,
                   calendar=calendar, time_unit='unspecified')


def _model_info(config: ml_collections.ConfigDict, workdir: str
                ) -> tuple[dict[str, Any], splits_lib.Splits | None]:
  """Vocab, calendar flag and time unit of a run (cached in the workdir)."""
  path = os.path.join(workdir, MODEL_INFO_FILE)
  data_json = json.loads(json.dumps(workdir_lib._to_jsonable(config.data)))
  if os.path.exists(path):
    with open(path) as f:
      info = json.load(f)
    if info.get('data') == data_json:
      return info, None
  splits = registry.load_splits(config.data)
  calendar = config.model.calendar_embed > 0 and all(
      c.timestamps is not None for _, d in splits.items() for c in d.cascades)
  info = dict(vocab=list(splits.train.vocab), calendar=bool(calendar),
              time_unit=splits.test.time_unit, data=data_json)
  try:
    workdir_lib.dump_json(info, path)
  except OSError:  # a read-only run directory: recompute next time
    pass
  return info, splits


def load_cyan(workdir: str, *, step: int | None = None) -> CyanModel:
  """The best-validation model of a (finished or partial) CYAN run (SPEC A4).

  Reads `workdir/config.json` and the orbax checkpoint (`best_params`; the
  parameters early stopping on the validation NLL of Eq. 8 selected).

  Args:
    workdir: a run directory of `train_cyan` / `python -m cyan_rcbm.main`.
    step: which checkpoint (default: the latest).
  """
  if not isinstance(workdir, (str, os.PathLike)):
    raise errors.InputError(
        f'workdir must be a path; got {type(workdir).__name__}.')
  workdir = os.fspath(workdir)
  config_path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if not os.path.exists(config_path):
    raise errors.InputError(
        f'{workdir} has no {workdir_lib.CONFIG_FILE}: not a run directory. '
        'Train first (cr.train_cyan(config, workdir) or python -m '
        'cyan_rcbm.main --config=configs/cyan.py:... --workdir=...).')
  with open(config_path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  if config.get('task') != 'cyan':
    raise errors.InputError(
        f"{config_path}: task is {config.get('task')!r}, not a CYAN run.")
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise errors.InputError(
        f'{workdir} has no checkpoints yet: the run has not finished an '
        'epoch (or a checkpoint_every interval).')
  info, splits = _model_info(config, workdir)
  graphdef, params = model_lib.init_params(
      config.model, len(info['vocab']), calendar=info['calendar'],
      seed=config.seed)
  tx = train_lib.create_optimizer(config.train)
  template = dict(params=params, opt_state=tx.init(params),
                  best_params=params)
  ckpt = checkpoint_lib.Checkpointer(workdir)
  with warnings.catch_warnings():  # orbax: sharding read from the checkpoint
    warnings.filterwarnings('ignore', message='Sharding info not provided')
    restored = ckpt.restore(template, step=step)
  if restored is None:
    raise errors.InputError(f'{workdir} has no checkpoint to load.')
  step, state, _ = restored
  eval_path = os.path.join(workdir, train_lib.EVAL_FILE)
  test_metrics = None
  if os.path.exists(eval_path):
    with open(eval_path) as f:
      test_metrics = json.load(f)
  return CyanModel(config, graphdef, state['best_params'], info['vocab'],
                   calendar=info['calendar'], time_unit=info['time_unit'],
                   workdir=workdir, step=int(step),
                   test_metrics=test_metrics, splits=splits)


def train_cyan(config: ml_collections.ConfigDict | str,
               workdir: str) -> CyanModel:
  """Trains (or resumes) a CYAN run and returns its best model (SPEC A4).

  Minimises the NLL of Eq. 8 with Adam, early stopping on the validation
  NLL (`cyan_rcbm.cyan.train.train_and_evaluate`: writes `config.json`,
  `metrics.jsonl`, checkpoints, `eval_test.json` and the analyses to
  `workdir`), then `load_cyan(workdir)`.

  Args:
    config: a CYAN config (`cr.load_config('configs/cyan.py:tiny')`) or its
      'path[:variant]' string.
    workdir: the run directory; re-running the same config resumes.
  """
  config = _as_config(config)
  if not isinstance(workdir, (str, os.PathLike)) or not os.fspath(workdir):
    raise errors.InputError(f'workdir must be a non-empty path; got '
                            f'{workdir!r}.')
  train_lib.train_and_evaluate(config, os.fspath(workdir))
  return load_cyan(os.fspath(workdir))
