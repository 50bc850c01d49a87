"""Padded, length-bucketed batches of cascades for CYAN-RNN (INTERFACES C).

A `Batch` holds `B` cascades padded to one of a few bucket lengths `N`, so
that a jitted step compiles once per bucket, never inside the loop:

* `users`    int32   [B, N]  dense user ids (0 on padding),
* `gaps`     float32 [B, N]  `t_k - t_{k-1}` (0 for the first event and
padding),
* `times`    float32 [B, N]  `t_k - t_1`, time since the cascade's first event,
* `mask`     bool    [B, N]  True on real events (a prefix of each row),
* `index`    int32   [B]     position of the cascade in the data set, -1 for
                             an empty padding row,
* `calendar` int32   [B, N, 7] or None: year, month, day, weekday, hour,
                             minute, second of each event (UTC), when every
                             cascade has absolute timestamps (equations.md A3),
* `parents`  int32   [B, N] or None: index of the parent event within the
                             row, -1 for a root, unknown or truncated parent.

Cascades are grouped by bucket so that a batch holds cascades of similar
length: one long cascade only lengthens its own batch. A bucket's leftover
cascades fill up the next (longer) batch, so only the last batch of a pass
has empty rows (mask 0). Training order is a pure function of
`(seed, epoch)` (a resumed run replays it); evaluation order (`seed=None`)
is fixed. `max_events = L > 0` keeps the last L events of each cascade;
`CascadeBatcher.report` counts what that truncated.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from cyan_rcbm import errors
from cyan_rcbm.data import types

CALENDAR_FIELDS = ('year', 'month', 'day', 'weekday', 'hour', 'minute',
                   'second')
# Embedding-table sizes per field; years count from 1970 and are clipped.
CALENDAR_SIZES = (100, 12, 31, 7, 24, 60, 60)


class Batch(NamedTuple):
  """One padded batch (see the module docstring for shapes and meaning)."""
  users: np.ndarray
  gaps: np.ndarray
  times: np.ndarray
  mask: np.ndarray
  index: np.ndarray
  calendar: np.ndarray | None = None
  parents: np.ndarray | None = None

  @property
  def num_events(self) -> int:
    return int(self.mask.sum())


@dataclasses.dataclass(frozen=True)
class BatchingReport:
  """What batching changed in the data (printed by the training loop)."""
  num_cascades: int
  num_events: int            # events kept
  num_truncated: int         # cascades cut to their last `max_events` events
  num_events_truncated: int  # events dropped by that cut
  bucket_lengths: tuple[int, ...]
  rows_per_bucket: tuple[int, ...]
  calendar: bool

  def __str__(self) -> str:
    text = (f'{self.num_cascades:,} cascades, {self.num_events:,} events, '
            f'buckets {list(self.bucket_lengths)}')
    if self.num_truncated:
      text += (f'; {self.num_truncated:,} cascades truncated to their last '
               f'events ({self.num_events_truncated:,} events dropped)')
    return text


def calendar_fields(timestamps: np.ndarray) -> np.ndarray:
  """int32 [N, 7] calendar fields (UTC) of absolute Unix-second timestamps."""
  seconds = np.floor(np.asarray(timestamps, np.float64)).astype(np.int64)
  days = np.floor_divide(seconds, 86400)
  in_day = seconds - days * 86400
  dt = days.astype('datetime64[D]')
  years = dt.astype('datetime64[Y]').astype(np.int64)  # since 1970
  months = dt.astype('datetime64[M]').astype(np.int64)
  out = np.stack([
      np.clip(years, 0, CALENDAR_SIZES[0] - 1),
      months % 12,
      (dt - dt.astype('datetime64[M]').astype('datetime64[D]')).astype(
          np.int64),
      (days + 3) % 7,  # 1970-01-01 was a Thursday; Monday = 0.
      in_day // 3600,
      (in_day % 3600) // 60,
      in_day % 60,
  ], axis=-1)
  return out.astype(np.int32)


def bucket_lengths_for(max_length: int, min_bucket: int = 8,
                       growth: float = 2.0, fine_until: int = 0
                       ) -> tuple[int, ...]:
  """Bucket lengths from `min_bucket` up to (at least) `max_length`.

  Steps of 4 events while below `fine_until`, then a factor `growth`
  (rounded up to a multiple of 4, of 8 from 32 on).
  """
  if min_bucket < 1 or growth <= 1.0:
    raise errors.ConfigError(
        f'bucket sizes need min_bucket >= 1 and growth > 1; got '
        f'{min_bucket}, {growth}.')
  out = [int(min_bucket)]
  while out[-1] < max_length:
    if out[-1] < fine_until:
      out.append(out[-1] + 4)
      continue
    step = 8 if out[-1] >= 32 else 4
    out.append(max(out[-1] + step,
                   int(math.ceil(out[-1] * growth / step) * step)))
  return tuple(out)


def _check_cascade(cascade: types.Cascade, num_users: int, source: str):
  where = dict(path=source or None, item_id=str(cascade.id))
  n = len(cascade)
  if n == 0:
    raise errors.DataError('empty cascade.', **where)
  users = np.asarray(cascade.users)
  times = np.asarray(cascade.times, np.float64)
  if users.shape != (n,) or times.shape != (n,):
    raise errors.DataError(
        f'users and times must both have shape ({n},); got {users.shape} and '
        f'{times.shape}.', **where)
  if users.min() < 0 or users.max() >= num_users:
    raise errors.DataError(
        f'user id out of range [0, {num_users}): {int(users.min())}..'
        f'{int(users.max())}.', **where)
  if not np.all(np.isfinite(times)):
    raise errors.DataError('non-finite event time.', **where)
  if np.any(np.diff(times) < 0):
    k = int(np.argmax(np.diff(times) < 0)) + 1
    raise errors.DataError(
        f'times are not sorted: event {k} at {times[k]} comes before event '
        f'{k - 1} at {times[k - 1]}.', **where)


class CascadeBatcher:
  """Turns a `CascadeDataset` into padded, bucketed `Batch`es.

  Args:
    dataset: the cascades (ids in `[0, dataset.num_users)`).
    batch_size: rows per batch.
    max_events: keep only the last `max_events` events of each cascade
      (0: keep all).
    bucket_lengths: padded lengths to use (default: `bucket_lengths_for` the
      longest cascade with `min_bucket`, `bucket_growth`). A cascade longer
      than the largest bucket is an error.
    min_bucket, bucket_growth, fine_until: the default bucket lengths
      (`bucket_lengths_for`).
    max_batch_events: if > 0, a bucket of length N gets
      `clip(max_batch_events // N, 1, batch_size)` rows instead of
      `batch_size`, which bounds the memory of batches of long cascades.
    calendar: add calendar fields when every cascade has timestamps.
  """

  def __init__(self, dataset: types.CascadeDataset, *, batch_size: int,
               max_events: int = 0,
               bucket_lengths: Sequence[int] | None = None,
               min_bucket: int = 8, bucket_growth: float = 2.0,
               fine_until: int = 0, max_batch_events: int = 0,
               calendar: bool = True):
    if batch_size < 1:
      raise errors.ConfigError(f'batch_size must be >= 1; got {batch_size}.')
    if max_events < 0 or max_events == 1:
      raise errors.ConfigError(
          f'max_events must be 0 (all) or >= 2; got {max_events}.')
    if len(dataset) == 0:
      raise errors.DataError('the data set has no cascades.',
                             path=dataset.source or None)
    self.batch_size = int(batch_size)
    num_users = dataset.num_users
    for cascade in dataset.cascades:
      _check_cascade(cascade, num_users, dataset.source)

    self.calendar = bool(calendar) and all(
        c.timestamps is not None for c in dataset.cascades)
    self.parents = all(c.parents is not None for c in dataset.cascades)
    raw_lengths = np.array([len(c) for c in dataset.cascades], np.int64)
    keep = raw_lengths if not max_events else np.minimum(raw_lengths,
                                                         max_events)
    self.lengths = keep
    if not bucket_lengths:  # None or empty: derive from the data
      bucket_lengths = bucket_lengths_for(int(keep.max()), min_bucket,
                                          bucket_growth, fine_until)
    self.bucket_lengths = tuple(sorted(int(b) for b in bucket_lengths))
    if keep.max() > self.bucket_lengths[-1]:
      raise errors.ConfigError(
          f'the longest cascade has {int(keep.max())} events but the largest '
          f'bucket is {self.bucket_lengths[-1]}; add a bucket (or leave the '
          'bucket lengths empty to derive them from the data) or set '
          'max_events.')
    self.bucket_of = np.searchsorted(np.asarray(self.bucket_lengths), keep)
    self.rows = tuple(
        self.batch_size if not max_batch_events else int(
            np.clip(max_batch_events // n, 1, self.batch_size))
        for n in self.bucket_lengths)

    # Batches are padded when they are made, so memory holds one batch at
    # a time beyond the cascades themselves, whatever their number.
    self._dataset = dataset
    self._eval_plan = None
    self._eval_plan = self.plan()
    self.report = BatchingReport(
        num_cascades=len(dataset), num_events=int(keep.sum()),
        num_truncated=int(np.sum(raw_lengths > keep)),
        num_events_truncated=int(np.sum(raw_lengths - keep)),
        bucket_lengths=self.bucket_lengths, rows_per_bucket=self.rows,
        calendar=self.calendar)

  def _fill_row(self, arrays: dict, row: int, i: int) -> None:
    """Writes cascade `i` (its last `lengths[i]` events) into `row` of `arrays`."""
    cascade = self._dataset.cascades[i]
    length = int(self.lengths[i])
    start = len(cascade) - length
    times = np.asarray(cascade.times, np.float64)[start:]
    arrays['index'][row] = i
    arrays['users'][row, :length] = cascade.users[start:]
    arrays['gaps'][row, 1:length] = np.diff(times)
    arrays['times'][row, :length] = times - times[0]
    arrays['mask'][row, :length] = True
    if self.calendar:
      arrays['calendar'][row, :length] = calendar_fields(
          cascade.timestamps[start:])
    if self.parents:
      parents = np.asarray(cascade.parents, np.int64)[start:] - start
      arrays['parents'][row, :length] = np.where(parents >= 0, parents, -1)

  def num_batches(self) -> int:
    """Batches per pass (the same for every epoch)."""
    return len(self._eval_plan)

  def shapes(self) -> list[tuple[int, int]]:
    """The `(rows, length)` shapes the batches take."""
    heads = sorted({b for b, _ in self._eval_plan})
    return [(self.rows[b], self.bucket_lengths[b]) for b in heads]

  def plan(self, seed: int | None = None, epoch: int = 0
           ) -> list[tuple[int, np.ndarray]]:
    """`(bucket, data-set indices)` per batch, in order.

    Cascades are taken longest bucket first; a batch gets the rows of the
    bucket of its first (longest) cascade and is filled with the next ones,
    so only the last batch of the pass has empty rows (a bucket's leftovers
    fill up the next batch, padded to the longer length).

    Args:
      seed: None for the fixed evaluation order (data-set order within a
        bucket); otherwise cascades are shuffled within buckets and the
        batches shuffled, a pure function of `(seed, epoch)`.
      epoch: the epoch number.
    """
    if seed is None and getattr(self, '_eval_plan', None) is not None:
      return self._eval_plan
    n = len(self.bucket_of)
    if seed is None:
      order = np.lexsort((np.arange(n), -self.bucket_of))
    else:
      rng = np.random.default_rng(
          np.random.SeedSequence([int(seed), int(epoch)]))
      order = np.lexsort((rng.random(n), -self.bucket_of))
    plan, i = [], 0
    while i < n:
      bucket = int(self.bucket_of[order[i]])
      rows = self.rows[bucket]
      plan.append((bucket, order[i:i + rows]))
      i += rows
    if seed is not None:
      plan = [plan[j] for j in rng.permutation(len(plan))]
    return plan

  def make_batch(self, bucket: int, members: np.ndarray) -> Batch:
    """The cascades `members` (data-set indices) padded to `bucket`'s shape."""
    n, rows = self.bucket_lengths[bucket], self.rows[bucket]
    out = dict(users=np.zeros((rows, n), np.int32),
               gaps=np.zeros((rows, n), np.float32),
               times=np.zeros((rows, n), np.float32),
               mask=np.zeros((rows, n), bool),
               index=np.full((rows,), -1, np.int32))
    if self.calendar:
      out['calendar'] = np.zeros((rows, n, len(CALENDAR_FIELDS)), np.int32)
    if self.parents:
      out['parents'] = np.full((rows, n), -1, np.int32)
    for row, i in enumerate(np.asarray(members)):
      self._fill_row(out, row, int(i))
    return Batch(**out)

  def batches(self, seed: int | None = None, epoch: int = 0, start: int = 0
              ) -> Iterator[Batch]:
    """Yields the batches of one pass from position `start` of `plan`."""
    for bucket, rows in self.plan(seed, epoch)[start:]:
      yield self.make_batch(bucket, rows)


def repeated_users(dataset: types.CascadeDataset) -> int:
  """How many cascades activate some user more than once."""
  return int(sum(len(np.unique(c.users)) < len(c) for c in dataset.cascades))
