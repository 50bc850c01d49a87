"""The input side of an RCBM run: which samples, which split, which scale.

`load_dynamics(config.data)` reads or generates the [n, D, T] sample set a
config names (a user's .npz or .npy, memory-mapped so that `max_samples`
reads only its subset; planted samples, the Higgs-Twitter dynamics, or
the B8 dynamics of a shipped cascade set); `split_indices` draws the seeded
train/test split and `data_scale` the per-feature divisors applied before
level 1 (equations.md B7, B8).
"""

from __future__ import annotations

import ml_collections
import numpy as np

from cyan_rcbm import errors
from cyan_rcbm.data import dynamics as dynamics_lib
from cyan_rcbm.data.types import Dynamics

SCALES = ('none', 'global', 'feature')
SOURCES = ('path', 'planted', 'higgs', 'cascades')


def check_data_config(data: ml_collections.ConfigDict) -> None:
  """ConfigError for a bad `data.source`, `path`, `scale` or `test_fraction`."""
  if data.source not in SOURCES:
    raise errors.ConfigError(f'data.source must be one of {SOURCES}, got '
                             f'{data.source!r}')
  if data.source == 'path' and not data.path:
    raise errors.ConfigError(
        'data.path is empty: give --config.data.path=FILE.npz (x [n, D, T]) '
        'or pick a variant (tiny, synthetic, twitter_higgs, cascades_*)')
  if data.scale not in SCALES:
    raise errors.ConfigError(f'data.scale must be one of {SCALES}, got '
                             f'{data.scale!r}')
  if not 0 <= float(data.test_fraction) < 1:
    raise errors.ConfigError(f'data.test_fraction must be in [0, 1), got '
                             f'{data.test_fraction}')


def load_dynamics(data: ml_collections.ConfigDict) -> Dynamics:
  """The sample set `config.data` names (validated)."""
  check_data_config(data)
  if data.source == 'path':
    dyn = dynamics_lib.read_dynamics(data.path, dtype=None)  # memory-mapped
  elif data.source == 'planted':
    from cyan_rcbm.data import planted  # pylint: disable=g-import-not-at-top
    dyn = planted.make_planted(**data.planted.to_dict())[0]
  elif data.source == 'higgs':
    from cyan_rcbm.data import higgs  # pylint: disable=g-import-not-at-top
    dyn = higgs.higgs_dynamics(mode=data.higgs.mode,
                               num_bins=int(data.higgs.num_bins),
                               min_events=int(data.higgs.min_events))
  else:
    from cyan_rcbm.data import cascade_dynamics  # pylint: disable=g-import-not-at-top
    dyn = cascade_dynamics.cascade_dynamics(
        cascade_dynamics.read_pooled_set(data.cascades.name),
        num_bins=int(data.cascades.num_bins), window=data.cascades.window)
  dynamics_lib.validate_dynamics(dyn)
  if data.max_samples and data.max_samples < dyn.num_samples:
    rng = np.random.default_rng([int(data.split_seed), 7])
    keep = np.sort(rng.choice(dyn.num_samples, int(data.max_samples),
                              replace=False))
    dyn = Dynamics(x=dyn.x[keep], feature_names=dyn.feature_names,
                   ids=[dyn.ids[i] for i in keep], source=dyn.source)
  if dyn.x.dtype != np.float32:  # a memory-mapped file: read it now
    dyn = Dynamics(x=np.asarray(dyn.x, np.float32),
                   feature_names=dyn.feature_names, ids=dyn.ids,
                   source=dyn.source)
  return dyn


def split_indices(num_samples: int, test_fraction: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Seeded random (train, test) sample indices; at least one train sample."""
  if not 0 <= test_fraction < 1:
    raise errors.ConfigError(f'data.test_fraction must be in [0, 1), got '
                             f'{test_fraction}')
  num_test = int(round(num_samples * test_fraction))
  if test_fraction > 0 and num_samples >= 2:
    num_test = min(max(num_test, 1), num_samples - 1)
  if test_fraction > 0 and num_test == 0:
    raise errors.DataError(
        f'data.test_fraction={test_fraction} on {num_samples} sample(s) gives '
        f'{num_samples} train / 0 test samples: perplexity_test needs a test '
        'sample and training one more; use more samples, or '
        'data.test_fraction=0 to skip the test perplexity.')
  perm = np.random.default_rng([int(seed), 11]).permutation(num_samples)
  return np.sort(perm[num_test:]), np.sort(perm[:num_test])


def data_scale(x_NxDxT: np.ndarray, mode: str) -> np.ndarray:
  """[D] divisors: ones ('none'), one global std, or per-feature stds."""
  if mode not in SCALES:
    raise errors.ConfigError(f'data.scale must be one of {SCALES}, got '
                             f'{mode!r}')
  d = x_NxDxT.shape[1]
  if mode == 'none':
    return np.ones(d)
  x = np.asarray(x_NxDxT, np.float64)
  if mode == 'global':
    s = np.full(d, x.std())
  else:
    s = x.transpose(1, 0, 2).reshape(d, -1).std(axis=1)
  return np.where(s > 0, s, 1.0)
