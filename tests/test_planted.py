"""Tests for cyan_rcbm.data.planted (equations.md B3 generative model)."""

import numpy as np
import pytest

from cyan_rcbm.data import planted
from cyan_rcbm.data.dynamics import validate_dynamics
from cyan_rcbm.errors import ConfigError
from cyan_rcbm.rcbm import ops


def _brute_force_convolve(w, h):
  k_, d_, tw = w.shape
  n_, _, s = h.shape
  t_ = s - tw + 1
  x = np.zeros((n_, d_, t_))
  for n in range(n_):
    for k in range(k_):
      for d in range(d_):
        for t in range(t_):
          for tau in range(tw):
            x[n, d, t] += w[k, d, tau] * h[n, k, t + tw - 1 - tau]
  return x


def test_convolve_matches_brute_force():
  rng = np.random.default_rng(0)
  w = rng.standard_normal((3, 2, 4))
  h = rng.standard_normal((2, 3, 9))
  np.testing.assert_allclose(planted.convolve(w, h), _brute_force_convolve(w, h),
                             rtol=1e-12, atol=1e-12)


def test_shapes_norms_sparsity():
  dyn, w, h = planted.make_planted(400, num_features=6, length=40, num_filters=4,
                                   filter_length=5, density=0.05, seed=1)
  validate_dynamics(dyn)
  assert dyn.x.shape == (400, 6, 40) and dyn.x.dtype == np.float32
  assert w.shape == (4, 6, 5) and h.shape == (400, 4, 44)
  assert len(dyn.ids) == 400 and len(dyn.feature_names) == 6
  np.testing.assert_allclose(np.linalg.norm(w.reshape(4, -1), axis=1), 1.0)
  assert (w >= 0).all() and (h >= 0).all()
  assert abs((h > 0).mean() - 0.05) < 0.005
  assert abs(h[h > 0].mean() - 1.0) < 0.05  # Exponential(1) amplitudes


def test_noise_free_equals_convolution_and_noise_level():
  kwargs = dict(num_features=3, length=12, num_filters=2, filter_length=4,
                density=0.1, seed=3)
  clean, w, h = planted.make_planted(5, noise=0.0, **kwargs)
  np.testing.assert_allclose(clean.x, _brute_force_convolve(w, h), atol=1e-6)
  noisy, w2, h2 = planted.make_planted(5, noise=0.2, **kwargs)
  np.testing.assert_array_equal(w, w2)
  np.testing.assert_array_equal(h, h2)
  residual = noisy.x - clean.x
  assert abs(residual.std() - 0.2) < 0.03


def test_seed_changes_samples():
  a, _, _ = planted.make_planted(3, seed=0)
  b, _, _ = planted.make_planted(3, seed=1)
  assert not np.allclose(a.x, b.x)


def test_bad_arguments():
  with pytest.raises(ConfigError, match='filter_length'):
    planted.make_planted(2, length=5, filter_length=6)
  with pytest.raises(ConfigError, match='density'):
    planted.make_planted(2, density=0.0)
  with pytest.raises(ConfigError, match='num_samples'):
    planted.make_planted(0)


def test_anomalies():
  a = planted.make_planted_anomalies(30, 10, 10, seed=2)
  validate_dynamics(a.dynamics)
  assert a.dynamics.x.shape == (50, 7, 60)
  assert np.bincount(a.labels).tolist() == [30, 10, 10]
  assert a.is_anomaly.sum() == 20
  for i, lab in zip(a.dynamics.ids, a.labels):
    assert i.startswith(planted.LABEL_NAMES[lab])
  _, w, _ = planted.make_planted(1, seed=2)
  np.testing.assert_array_equal(a.w_KxDxTw, w)
  # Foreign filters are far from every normal filter at every shift.
  for f in a.foreign_w_KxDxTw:
    assert max(planted._max_shift_cosine(f, wk) for wk in w) <= 0.5
  with pytest.raises(ConfigError, match='counts'):
    planted.make_planted_anomalies(0, 0, 0)


def test_convolve_matches_the_jax_operator():
  dyn, w, h = planted.make_planted(4, noise=0.0, density=0.1, seed=4)
  got = np.asarray(ops.scale_and_copy(w.astype(np.float32), h.astype(np.float32)))
  np.testing.assert_allclose(got, dyn.x, rtol=1e-5, atol=1e-5)
