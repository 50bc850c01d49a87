"""Helpers shared by the baselines: padding a whole split, next-event targets."""

from __future__ import annotations

import numpy as np

from cyan_rcbm import errors
from cyan_rcbm.data import batching
from cyan_rcbm.data import types


def check_fittable(dataset: types.CascadeDataset, what: str = 'training'
                   ) -> None:
  """Raises DataError unless some cascade has a next event to fit on."""
  if not len(dataset):
    raise errors.DataError(f'the {what} split has no cascades to fit a '
                           'baseline on.', path=dataset.source or None)
  if max(len(c) for c in dataset.cascades) < 2:
    raise errors.DataError(f'the {what} split has no cascade with two or more '
                           'events: nothing to fit a baseline on.',
                           path=dataset.source or None)


def padded(dataset: types.CascadeDataset, max_events: int = 0,
           what: str = 'training') -> batching.Batch:
  """All cascades of `dataset` in one padded `Batch` (for fitting).

  Args:
    dataset: the cascades.
    max_events: keep only the last `max_events` events of each cascade (0:
      all), as the neural models' batching does.
    what: the split's role, for the error message.

  Raises:
    DataError: the data set has no cascade or no next event to fit on.
  """
  check_fittable(dataset, what)
  longest = max(len(c) for c in dataset.cascades)
  if max_events:
    longest = min(longest, max_events)
  batcher = batching.CascadeBatcher(
      dataset, batch_size=len(dataset), max_events=max_events,
      bucket_lengths=(longest,), calendar=False)
  return batcher.make_batch(0, np.arange(len(dataset)))


def batches(dataset: types.CascadeDataset, max_events: int = 0,
            batch_size: int = 256, max_batch_events: int = 4096
            ) -> list[batching.Batch]:
  """Evaluation-order batches of `dataset` with at most ~`max_batch_events`
  padded events each (bounds the [B, N, U] score arrays of large vocabularies).
  """
  batcher = batching.CascadeBatcher(
      dataset, batch_size=batch_size, max_events=max_events,
      max_batch_events=max_batch_events, calendar=False)
  return list(batcher.batches())


def next_gaps(gaps_BxN: np.ndarray, mask_BxN: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
  """`(d_BxN, has_next_BxN)`: the gap `t_{k+1} - t_k` after each position."""
  gaps_BxN = np.asarray(gaps_BxN)
  mask_BxN = np.asarray(mask_BxN, bool)
  d = np.concatenate([gaps_BxN[:, 1:], np.zeros_like(gaps_BxN[:, :1])], 1)
  has_next = np.concatenate([mask_BxN[:, 1:],
                             np.zeros_like(mask_BxN[:, :1])], 1)
  return d, has_next
