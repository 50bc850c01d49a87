"""A synthetic set at the scale of the paper's Weibo data (section 4.3).

596,088 cascades over 2,964 users with long-tailed lengths up to 1,000
events (the paper's Weibo counts), for measuring training at that scale;
not a model of Weibo itself. Users have Zipf popularity and each follows
`fanout` users drawn by popularity; a cascade starts at a user drawn by
popularity; event k+1 is a follower of the user of a parent event (the
previous one with probability `recency`, else one drawn uniformly from the
cascade so far) not yet active, or else a user drawn by popularity; gaps
are exponential with the parent edge's rate. Lengths follow
`P(L >= l) = (min_length / l) ** tail`, cut at `max_length`.

Deterministic in `seed`; `generate` takes a few seconds per 100,000
cascades, and the registry caches the result (`save` / `load`, one `.npz`).
"""

from __future__ import annotations

import numpy as np

from cyan_rcbm.data.types import Cascade, CascadeDataset

NUM_CASCADES = 596_088
NUM_USERS = 2_964
MAX_LENGTH = 1_000
GENERATOR_VERSION = 1


def _lengths(rng, num: int, min_length: int, max_length: int,
             tail: float) -> np.ndarray:
  u = 1.0 - rng.random(num)
  return np.minimum(np.floor(min_length * u ** (-1.0 / tail)),
                    max_length).astype(np.int64)


def generate(num_cascades: int = NUM_CASCADES, *, num_users: int = NUM_USERS,
             max_length: int = MAX_LENGTH, min_length: int = 2,
             tail: float = 1.0, fanout: int = 20, recency: float = 0.5,
             seed: int = 0) -> CascadeDataset:
  """The cascades (times in units of the mean gap) over `num_users` users."""
  rng = np.random.default_rng([seed, 7])
  popularity = 1.0 / np.arange(1, num_users + 1) ** 0.8
  popularity = rng.permutation(popularity / popularity.sum())
  cdf = np.cumsum(popularity)
  follows = np.minimum(np.searchsorted(cdf, rng.random((num_users, fanout))),
                       num_users - 1)
  rates = rng.uniform(0.2, 5.0, (num_users, fanout))
  lengths = np.minimum(_lengths(rng, num_cascades, min_length, max_length,
                                tail), num_users)
  cascades = []
  for i, length in enumerate(lengths):
    draws = rng.random((int(length), 4))
    users = np.empty(length, np.int32)
    times = np.zeros(length)
    active = set()
    users[0] = min(np.searchsorted(cdf, draws[0, 0]), num_users - 1)
    active.add(int(users[0]))
    for k in range(1, length):
      parent = k - 1 if draws[k, 0] < recency else int(draws[k, 1] * k)
      slot = int(draws[k, 2] * fanout)
      user, rate = int(follows[users[parent], slot]), rates[users[parent], slot]
      if user in active:  # an already active follower: a popular user
        user = int(min(np.searchsorted(cdf, draws[k, 3]), num_users - 1))
        while user in active:
          user = (user + 1) % num_users
        rate = 1.0
      users[k] = user
      active.add(user)
      times[k] = times[parent] + rng.exponential(1.0 / rate)
    order = np.argsort(times, kind='stable')
    cascades.append(Cascade(id=str(i), users=users[order],
                            times=times[order]))
  return CascadeDataset(
      cascades=tuple(cascades), vocab=[str(u) for u in range(num_users)],
      time_unit='units',
      source=f'synthetic Weibo-scale set ({num_cascades} cascades, seed {seed})')


def save(dataset: CascadeDataset, path: str) -> None:
  """One `.npz`: users and times concatenated, with cascade offsets."""
  offsets = np.cumsum([0] + [len(c) for c in dataset.cascades])
  np.savez(path, users=np.concatenate([c.users for c in dataset.cascades]),
           times=np.concatenate([c.times for c in dataset.cascades]),
           offsets=offsets, num_users=len(dataset.vocab),
           version=GENERATOR_VERSION, source=dataset.source)


def load(path: str) -> CascadeDataset:
  """The set `save` wrote."""
  with np.load(path) as f:
    users, times, offsets = f['users'], f['times'], f['offsets']
    num_users, source = int(f['num_users']), str(f['source'])
  cascades = tuple(
      Cascade(id=str(i), users=users[a:b], times=times[a:b])
      for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])))
  return CascadeDataset(cascades=cascades,
                        vocab=[str(u) for u in range(num_users)],
                        time_unit='units', source=source)
