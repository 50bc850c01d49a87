"""Popularity: rank users by their number of training activations.

`p(u_{k+1} = u) = (n_u + 1) / (n + U)` (add-one smoothing), the same law
at every position; as for MC-1 and the neural models, users already active
in the cascade get probability 0 and the reported user NLL renormalises
over the others. The floor any sequence model must clear.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from cyan_rcbm.cyan.baselines import _common
from cyan_rcbm.cyan.baselines import markov
from cyan_rcbm.data import batching
from cyan_rcbm.data import types


@dataclasses.dataclass(frozen=True)
class Popularity:
  """Training activation counts `n_u` of every user."""
  counts: np.ndarray  # float32 [U]
  name = 'popularity'

  @property
  def num_users(self) -> int:
    return int(self.counts.shape[0])

  @classmethod
  def fit(cls, train: types.CascadeDataset, *,
          max_events: int = 0) -> Popularity:
    """Counts each user's activations in the training cascades."""
    batch = _common.padded(train, max_events)
    users = np.asarray(batch.users)[np.asarray(batch.mask, bool)]
    return cls(np.bincount(users, minlength=train.num_users
                           ).astype(np.float32))

  def predict(self, batch: batching.Batch):
    """`(log p(u) [B, N, U], None, None, {'user_nll_per_event'})`."""
    users = np.asarray(batch.users)
    rows = np.broadcast_to(self.counts, users.shape + (self.num_users,))
    log_probs, nll = markov._log_probs_and_nll(rows, users, batch.mask,
                                                jnp.float32(1.0))
    return log_probs, None, None, {'user_nll_per_event': nll}
