"""Stochastic Kronecker graphs (Leskovec & Faloutsos 2007; equations.md A2).

The edge-probability matrix of `U = 2^k` users is the k-th Kronecker power of
a 2x2 initiator, `P = P0 (x) P0 (x) ... (x) P0`. Two ways to turn it into a
directed graph without self loops:

* Bernoulli (equations.md A2, the default of `kronecker_graph`): edge `i -> j`
  (`i != j`) is kept independently with probability `P[i, j]`; the expected
  number of edges is `sum_{i != j} P[i, j]` (about 43 for the core-periphery
  initiator and 31 for the random one at `U = 32`).
* Fixed edge count (`num_edges=E`, SNAP's `GenFastKronecker` as used by the
  NetInf/NetRate cascade generators): cells are drawn with probability
  proportional to `P[i, j]`, redrawing duplicates, until `E` distinct edges
  are placed. The CYAN-RNN authors' shipped sets match about 3 edges per user
  (see `cyan_rcbm.data.synthetic`).
"""

from __future__ import annotations

import numpy as np

from cyan_rcbm.errors import ConfigError

CORE_PERIPHERY = ((0.962, 0.535), (0.535, 0.107))
RANDOM = ((0.5, 0.5), (0.5, 0.5))


def _check_initiator(initiator_2x2) -> np.ndarray:
  p0 = np.asarray(initiator_2x2, dtype=np.float64)
  if p0.shape != (2, 2):
    raise ConfigError(f'the Kronecker initiator must be 2x2, got shape '
                      f'{p0.shape}')
  if not (np.all(np.isfinite(p0)) and np.all(p0 >= 0) and np.all(p0 <= 1)):
    raise ConfigError(f'initiator entries are edge probabilities and must lie '
                      f'in [0, 1], got {p0.tolist()}')
  return p0


def num_levels(num_users: int) -> int:
  """`k` with `2^k == num_users`; a `ConfigError` for any other size."""
  if (isinstance(num_users, bool) or int(num_users) != num_users
      or num_users < 2 or int(num_users) & (int(num_users) - 1)):
    raise ConfigError(
        f'a Kronecker graph has 2^k users (k >= 1); num_users={num_users!r} is '
        f'not a power of two (e.g. use 32 or 64)')
  return int(num_users).bit_length() - 1


def kronecker_power(initiator_2x2, num_users: int) -> np.ndarray:
  """`P = P0^{(x) k}`, the [U, U] edge-probability matrix, `U = 2^k`."""
  p0 = _check_initiator(initiator_2x2)
  p_UxU = np.ones((1, 1))
  for _ in range(num_levels(num_users)):
    p_UxU = np.kron(p_UxU, p0)
  return p_UxU


def expected_num_edges(initiator_2x2, num_users: int) -> float:
  """`sum_{i != j} P[i, j]`, the mean edge count of the Bernoulli model."""
  p_UxU = kronecker_power(initiator_2x2, num_users)
  return float(p_UxU.sum() - np.trace(p_UxU))


def kronecker_graph(initiator_2x2, num_users: int,
                    rng: np.random.Generator | int,
                    num_edges: int | None = None) -> np.ndarray:
  """Samples a directed stochastic Kronecker graph without self loops.

  Args:
    initiator_2x2: the initiator `P0`, entries in [0, 1], e.g.
      `CORE_PERIPHERY` or `RANDOM`.
    num_users: `U = 2^k`.
    rng: a numpy `Generator` (or an int seed).
    num_edges: None keeps each edge `i -> j` with probability `P[i, j]`
      (equations.md A2); an int places exactly that many distinct edges, each
      drawn with probability proportional to `P[i, j]` (SNAP's fast generator).

  Returns:
    bool [U, U] adjacency, `a[i, j]`: edge `i -> j` (j can be influenced by
    i); the diagonal is False.
  """
  p_UxU = kronecker_power(initiator_2x2, num_users)
  rng = np.random.default_rng(rng)
  off_diagonal_UxU = ~np.eye(num_users, dtype=bool)
  if num_edges is None:
    return (rng.random(p_UxU.shape) < p_UxU) & off_diagonal_UxU
  weights = np.where(off_diagonal_UxU, p_UxU, 0.0).ravel()
  possible = int(np.count_nonzero(weights))
  if int(num_edges) != num_edges or not 0 <= num_edges <= possible:
    raise ConfigError(
        f'num_edges must be an integer in [0, {possible}] (the off-diagonal '
        f'cells with a non-zero probability), got {num_edges!r}')
  adjacency = np.zeros(num_users * num_users, dtype=bool)
  if num_edges:
    cells = rng.choice(weights.size, size=int(num_edges), replace=False,
                       p=weights / weights.sum())
    adjacency[cells] = True
  return adjacency.reshape(num_users, num_users)
