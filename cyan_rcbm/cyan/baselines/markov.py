"""MC-1: first-order Markov chain over users (paper §4.1; equations.md A5).

`p(u_{k+1} = u | u_k = v) = (C[v, u] + beta) / (n_v + beta U)`, with
`C[v, u]` the number of training transitions `v -> u` between consecutive
events of a cascade, `n_v = sum_u C[v, u]` and additive (Lidstone) smoothing
`beta > 0`. As for the neural models (`model.mask_active`), users already
active in the cascade get probability 0: the reported per-event user NLL
renormalises over the other users (the evaluator drops them from the ranking
in any case). `beta` does not change the ranking (only ties among unseen
transitions, broken uniformly by the evaluator); it is chosen on the
validation split by user NLL.

Counts are a sparse [U, U] matrix, so the real sets (12,627 users) fit in
memory; a batch's rows are expanded to dense scores [B, N, U] on demand.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import sparse

from cyan_rcbm import errors
from cyan_rcbm.cyan import metrics
from cyan_rcbm.cyan.baselines import _common
from cyan_rcbm.data import batching
from cyan_rcbm.data import types

SMOOTHING_GRID = (1e-3, 1e-2, 0.1, 1.0)


def transition_counts(batch: batching.Batch, num_users: int) -> sparse.csr_matrix:
  """Sparse [U, U] counts of consecutive pairs `(u_k, u_{k+1})` in `batch`."""
  users = np.asarray(batch.users)
  pair = np.asarray(batch.mask)[:, 1:]
  src, dst = users[:, :-1][pair], users[:, 1:][pair]
  return sparse.csr_matrix(
      (np.ones(src.size, np.float32), (src, dst)),
      shape=(num_users, num_users))


@jax.jit
def _log_probs_and_nll(rows_BxNxU, users_BxN, mask_BxN, smoothing):
  """Smoothed log-probabilities and the masked user NLL of each next event."""
  num_users = rows_BxNxU.shape[-1]
  total = jnp.sum(rows_BxNxU, axis=-1, keepdims=True)
  log_probs = (jnp.log(rows_BxNxU + smoothing) -
               jnp.log(total + smoothing * num_users))
  next_user, has_next = metrics.next_targets(users_BxN, mask_BxN)
  is_target = jnp.arange(num_users) == next_user[..., None]
  candidate = ~metrics.active_users(users_BxN, mask_BxN, num_users) | is_target
  log_norm = jax.nn.logsumexp(jnp.where(candidate, log_probs, -jnp.inf), -1)
  target = jnp.take_along_axis(log_probs, next_user[..., None], -1)[..., 0]
  return log_probs, jnp.where(has_next, log_norm - target, 0.0)


@dataclasses.dataclass(frozen=True)
class MarkovChain:
  """First-order Markov chain over users with additive smoothing."""
  counts: sparse.csr_matrix  # [U, U] training transitions v -> u
  smoothing: float
  valid_user_nll: float | None = None  # at the chosen smoothing
  name = 'mc1'

  @property
  def num_users(self) -> int:
    return int(self.counts.shape[0])

  @classmethod
  def fit(cls, train: types.CascadeDataset,
          valid: types.CascadeDataset | None = None, *,
          smoothing: float | None = None,
          grid: Sequence[float] = SMOOTHING_GRID,
          max_events: int = 0) -> MarkovChain:
    """Counts training transitions; picks `smoothing` on `valid` if not given.

    Args:
      train: training cascades.
      valid: validation cascades (used only to choose `smoothing` from `grid`
        by mean user NLL per next event).
      smoothing: fixed `beta > 0` (then `valid` is not used).
      grid: candidate values of `beta`.
      max_events: keep the last `max_events` events of each cascade (0: all).
    """
    counts = transition_counts(_common.padded(train, max_events),
                               train.num_users)
    if smoothing is not None:
      if not smoothing > 0:
        raise errors.ConfigError(
            f'MC-1 smoothing must be > 0 (additive smoothing); got '
            f'{smoothing!r}.')
      return cls(counts, float(smoothing))
    if valid is None or not len(valid):
      return cls(counts, float(grid[-1]))
    valid_batches = _common.batches(valid, max_events)
    scored = []
    for beta in grid:
      model = cls(counts, float(beta))
      total, count = 0.0, 0
      for batch in valid_batches:
        _, _, _, extras = model.predict(batch)
        _, has_next = metrics.next_targets(batch.users, batch.mask)
        has_next = np.asarray(has_next)
        total += float(np.asarray(extras['user_nll_per_event'],
                                  np.float64)[has_next].sum())
        count += int(has_next.sum())
      scored.append((total / max(count, 1), float(beta)))
    nll, beta = min(scored)
    return cls(counts, beta, valid_user_nll=nll)

  def predict(self, batch: batching.Batch):
    """`(log p(u | u_k) [B, N, U], None, None, {'user_nll_per_event'})`."""
    users = np.asarray(batch.users)
    rows = self.counts[users.ravel()].toarray().reshape(
        users.shape + (self.num_users,))
    log_probs, nll = _log_probs_and_nll(rows, users, batch.mask,
                                        jnp.float32(self.smoothing))
    return log_probs, None, None, {'user_nll_per_event': nll}
