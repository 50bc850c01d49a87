"""Validation of cascades (equations.md A1), shared by readers, writers and
generators.

`cascade_problem` returns what is wrong with one cascade's arrays (or None);
readers turn it into a `DataError` naming the file, line and cascade.
`validate_dataset` checks an in-memory `CascadeDataset` (before writing it,
or after generating it) and raises on the first problem.
"""

from __future__ import annotations

import numpy as np

from cyan_rcbm.data.types import CascadeDataset
from cyan_rcbm.errors import DataError


def cascade_problem(users: np.ndarray | None, times: np.ndarray,
                    parents: np.ndarray | None = None,
                    timestamps: np.ndarray | None = None,
                    num_users: int | None = None) -> str | None:
  """Returns a sentence describing the first problem of a cascade, or None.

  Checks (equations.md A1): equal lengths, finite and non-negative times sorted
  in non-decreasing order, user ids in `[0, num_users)` (when `users` and
  `num_users` are given), parents `-1 <= p_k < k` (a parent is an earlier
  event), finite timestamps. Event numbers in messages are 1-based.
  """
  n = times.shape[0]
  if times.ndim != 1:
    return f'times must be 1-D, got shape {times.shape}'
  for name, arr in (('users', users), ('parents', parents),
                    ('timestamps', timestamps)):
    if arr is not None and arr.shape != (n,):
      return (f'{name} has shape {arr.shape} but times has {n} events '
              '(lengths must match)')
  finite = np.isfinite(times)
  if not finite.all():
    k = int(np.argmin(finite))
    return f'event {k + 1} has a non-finite time {float(times[k])!r}'
  if n and times.min() < 0:
    k = int(np.argmax(times < 0))
    return f'event {k + 1} has a negative time {float(times[k])!r}'
  if n > 1:
    bad = np.flatnonzero(np.diff(times) < 0)
    if bad.size:
      k = int(bad[0])
      return (f'times are not sorted: event {k + 2} '
              f'(t={float(times[k + 1])!r}) is earlier than event {k + 1} '
              f'(t={float(times[k])!r})')
  if users is not None and num_users is not None and n:
    if users.min() < 0 or users.max() >= num_users:
      k = int(np.argmax((users < 0) | (users >= num_users)))
      return (f'event {k + 1} has user id {int(users[k])} outside '
              f'[0, {num_users})')
  if parents is not None and n:
    bad = np.flatnonzero((parents < -1) | (parents >= np.arange(n)))
    if bad.size:
      k = int(bad[0])
      return (f'event {k + 1} has parent index {int(parents[k])}, out of range '
              f'[-1, {k}) (a parent is an earlier event of the same cascade, '
              '0-based; -1 for a root)')
  if timestamps is not None and not np.isfinite(timestamps).all():
    k = int(np.argmin(np.isfinite(timestamps)))
    return (f'event {k + 1} has a non-finite timestamp '
            f'{float(timestamps[k])!r}')
  return None


def validate_dataset(dataset: CascadeDataset) -> None:
  """Raises `DataError` on the first invalid cascade or edge of `dataset`."""
  source = dataset.source or None
  num_users = len(dataset.vocab)
  seen_ids = {}
  for i, c in enumerate(dataset.cascades):
    users = np.asarray(c.users)
    if not np.issubdtype(users.dtype, np.integer):
      raise DataError(f'users must be integer ids, got dtype {users.dtype}',
                      path=source, item_id=c.id)
    problem = cascade_problem(
        users, np.asarray(c.times, dtype=np.float64),
        None if c.parents is None else np.asarray(c.parents),
        None if c.timestamps is None else np.asarray(c.timestamps),
        num_users)
    if problem:
      raise DataError(problem, path=source, item_id=c.id)
    if c.id in seen_ids:
      raise DataError(f'cascade id used twice (cascades {seen_ids[c.id] + 1} '
                      f'and {i + 1})', path=source, item_id=c.id)
    seen_ids[c.id] = i
  if dataset.edges is not None:
    edges = np.asarray(dataset.edges)
    if edges.ndim != 2 or edges.shape[1] != 2:
      raise DataError(f'edges must have shape [E, 2], got {edges.shape}',
                      path=source)
    if edges.size and (edges.min() < 0 or edges.max() >= num_users):
      raise DataError(f'edges reference user ids outside [0, {num_users})',
                      path=source)
