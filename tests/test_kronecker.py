"""Tests for cyan_rcbm.data.kronecker (equations.md A2)."""

import numpy as np
import pytest

from cyan_rcbm.data import kronecker
from cyan_rcbm.errors import ConfigError

CP = kronecker.CORE_PERIPHERY


def test_kronecker_power_matches_explicit_products():
  p0 = np.array(CP)
  p_UxU = kronecker.kronecker_power(CP, 8)
  assert p_UxU.shape == (8, 8)
  np.testing.assert_allclose(p_UxU, np.kron(np.kron(p0, p0), p0))
  # Entry (i, j) multiplies P0[bit_l(i), bit_l(j)] over the k bits.
  for i, j in ((0, 0), (7, 7), (5, 2), (3, 6)):
    want = np.prod([p0[(i >> l) & 1, (j >> l) & 1] for l in range(3)])
    assert p_UxU[i, j] == pytest.approx(want)
  assert kronecker.expected_num_edges(kronecker.RANDOM, 32) == pytest.approx(
      32 * 31 / 32)


@pytest.mark.parametrize('num_users', [2, 4, 16, 64])
def test_any_power_of_two(num_users):
  a = kronecker.kronecker_graph(CP, num_users, 0)
  assert a.shape == (num_users, num_users) and a.dtype == bool
  assert not a.diagonal().any()


@pytest.mark.parametrize('num_users', [0, 1, 3, 24, 33, 2.5, -4, True])
def test_bad_num_users(num_users):
  with pytest.raises(ConfigError, match='power of two'):
    kronecker.kronecker_graph(CP, num_users, 0)


@pytest.mark.parametrize('initiator', [[[0.5, 0.5]], [[1.2, 0.5], [0.5, 0.1]],
                                       [[np.nan, 0.5], [0.5, 0.1]]])
def test_bad_initiator(initiator):
  with pytest.raises(ConfigError, match='initiator'):
    kronecker.kronecker_graph(initiator, 4, 0)


@pytest.mark.parametrize('initiator', [CP, kronecker.RANDOM])
def test_bernoulli_edge_count_matches_expectation(initiator):
  # E[#edges] = sum_{i != j} P[i, j]; Var = sum p (1 - p).
  p_UxU = kronecker.kronecker_power(initiator, 32)
  off = ~np.eye(32, dtype=bool)
  mean, var = p_UxU[off].sum(), (p_UxU * (1 - p_UxU))[off].sum()
  rng = np.random.default_rng(0)
  counts = [kronecker.kronecker_graph(initiator, 32, rng).sum()
            for _ in range(400)]
  stderr = np.sqrt(var / len(counts))
  assert abs(np.mean(counts) - mean) < 4 * stderr
  assert np.var(counts) == pytest.approx(var, rel=0.25)


def test_bernoulli_edges_follow_cell_probabilities():
  # Core cells (0 -> 1) are much likelier than periphery cells (31 -> 30).
  rng = np.random.default_rng(1)
  graphs = np.stack([kronecker.kronecker_graph(CP, 32, rng)
                     for _ in range(400)])
  p_UxU = kronecker.kronecker_power(CP, 32)
  for i, j in ((0, 1), (1, 2), (3, 12)):
    stderr = np.sqrt(p_UxU[i, j] * (1 - p_UxU[i, j]) / 400)
    assert abs(graphs[:, i, j].mean() - p_UxU[i, j]) < 4 * stderr + 1e-9


def test_fixed_edge_count():
  for seed in range(3):
    a = kronecker.kronecker_graph(CP, 32, seed, num_edges=96)
    assert a.sum() == 96 and not a.diagonal().any()
  # Cells are drawn in proportion to P: the core is denser than the periphery.
  rng = np.random.default_rng(2)
  a = np.stack([kronecker.kronecker_graph(CP, 32, rng, num_edges=96)
                for _ in range(50)]).mean(0)
  assert a[:8, :8].mean() > 5 * a[24:, 24:].mean()
  with pytest.raises(ConfigError, match='num_edges'):
    kronecker.kronecker_graph(CP, 4, 0, num_edges=13)


def test_same_seed_same_graph():
  a = kronecker.kronecker_graph(CP, 32, 7)
  np.testing.assert_array_equal(a, kronecker.kronecker_graph(CP, 32, 7))
  assert (a != kronecker.kronecker_graph(CP, 32, 8)).any()
