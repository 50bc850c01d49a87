"""Tests for cyan_rcbm.rcbm.select_k (equations.md B5; paper Eqs. 10, 11, BIC)."""

import math

import numpy as np
import pytest

from cyan_rcbm.data.planted import make_planted
from cyan_rcbm.rcbm import cbm
from cyan_rcbm.rcbm import select_k


def test_strength_sort_and_cumulative_closed_form():
  h = np.zeros((2, 3, 4))
  h[0, 0, 1] = 1.0
  h[1, 1, :] = 2.0
  h[0, 2, 0] = 3.0
  strength = select_k.activation_strength(h)
  np.testing.assert_allclose(strength, [1.0, 8.0, 3.0])
  np.testing.assert_array_equal(select_k.strength_order(strength), [1, 2, 0])
  np.testing.assert_allclose(select_k.cumulative_activation(strength),
                             [0, 8 / 12, 11 / 12, 1.0])
  np.testing.assert_allclose(select_k.cumulative_activation(np.zeros(3)),
                             [0, 0, 0, 1])


def test_knee():
  f = select_k.cumulative_activation([0.3, 0.3, 0.3, 0.05, 0.03, 0.02])
  assert select_k.knee(f, 0.04) == 4       # F(5) - F(4) = 0.03 <= 0.04
  assert select_k.knee(f, 0.1) == 3        # F(4) - F(3) = 0.05
  assert select_k.knee(f, 0.01) == 6       # never saturates: K
  assert select_k.knee(select_k.cumulative_activation([1.0]), 0.1) == 1
  with pytest.raises(ValueError, match='eps'):
    select_k.knee(f, 0.0)
  with pytest.raises(ValueError, match=r'\[n, K, S\]'):
    select_k.activation_strength(np.zeros((2, 3)))


def test_bic_formula():
  assert select_k.num_params(10, 7, 7) == 492
  assert select_k.bic(-100.0, 492, 1000) == pytest.approx(
      -200.0 - 492 * math.log(1000))
  ks, values = select_k.bic_curve([1, 3], lambda k: -10.0 * k, 2, 4, 50)
  np.testing.assert_array_equal(ks, [1, 3])
  np.testing.assert_allclose(values, [-20 - 10 * math.log(50),
                                      -60 - 26 * math.log(50)])


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_knee_picks_the_planted_k(seed):
  """4 planted filters, K = 8 learned (random init, lam = 0.5): the F(m)
  knee at eps = 0.02 is 4; the surplus filters end up (almost) unused."""
  dyn, _, _ = make_planted(300, num_filters=4, seed=seed)
  fit = cbm.fit_cbm(dyn.x, 8, 7, cfg=cbm.SolverConfig(lam=0.5),
                    max_iters=300, seed=seed)
  f = select_k.cumulative_activation(select_k.activation_strength(fit.h))
  assert select_k.knee(f, 0.02) == 4, np.diff(f)
