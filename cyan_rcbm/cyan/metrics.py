"""Next-event metrics shared by CYAN-RNN, RMTPP and every baseline (equations.md
A6).

One function scores all models identically (INTERFACES E):

* `target_ranks(scores_BxNxU, users_BxN, mask_BxN)` ranks the true next user
  `u_{k+1}` among all users at every position k, with users already active
  in the cascade (positions <= k) removed from the candidates. It returns the
  number of candidates scored strictly higher (`greater`) and the number of
  *other* candidates with exactly the same score (`ties`); `rank = 1 +
  greater`. Jittable (jax.numpy), so it runs next to the model.
* `compute_metrics(ranks, pred_time, true_time, nll, mask, ties=...)` turns
  per-event arrays into the reported dict. With `ties`, ranking metrics are
  the exact expectations under uniform random tie-breaking (a model that
  scores every user the same gets Acc@1 = 1/#candidates, not 1).

Keys: `acc@1`, `acc@5` (true user in the top k), `mrr` (mean 1/rank),
`hits@k` (= acc@k for k in 10, 50, 100) and `map@k` (mean of 1/rank if
rank <= k else 0: the average precision at k with one relevant item, as
FOREST / MS-HGAT compute it), `rmse` of the predicted next time (in the data's
time unit after `data.time_scale`), `nll_per_event` (mean of
`-log p(u_{k+1}) - log f(t_{k+1} - t_k)`), `num_events` (scored next events).
A metric a model cannot produce (`pred_time` or `nll` None) is None.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

ACC_KS = (1, 5)
HITS_KS = (10, 50, 100)
METRIC_KEYS = (('acc@1', 'acc@5', 'mrr', 'rmse', 'nll_per_event') +
               tuple(f'hits@{k}' for k in HITS_KS) +
               tuple(f'map@{k}' for k in HITS_KS) + ('num_events',))


def next_targets(users_BxN: jax.Array, mask_BxN: jax.Array):
  """`(next_user_BxN, has_next_BxN)`: the user of event k+1 and whether it exists."""
  users_BxN = jnp.asarray(users_BxN)
  mask_BxN = jnp.asarray(mask_BxN, bool)
  next_user = jnp.concatenate(
      [users_BxN[:, 1:], jnp.zeros_like(users_BxN[:, :1])], axis=1)
  has_next = jnp.concatenate(
      [mask_BxN[:, 1:], jnp.zeros_like(mask_BxN[:, :1])], axis=1)
  return next_user, has_next


def first_positions(users_BxN: jax.Array, mask_BxN: jax.Array,
                    num_users: int) -> jax.Array:
  """int32 [B, U]: position of each user's first event in its row (N: none)."""
  users_BxN = jnp.asarray(users_BxN)
  b, n = users_BxN.shape
  pos = jnp.where(jnp.asarray(mask_BxN, bool), jnp.arange(n, dtype=jnp.int32),
                  n)
  first_BxU = jnp.full((b, num_users), n, jnp.int32)
  return first_BxU.at[jnp.arange(b)[:, None], users_BxN].min(pos)


def active_users(users_BxN: jax.Array, mask_BxN: jax.Array,
                 num_users: int) -> jax.Array:
  """bool [B, N, U]: user u is active at or before position k of its cascade."""
  n = jnp.shape(users_BxN)[1]
  first_BxU = first_positions(users_BxN, mask_BxN, num_users)
  return first_BxU[:, None, :] <= jnp.arange(n, dtype=jnp.int32)[:, None]


