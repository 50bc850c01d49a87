"""Summary statistics of a `CascadeDataset` (counts, lengths, times)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cyan_rcbm.data.types import CascadeDataset


def dataset_stats(dataset: CascadeDataset) -> dict[str, Any]:
  """Counts and length/time statistics, JSON-serialisable.

  `users` counts the vocab (every token with an id, graph-only users
  included); `active_users` those with at least one event.
  """
  lengths = np.asarray([len(c) for c in dataset.cascades], dtype=np.int64)
  nonempty = [c for c in dataset.cascades if len(c)]
  active = (np.unique(np.concatenate([c.users for c in nonempty])).size
            if nonempty else 0)
  out: dict[str, Any] = {
      'cascades': int(lengths.size),
      'events': int(lengths.sum()),
      'users': len(dataset.vocab),
      'active_users': int(active),
      'min_length': int(lengths.min()) if lengths.size else 0,
      'max_length': int(lengths.max()) if lengths.size else 0,
      'mean_length': round(float(lengths.mean()), 4) if lengths.size else 0.0,
      'time_unit': dataset.time_unit,
      'first_time': (float(min(c.times[0] for c in nonempty))
                     if nonempty else None),
      'last_time': (float(max(c.times[-1] for c in nonempty))
                    if nonempty else None),
      'timestamps': bool(nonempty) and nonempty[0].timestamps is not None,
      'parents': bool(nonempty) and nonempty[0].parents is not None,
  }
  if dataset.edges is not None:
    out['edges'] = int(len(dataset.edges))
  return out


def distribution_stats(dataset: CascadeDataset) -> dict[str, Any]:
  """Length and duration distributions, to compare synthetic sets (equations.md
  A2).

  Built on `dataset_stats` (counts, extreme lengths, `users_seen` =
  `active_users`), plus the share of length-2 cascades, the length
  histogram, the number of distinct roots, `first_pairs` and the duration
  (last minus first time) of the cascades. `first_pairs` counts distinct
  (root, second user) pairs: with first-arrival cascades the second user is
  an out-neighbour of the root, so it is a lower bound on the number of
  edges (tight when every root has few of them).
  """
  base = dataset_stats(dataset)
  if not base['cascades']:
    return {'cascades': 0}
  lengths = np.array([len(c) for c in dataset.cascades])
  duration = np.array([c.times[-1] - c.times[0] for c in dataset.cascades])
  first_pairs = {(int(c.users[0]), int(c.users[1]))
                 for c in dataset.cascades if len(c) > 1}
  return {
      'cascades': base['cascades'],
      'events': base['events'],
      'length_mean': base['events'] / base['cascades'],
      'length_min': base['min_length'],
      'length_max': base['max_length'],
      'length_2_frac': float(np.mean(lengths == 2)),
      'users_seen': base['active_users'],
      'roots': int(np.unique([c.users[0] for c in dataset.cascades]).size),
      'first_pairs': len(first_pairs),
      'last_time_mean': float(duration.mean()),
      'last_time_median': float(np.median(duration)),
      'last_time_p90': float(np.quantile(duration, 0.9)),
      'last_time_max': float(duration.max()),
      'length_hist': np.bincount(lengths).tolist(),
  }
