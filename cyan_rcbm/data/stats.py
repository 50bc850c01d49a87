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