def target_ranks(scores_BxNxU: jax.Array, users_BxN: jax.Array,
                 mask_BxN: jax.Array, exclude_active: bool = True):
  """Ranks of the true next user among candidate users at each position.

  Args:
    scores_BxNxU: higher = more likely; position k scores event k+1.
    users_BxN: the cascades' users.
    mask_BxN: real events.
    exclude_active: drop users active at positions <= k from the candidates
      (a user activates once per cascade). The true next user itself is never
      dropped.

  Returns:
    `(greater_BxN, ties_BxN, has_next_BxN)`, int32, int32, bool; `rank =
    1 + greater`. NaN scores count as lowest.
  """
  scores = jnp.asarray(scores_BxNxU)
  scores = jnp.where(jnp.isnan(scores), -jnp.inf, scores)
  next_user, has_next = next_targets(users_BxN, mask_BxN)
  num_users = scores.shape[-1]
  target_score = jnp.take_along_axis(scores, next_user[..., None], axis=-1)
  is_target = jnp.arange(num_users) == next_user[..., None]
  candidate = ~is_target
  if exclude_active:
    candidate &= ~active_users(users_BxN, mask_BxN, num_users)
  greater = jnp.sum((scores > target_score) & candidate, axis=-1)
  ties = jnp.sum((scores == target_score) & candidate, axis=-1)
  return greater.astype(jnp.int32), ties.astype(jnp.int32), has_next


def _harmonic(n: np.ndarray) -> np.ndarray:
  """H(n) = sum_{i<=n} 1/i for integer arrays n >= 0 (exact table lookup)."""
  n = np.asarray(n, np.int64)
  top = int(n.max()) if n.size else 0
  table = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, top + 1))])
  return table[n]


def compute_metrics(ranks, pred_time, true_time, nll, mask, *, ties=None,
                    acc_ks: Sequence[int] = ACC_KS,
                    hits_ks: Sequence[int] = HITS_KS) -> dict:
  """The reported metrics from per-event predictions (any common shape).

  Args:
    ranks: rank of the true next user (1 = best), or None if the model does
      not rank users.
    pred_time: predicted time of the next event, or None.
    true_time: its true time (same unit).
    nll: per-event negative log-likelihood of the next event (user and time),
      or None.
    mask: which entries are real next events.
    ties: optional number of other candidates tied with the true user; then
      ranking metrics are expectations under random tie-breaking (the true
      user's rank is uniform on `ranks .. ranks + ties`).
    acc_ks, hits_ks: cut-offs.

  Returns:
    dict with the keys of `METRIC_KEYS` (and `acc@k`/`hits@k`/`map@k` for the
    given cut-offs); unavailable metrics are None.
  """
  mask = np.asarray(mask, bool)
  count = int(mask.sum())
  out = {}
  if ranks is not None and count:
    lo = np.asarray(ranks, np.int64)[mask]  # best possible rank
    t = np.zeros_like(lo) if ties is None else np.asarray(ties, np.int64)[mask]
    hi = lo + t                               # worst possible rank
    def hit(k):
      return float(np.mean(np.clip((k - lo + 1) / (t + 1), 0.0, 1.0)))
    def mean_inverse(k=None):
      top = hi if k is None else np.minimum(hi, k)
      # E[1/r] over r uniform on lo..hi, restricted to r <= k.
      inv = np.where(top >= lo, _harmonic(np.maximum(top, lo - 1)) -
                     _harmonic(lo - 1), 0.0)
      return float(np.mean(inv / (t + 1)))
    for k in acc_ks:
      out[f'acc@{k}'] = hit(k)
    out['mrr'] = mean_inverse()
    for k in hits_ks:
      out[f'hits@{k}'] = hit(k)
    for k in hits_ks:
      out[f'map@{k}'] = mean_inverse(k)
  else:
    for k in acc_ks:
      out[f'acc@{k}'] = None
    out['mrr'] = None
    out.update({f'hits@{k}': None for k in hits_ks})
    out.update({f'map@{k}': None for k in hits_ks})
  if pred_time is not None and count:
    err = (np.asarray(pred_time, np.float64) -
           np.asarray(true_time, np.float64))[mask]
    out['rmse'] = float(np.sqrt(np.mean(err * err)))
  else:
    out['rmse'] = None
  if nll is not None and count:
    out['nll_per_event'] = float(np.mean(np.asarray(nll, np.float64)[mask]))
  else:
    out['nll_per_event'] = None
  out['num_events'] = count
  ordered = {k: out[k] for k in METRIC_KEYS if k in out}
  ordered.update({k: v for k, v in out.items() if k not in ordered})
  return ordered
