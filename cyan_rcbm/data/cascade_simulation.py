"""Continuous-time independent cascades on a graph (equations.md A2's
simulator).

Every edge `u -> v` has its own transmission-delay law: exponential with rate
`r_uv` (`'exp'`, mean `1 / r_uv`) or Rayleigh with scale `s_uv` (`'ray'`,
mean `s_uv sqrt(pi / 2)`), the parameter drawn from `PARAM_RANGE`, uniformly
or log-uniformly (`draw_edge_params`).

Cascade (first-arrival order): a root is active at `t = 0`; each active `u`
proposes `t_u + delay(u, v)` to each out-neighbour `v` (the edge transmits at
all with probability `transmit_prob`); `v` activates at its earliest proposal
and its parent is the proposer. This is Dijkstra on the sampled delays
(`first_arrival`), run for a batch of cascades at once on dense [B, U, U]
delay matrices. The cascade stops when the next activation time exceeds
`horizon` (T) or nobody is left. `cyan_rcbm.data.synthetic` builds the
paper's synthetic sets on it.
"""

from __future__ import annotations

import numpy as np

from cyan_rcbm.errors import ConfigError

# delay name -> (law, name of its per-edge parameter).
DELAYS = {'exp': ('exponential', 'rate'), 'ray': ('rayleigh', 'scale')}
PARAM_DRAWS = ('uniform', 'loguniform')
PARAM_RANGE = (0.01, 10.0)


def draw_edge_params(adjacency: np.ndarray, rng: np.random.Generator,
                     param_draw: str = 'uniform',
                     param_range: tuple[float, float] = PARAM_RANGE
                     ) -> np.ndarray:
  """One delay parameter per edge, from `param_range`; NaN off the graph."""
  low, high = param_range
  if not 0 < low <= high < np.inf:
    raise ConfigError(f'param_range must satisfy 0 < low <= high < inf, got '
                      f'{param_range!r}')
  u = rng.random(adjacency.shape)
  if param_draw == 'uniform':
    params = low + (high - low) * u
  elif param_draw == 'loguniform':
    params = np.exp(np.log(low) + (np.log(high) - np.log(low)) * u)
  else:
    raise ConfigError(f'param_draw must be one of {PARAM_DRAWS}, got '
                      f'{param_draw!r}')
  return np.where(adjacency, params, np.nan)


def sample_delays(params: np.ndarray, delay: str, rng: np.random.Generator,
                  shape: tuple[int, ...]) -> np.ndarray:
  """Transmission delays of the edges with parameters `params` (broadcast).

  Exponential: `E / rate`; Rayleigh: `scale * sqrt(2 E)`, with
  `E ~ Exponential(1)` of shape `shape`.
  """
  e = rng.standard_exponential(shape)
  if delay == 'exp':
    return e / params
  if delay == 'ray':
    return params * np.sqrt(2.0 * e)
  raise ConfigError(f'delay must be one of {tuple(DELAYS)}, got {delay!r}')


def first_arrival(delays_BxUxU: np.ndarray, roots_B: np.ndarray,
                  horizon: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Continuous-time independent cascades by batched Dijkstra (equations.md A2).

  Args:
    delays_BxUxU: `delays[b, u, v]`, the delay of u -> v in cascade b; `inf`
      where there is no edge or it does not transmit.
    roots_B: the root user of each cascade (active at t = 0).
    horizon: no activation later than this.

  Returns:
    users_BxU (int32, -1 after the end), times_BxU (float64, NaN after the
    end), parents_BxU (int32 index of the parent *event*, -1 for the root and
    after the end), lengths_B (int).
  """
  batch, num_users = delays_BxUxU.shape[:2]
  rows_B = np.arange(batch)
  dist_BxU = np.full((batch, num_users), np.inf)
  dist_BxU[rows_B, roots_B] = 0.0
  parent_user_BxU = np.full((batch, num_users), -1, np.int64)
  position_BxU = np.full((batch, num_users), -1, np.int64)
  done_BxU = np.zeros((batch, num_users), bool)
  users_BxU = np.full((batch, num_users), -1, np.int32)
  times_BxU = np.full((batch, num_users), np.nan)
  parents_BxU = np.full((batch, num_users), -1, np.int32)
  lengths_B = np.zeros(batch, np.int64)
  live_R = rows_B
  for step in range(num_users):
    pending_RxU = np.where(done_BxU[live_R], np.inf, dist_BxU[live_R])
    next_R = pending_RxU.argmin(axis=1)
    t_R = pending_RxU[np.arange(live_R.size), next_R]
    keep = t_R <= horizon
    live_R, next_R, t_R = live_R[keep], next_R[keep], t_R[keep]
    if not live_R.size:
      break
    parent_R = parent_user_BxU[live_R, next_R]
    users_BxU[live_R, step] = next_R
    times_BxU[live_R, step] = t_R
    parents_BxU[live_R, step] = np.where(
        parent_R >= 0, position_BxU[live_R, np.maximum(parent_R, 0)], -1)
    position_BxU[live_R, next_R] = step
    done_BxU[live_R, next_R] = True
    lengths_B[live_R] += 1
    proposal_RxU = t_R[:, None] + delays_BxUxU[live_R, next_R]
    better_RxU = (proposal_RxU < dist_BxU[live_R]) & ~done_BxU[live_R]
    dist_BxU[live_R] = np.where(better_RxU, proposal_RxU, dist_BxU[live_R])
    parent_user_BxU[live_R] = np.where(better_RxU, next_R[:, None],
                                       parent_user_BxU[live_R])
  return users_BxU, times_BxU, parents_BxU, lengths_B


def simulate(adjacency: np.ndarray, edge_params: np.ndarray, delay: str,
             horizon: float, transmit_prob: float, batch: int,
             rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """`batch` cascades with random roots: first_arrival's outputs."""
  num_users = adjacency.shape[0]
  src_E, dst_E = np.nonzero(adjacency)
  roots_B = rng.integers(num_users, size=batch)
  delays_BxE = sample_delays(edge_params[src_E, dst_E], delay, rng,
                             (batch, src_E.size))
  if transmit_prob < 1.0:
    delays_BxE[rng.random(delays_BxE.shape) >= transmit_prob] = np.inf
  delays_BxUxU = np.full((batch, num_users, num_users), np.inf)
  delays_BxUxU[:, src_E, dst_E] = delays_BxE
  return first_arrival(delays_BxUxU, roots_B, horizon)
