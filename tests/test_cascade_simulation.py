"""Tests for cyan_rcbm.data.cascade_simulation (equations.md A2's simulator)."""

import numpy as np
import pytest
from scipy import stats

from cyan_rcbm.data import cascade_simulation as sim

INF = np.inf


def test_first_arrival_on_hand_built_graph():
  # 0 -> 1 (5), 0 -> 2 (1), 2 -> 1 (1), 1 -> 3 (1), 2 -> 3 (10); 4 unreachable.
  d = np.full((5, 5), INF)
  d[0, 1], d[0, 2], d[2, 1], d[1, 3], d[2, 3] = 5, 1, 1, 1, 10
  d[4, 0] = 1
  users, times, parents, lengths = sim.first_arrival(
      np.stack([d, d, d]), np.array([0, 0, 3]), horizon=100.0)
  np.testing.assert_array_equal(lengths, [4, 4, 1])
  np.testing.assert_array_equal(users[0], [0, 2, 1, 3, -1])
  np.testing.assert_array_equal(times[0, :4], [0, 1, 2, 3])
  # 1 is reached through 2 (t=2), not directly from 0 (t=5).
  np.testing.assert_array_equal(parents[0], [-1, 0, 1, 2, -1])
  assert np.isnan(times[0, 4])
  # Horizon: the event at t=3 > 2.5 is cut; an event at exactly T is kept.
  _, _, _, lengths = sim.first_arrival(d[None], np.array([0]), 2.5)
  assert lengths.tolist() == [3]
  _, _, _, lengths = sim.first_arrival(d[None], np.array([0]), 3.0)
  assert lengths.tolist() == [4]


@pytest.mark.parametrize('delay,law', [
    ('exp', stats.expon(scale=1 / 2.5)), ('ray', stats.rayleigh(scale=2.5))])
def test_delay_laws(delay, law):
  rng = np.random.default_rng(0)
  draws = sim.sample_delays(np.float64(2.5), delay, rng, (5000,))
  assert stats.kstest(draws, law.cdf).pvalue > 0.01
  # Through the simulator: one edge 0 -> 1 with parameter 2.5; the child's
  # time in cascades rooted at 0 is one draw of the edge's law.
  adjacency = np.array([[False, True], [False, False]])
  params = np.where(adjacency, 2.5, np.nan)
  users, times, _, lengths = sim.simulate(
      adjacency, params, delay, 1e9, 1.0, 6000, rng)
  from_root0 = (users[:, 0] == 0)
  assert (lengths[from_root0] == 2).all() and (lengths[~from_root0] == 1).all()
  assert stats.kstest(times[from_root0, 1], law.cdf).pvalue > 0.01


def test_transmit_prob_thins_edges():
  adjacency = np.array([[False, True], [False, False]])
  params = np.where(adjacency, 1.0, np.nan)
  users, _, _, lengths = sim.simulate(
      adjacency, params, 'exp', 1e9, 0.3, 20000, np.random.default_rng(0))
  frac = (lengths[users[:, 0] == 0] == 2).mean()
  assert frac == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize('draw', ['uniform', 'loguniform'])
def test_param_draws(draw):
  adjacency = np.ones((64, 64), bool)
  p = sim.draw_edge_params(adjacency, np.random.default_rng(0),
                                 draw).ravel()
  lo, hi = sim.PARAM_RANGE
  if draw == 'uniform':
    assert stats.kstest(p, stats.uniform(lo, hi - lo).cdf).pvalue > 0.01
  else:
    log_lo, log_hi = np.log(lo), np.log(hi)
    assert stats.kstest(np.log(p), stats.uniform(
        log_lo, log_hi - log_lo).cdf).pvalue > 0.01
