"""Negatives of the sampled-softmax objective (`train.softmax='sampled'`).

For vocabularies of 10^5 users and more the exact user softmax of Eq. 8 (a
[events, U] product and its gradient) dominates training. The sampled
objective (Jean et al. 2015) scores each next user against `K` negatives
shared by the batch, drawn without replacement in proportion to training
popularity `q(u)` (add-one counts; Gumbel top-K), with the logit of every
candidate corrected by `-log pi(u)`, `pi(u) = 1 - (1 - q(u))^K` its
probability of being drawn (`CyanRNN.sampled_user_nll`). Validation, early
stopping and test always use the exact softmax.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from cyan_rcbm import errors
from cyan_rcbm.cyan import prior
from cyan_rcbm.data import types

KINDS = ('exact', 'sampled')


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity (jit cache)
class Sampler:
  """Popularity-proportional negatives, `num_negatives` distinct per step."""
  log_q: jax.Array            # [U] log sampling probabilities
  log_inclusion: jax.Array    # [U] log pi(u)
  num_negatives: int
  seed: int

  def negatives(self, step) -> jax.Array:
    """int32 [K]: the step's distinct negatives (a function of seed, step)."""
    key = jax.random.fold_in(jax.random.key(self.seed), step)
    gumbel = jax.random.gumbel(key, self.log_q.shape)
    return jax.lax.top_k(self.log_q + gumbel, self.num_negatives)[1]


def sampler_for(train_config, train: types.CascadeDataset,
                seed: int) -> Sampler | None:
  """The sampler `train.softmax` asks for (None for the exact softmax)."""
  kind = train_config.get('softmax', 'exact')
  if kind not in KINDS:
    raise errors.ConfigError(
        f'train.softmax is {kind!r}; expected one of {KINDS}.')
  if kind == 'exact':
    return None
  num_users = train.num_users
  k = int(train_config.get('num_negatives', 1024))
  if not 1 <= k < num_users:
    raise errors.ConfigError(
        f'train.num_negatives must be in [1, {num_users}) (the users); got '
        f'{k}.')
  log_q = prior.popularity_log_share(train, num_users).astype(np.float64)
  log_incl = np.log(-np.expm1(k * np.log1p(-np.exp(log_q))))
  return Sampler(jnp.asarray(log_q, jnp.float32),
                 jnp.asarray(log_incl, jnp.float32), k, int(seed))
