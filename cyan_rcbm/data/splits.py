"""Deterministic train/valid/test splits of a `CascadeDataset`.

All three splits share the data set's vocab and edges (same dense ids).
Within a split, cascades keep the data set's order (random split) or are in
order of their first event (chronological split).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from cyan_rcbm.data.types import CascadeDataset
from cyan_rcbm.errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True)
class Splits:
  """Train, validation and test data sets over one vocab and graph."""
  train: CascadeDataset
  valid: CascadeDataset
  test: CascadeDataset

  def items(self) -> tuple[tuple[str, CascadeDataset], ...]:
    return (('train', self.train), ('valid', self.valid), ('test', self.test))


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
  """Returns three non-negative fractions summing to 1 (else ConfigError)."""
  try:
    f = tuple(float(x) for x in fractions)
  except (TypeError, ValueError):
    raise ConfigError(f'split_fractions={fractions!r} must be three numbers '
                      '(train, valid, test).') from None
  if (len(f) != 3 or any(not math.isfinite(x) or x < 0 for x in f)
      or abs(sum(f) - 1.0) > 1e-6):
    raise ConfigError(f'split_fractions={fractions!r} must be three '
                      'non-negative numbers (train, valid, test) summing to '
                      '1, e.g. (0.8, 0.1, 0.1).')
  return f  # type: ignore[return-value]


def _counts(n: int, fractions: Sequence[float]) -> tuple[int, int]:
  f = check_fractions(fractions)
  n_train = int(round(f[0] * n))
  n_valid = min(int(round(f[1] * n)), n - n_train)
  return n_train, n_valid


def subset(dataset: CascadeDataset, indices, tag: str = '') -> CascadeDataset:
  """The cascades at `indices` (in that order), same vocab/edges/unit."""
  source = f'{dataset.source} [{tag}]' if tag else dataset.source
  return dataclasses.replace(
      dataset, cascades=tuple(dataset.cascades[int(i)] for i in indices),
      source=source)


def _split(dataset: CascadeDataset, order: np.ndarray,
           fractions: Sequence[float], keep_order: bool) -> Splits:
  n_train, n_valid = _counts(len(dataset), fractions)
  parts = np.split(order, [n_train, n_train + n_valid])
  if keep_order:
    parts = [np.sort(p) for p in parts]
  return Splits(*(subset(dataset, p, name)
                  for p, name in zip(parts, ('train', 'valid', 'test'))))


def random_split(dataset: CascadeDataset,
                 fractions: Sequence[float] = (0.8, 0.1, 0.1),
                 seed: int = 0) -> Splits:
  """Splits at random (numpy `default_rng(seed)` permutation).

  Sizes: `round(f_train * n)`, `round(f_valid * n)`, and the rest to test.
  Each split keeps the data set's order.
  """
  order = np.random.default_rng(seed).permutation(len(dataset))
  return _split(dataset, order, fractions, keep_order=True)


def chronological_split(dataset: CascadeDataset,
                        fractions: Sequence[float] = (0.8, 0.1, 0.1)
                        ) -> Splits:
  """Earliest cascades (by first event time) train, latest test.

  Ties are broken by file order; empty cascades count as time +inf. Each
  split is in chronological order. With `timestamps`, the first timestamp is
  used (comparable across cascades), else the first time.
  """
  def start(c) -> float:
    if not len(c):
      return math.inf
    return float(c.timestamps[0] if c.timestamps is not None else c.times[0])
  starts = np.asarray([start(c) for c in dataset.cascades], dtype=np.float64)
  order = np.argsort(starts, kind='stable')
  return _split(dataset, order, fractions, keep_order=False)


# What each split feeds, for the messages of `check_sizes`.
_FEEDS = {'train': 'training', 'valid': 'early stopping (valid NLL)',
          'test': 'the test metrics (eval_test.json)'}


def next_events(dataset: CascadeDataset) -> int:
  """Events that have a previous event in their cascade (what is scored)."""
  return int(sum(max(len(c) - 1, 0) for c in dataset.cascades))


def check_sizes(splits: Splits, needed: dict[str, bool], how: str,
                source: str | None = None) -> list[str]:
  """Checks that every split a run needs can be scored.

  Args:
    splits: the three splits.
    needed: split name -> whether the run uses it (a split left out on
      purpose, e.g. a valid fraction of 0, is not needed).
    how: the setting that made the splits, for the message (e.g.
      'data.split_fractions=(0.8, 0.1, 0.1) on 2 cascades').
    source: the data's file or name, for the message.

  Returns:
    One warning per split that is not needed and empty.

  Raises:
    DataError: a needed split has no event to score (no cascade with two
      events), with the cascade and event counts of all three.
  """
  counts = ', '.join(f'{name} {len(d)} cascades / {d.num_events} events'
                     for name, d in splits.items())
  for name, data in splits.items():
    if needed.get(name, True) and next_events(data) == 0:
      raise DataError(
          f'{how} gives {counts}: the {name} split feeds {_FEEDS[name]} and '
          'needs at least one cascade of two or more events. Use more '
          'cascades or other split fractions (a valid or test fraction of 0 '
          'skips that split).', path=source)
  return [f'WARNING: the {name} split is empty ({how}): nothing for '
          f'{_FEEDS[name]}.'
          for name, data in splits.items()
          if not needed.get(name, True) and not len(data)]
