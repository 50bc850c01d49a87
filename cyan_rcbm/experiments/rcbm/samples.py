"""The sample sets of the RCBM reproduction: Higgs dynamics and planted data.

`Samples` is a set with what the experiments need beside `x` (ids, window
starts, a frequency ranking, the forecast bin, ...); `higgs` caches the
Higgs target samples under `--out_dir/data`.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from cyan_rcbm.data import dynamics as dynamics_lib
from cyan_rcbm.data import planted as planted_lib
from cyan_rcbm.experiments.rcbm.plan import (TINY_REAL_SAMPLES, Plan,
                                             Settings, log)


@dataclasses.dataclass
class Samples:
  """A sample set with what the experiments need beside x.

  Attributes:
    name: 'higgs' or 'planted'.
    x: [n, D, T] float64, raw units.
    ids, feature_names: as in `Dynamics`.
    start: window start times (forecasting split).
    volume: the frequency ranking (Higgs: the target's lines in the file).
    bin_seconds: bin width in the unit of `start`.
    count_rows: rows that count events (they sum to a bin's events).
    cut: forecast bin (the Higgs peak bin + 1).
    scale_mode: 'feature' (per-feature std) or 'none'.
    extra: per-sample side arrays for the tables.
  """
  name: str
  x: np.ndarray
  ids: list[str]
  feature_names: list[str]
  start: np.ndarray
  volume: np.ndarray
  bin_seconds: float
  count_rows: tuple[int, ...]
  cut: int
  scale_mode: str
  extra: dict[str, np.ndarray]


def higgs_targets(plan: Plan, min_events: int) -> Samples:
  """Higgs target samples (cached as .npz under out_dir/data)."""
  path = os.path.join(plan.out_dir, 'data', f'higgs_target_min{min_events}.npz')
  if not os.path.exists(path):
    from cyan_rcbm.data import higgs  # pylint: disable=g-import-not-at-top
    t0 = time.perf_counter()
    s = higgs.higgs_samples(mode='target', min_events=min_events)
    dynamics_lib.write_npz_atomic(path, dict(
        x=s.dynamics.x, ids=np.array(s.dynamics.ids),
        feature_names=np.array(s.dynamics.feature_names),
        window_start=s.window_start, window_events=s.window_events,
        later_events=s.later_events, total_lines=s.total_lines,
        bin_seconds=s.bin_seconds), compressed=False)
    log(f'built {path}: {s.dynamics.x.shape} in '
        f'{time.perf_counter() - t0:.1f}s')
  with np.load(path) as z:
    return Samples(
        name='higgs', x=z['x'].astype(np.float64), ids=list(z['ids']),
        feature_names=list(z['feature_names']), start=z['window_start'],
        volume=z['total_lines'].astype(np.float64),
        bin_seconds=float(z['bin_seconds']), count_rows=(0, 1, 2, 3, 4),
        cut=11, scale_mode='feature',
        extra={k: z[k] for k in ('window_events', 'later_events',
                                 'total_lines')})


def planted(settings: Settings, n: int, seed: int) -> Samples:
  """`n` samples drawn from the model itself (equations.md B3), unscaled."""
  dyn, _, _ = planted_lib.make_planted(n, seed=seed,
                                       **settings.planted_kwargs())
  x = dyn.x.astype(np.float64)
  t = x.shape[2]
  return Samples(
      name='planted', x=x, ids=list(dyn.ids),
      feature_names=list(dyn.feature_names),
      start=np.arange(n, dtype=np.float64) * t, volume=x.sum(axis=(1, 2)),
      bin_seconds=1.0, count_rows=tuple(range(x.shape[1])), cut=t // 3,
      scale_mode='none', extra={})


def real(plan: Plan) -> Samples:
  """The mode's real set: Higgs targets, or planted data in tiny mode."""
  s = plan.settings
  if s.real == 'higgs':
    return higgs_targets(plan, s.higgs_min_events)
  return planted(s, TINY_REAL_SAMPLES, seed=5)


def data_scale(x_NxDxT: np.ndarray, mode: str) -> np.ndarray:
  """[D] divisors: per-feature std ('feature') or ones ('none')."""
  d = x_NxDxT.shape[1]
  if mode == 'none':
    return np.ones(d)
  s = np.transpose(x_NxDxT, (1, 0, 2)).reshape(d, -1).std(axis=1)
  return np.where(s > 0, s, 1.0)


def subset(n_total: int, n: int, seed: int) -> np.ndarray:
  """Sorted indices of `n` of `n_total` samples (all of them if fewer)."""
  if n >= n_total:
    return np.arange(n_total)
  return np.sort(np.random.default_rng([seed, 17]).choice(n_total, n,
                                                          replace=False))
