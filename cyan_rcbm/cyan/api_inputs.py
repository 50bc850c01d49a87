"""Cascades given to a `CyanModel`, checked and turned into model inputs.

Users pass cascades to `cyan_rcbm.cyan.cyan_model.CyanModel` either as
`Cascade`s with dense user ids, as sequences of `(time, user token)` pairs
with the original tokens, or as `CascadeDataset`s (mapped to the model's ids
by token). `CascadeInputs` validates them at this boundary (bad input raises
`cyan_rcbm.errors.InputError` naming the cascade and the problem) and
`eval_batcher` batches them like the training run's evaluation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import ml_collections
import numpy as np

from cyan_rcbm import errors
from cyan_rcbm.common import backend_defaults
from cyan_rcbm.data import batching
from cyan_rcbm.data import splits as splits_lib
from cyan_rcbm.data import types

SPLITS = ('train', 'valid', 'test')


def _is_number(value: Any) -> bool:
  return (isinstance(value, (int, float, np.integer, np.floating))
          and not isinstance(value, (bool, np.bool_)))


def _check_times(cid: str, times: np.ndarray) -> None:
  if not np.all(np.isfinite(times)):
    raise errors.InputError(f'cascade {cid!r}: non-finite event time.')
  if np.any(np.diff(times) < 0):
    k = int(np.argmax(np.diff(times) < 0)) + 1
    raise errors.InputError(
        f'cascade {cid!r}: times are not sorted: event {k} at {times[k]} '
        f'comes before event {k - 1} at {times[k - 1]}.')


class CascadeInputs:
  """Checks cascades against a model's vocabulary and input kind.

  Attributes:
    vocab: original user tokens; `vocab[i]` is dense id i.
    calendar: whether the model reads calendar features (cascades then need
      `timestamps`).
    time_unit: the unit of times, given to data sets built from lists.
    token_ids: token -> dense id.
  """

  def __init__(self, vocab: Sequence[str], *, calendar: bool = False,
               time_unit: str = 'unspecified'):
    self.vocab = tuple(str(t) for t in vocab)
    self.calendar = bool(calendar)
    self.time_unit = time_unit
    self.token_ids = {t: i for i, t in enumerate(self.vocab)}
    if len(self.token_ids) != len(self.vocab):
      raise errors.InputError('the vocabulary has repeated tokens.')

  @property
  def num_users(self) -> int:
    return len(self.vocab)

  def check_cascade(self, c: types.Cascade) -> types.Cascade:
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
    _check_times(cid, times)
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

  def from_pairs(self, events: Any, cid: str) -> types.Cascade:
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
      uid = self.token_ids.get(str(token))
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
    return self.check_cascade(types.Cascade(
        id=cid, users=np.asarray(users, np.int32),
        times=np.asarray(times, np.float64)))

  def as_cascade(self, obj: Any, cid: str = '0') -> types.Cascade:
    if isinstance(obj, types.Cascade):
      return self.check_cascade(obj)
    return self.from_pairs(obj, cid)

  def as_cascades(self, cascades: Any) -> list[types.Cascade]:
    if isinstance(cascades, types.CascadeDataset):
      return list(self.remap(cascades).cascades)
    if isinstance(cascades, types.Cascade):
      return [self.check_cascade(cascades)]
    if isinstance(cascades, (str, bytes, dict)) or not hasattr(cascades,
                                                               '__iter__'):
      raise errors.InputError(
          'expected a list of cascades (Cascade objects or sequences of '
          f'(time, user token) pairs); got {type(cascades).__name__}.')
    out = [self.as_cascade(c, str(i)) for i, c in enumerate(cascades)]
    if not out:
      raise errors.InputError('no cascades given.')
    return out

  def remap(self, data: types.CascadeDataset) -> types.CascadeDataset:
    """The data set in the model's dense ids (by token), validated."""
    if not len(data):
      raise errors.InputError(f'the data set {data.source!r} has no cascades.')
    if tuple(str(t) for t in data.vocab) == self.vocab:
      cascades = [self.check_cascade(c) for c in data.cascades]
      return dataclasses.replace(data, cascades=tuple(cascades),
                                 vocab=self.vocab)
    mapping = np.array([self.token_ids.get(str(t), -1) for t in data.vocab],
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
      cascades.append(self.check_cascade(dataclasses.replace(
          c, users=ids.astype(np.int32))))
    edges = None
    if data.edges is not None and len(data.edges):
      e = mapping[np.asarray(data.edges)]
      edges = e[(e >= 0).all(1)].astype(np.int32)  # edges among known users
    return dataclasses.replace(data, cascades=tuple(cascades),
                               vocab=self.vocab, edges=edges)

  def dataset(self, data: Any, splits: Callable[[], splits_lib.Splits]
              ) -> types.CascadeDataset:
    """`data` as a validated data set in the model's ids.

    Args:
      data: a `CascadeDataset` (remapped by token), a split name (one of
        `SPLITS`, read from `splits()`) or a list of cascades (`as_cascades`).
      splits: returns the run's train/valid/test data (called only for a
        split name).
    """
    if isinstance(data, str):
      if data not in SPLITS:
        raise errors.InputError(
            f'unknown split {data!r}; expected one of {SPLITS} or a '
            'CascadeDataset.')
      data = getattr(splits(), data)
    if isinstance(data, types.CascadeDataset):
      return self.remap(data)
    return types.CascadeDataset(cascades=tuple(self.as_cascades(data)),
                                vocab=self.vocab, time_unit=self.time_unit)


def eval_batcher(config: ml_collections.ConfigDict,
                 data: types.CascadeDataset, *, calendar: bool,
                 truncate: bool = True) -> batching.CascadeBatcher:
  """Batches like the training run's evaluation (`train.make_batchers`).

  The same shapes as the run's evaluation, so that its compiled functions
  are reused; `truncate=False` ignores `config.data.max_events`.
  """
  b = config.batching
  max_events = int(config.data.max_events) if truncate else 0
  longest = max(len(c) for c in data.cascades)
  if max_events:
    longest = min(longest, max_events)
  buckets = tuple(b.bucket_lengths)
  if not buckets or max(buckets) < longest:
    buckets = batching.bucket_lengths_for(longest, b.min_bucket,
                                          b.bucket_growth, b.fine_until)
  batch_size = backend_defaults.resolve(b.eval_batch_size,
                                        'batching.eval_batch_size')
  return batching.CascadeBatcher(
      data, batch_size=batch_size, max_events=max_events,
      bucket_lengths=buckets, max_batch_events=b.max_batch_events,
      calendar=calendar)
