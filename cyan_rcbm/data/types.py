"""Data types shared by every reader, generator and model.

Cascades (equations.md A1): a cascade is `[(t_1, u_1), ..., (t_N, u_N)]` with
times non-decreasing and users dense integer ids in `[0, U)`. A data set is a
list of cascades, the user vocabulary (dense id -> original token), and
optionally a directed social graph (edge `v -> u`: u can be influenced by v).

Dynamics (equations.md B1): `n` samples of `D` features over `T` time steps, the
input of RCBM.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Cascade:
  """One cascade of resharing events, sorted by time.

  Attributes:
    id: the cascade's id in its source file (or a generated one).
    users: int32 [N], dense user ids in `[0, U)`.
    times: float64 [N], event times, non-decreasing, in the data set's time
      unit (see `CascadeDataset.time_unit`); not necessarily starting at 0.
    parents: optional int32 [N], index *within this cascade* of the event that
      caused event k, -1 for the root (or unknown). Known for synthetic data.
    timestamps: optional float64 [N], absolute Unix seconds of each event,
      when the source gives wall-clock times (enables calendar features).
  """
  id: str
  users: np.ndarray
  times: np.ndarray
  parents: np.ndarray | None = None
  timestamps: np.ndarray | None = None

  def __len__(self) -> int:
    return int(self.users.shape[0])


@dataclasses.dataclass(frozen=True)
class CascadeDataset:
  """Cascades plus the user vocabulary and an optional social graph.

  Attributes:
    cascades: the cascades, in file order.
    vocab: original user tokens; `vocab[i]` is the token of dense id `i`.
    edges: optional int32 [E, 2] directed edges `(src, dst)`: dst can be
      influenced by src. Ids index `vocab`.
    time_unit: human-readable unit of `Cascade.times` (e.g. 'seconds').
    source: where the data came from (a path or a generator description).
  """
  cascades: Sequence[Cascade]
  vocab: Sequence[str]
  edges: np.ndarray | None = None
  time_unit: str = 'unspecified'
  source: str = ''

  @property
  def num_users(self) -> int:
    return len(self.vocab)

  @property
  def num_events(self) -> int:
    return int(sum(len(c) for c in self.cascades))

  def __len__(self) -> int:
    return len(self.cascades)


@dataclasses.dataclass(frozen=True)
class Dynamics:
  """Multi-dimensional social dynamics, the input of RCBM (equations.md B1).

  Attributes:
    x: float32 (or float64) [n, D, T] samples.
    feature_names: D names, one per row of each sample.
    ids: n sample ids (e.g. target user, cascade id, window start).
    source: where the samples came from.
  """
  x: np.ndarray
  feature_names: Sequence[str]
  ids: Sequence[str]
  source: str = ''

  @property
  def num_samples(self) -> int:
    return int(self.x.shape[0])

  @property
  def num_features(self) -> int:
    return int(self.x.shape[1])

  @property
  def length(self) -> int:
    return int(self.x.shape[2])
