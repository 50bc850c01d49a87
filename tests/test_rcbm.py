"""Tests for cyan_rcbm.rcbm.rcbm (equations.md B6) and cyan_rcbm.rcbm.io."""

import os

import chex
import numpy as np
import pytest

from cyan_rcbm.data.planted import make_planted
from cyan_rcbm.errors import DataError
from cyan_rcbm.rcbm import cbm
from cyan_rcbm.rcbm import io as io_lib
from cyan_rcbm.rcbm import rcbm as rcbm_lib


def test_max_pool_closed_form():
  h = np.arange(2 * 2 * 7, dtype=np.float32).reshape(2, 2, 7) % 5
  pooled = rcbm_lib.max_pool(h, 3)
  chex.assert_shape(pooled, (2, 2, 3))                # ceil(7 / 3)
  for t in range(3):
    np.testing.assert_array_equal(pooled[..., t],
                                  h[..., 3 * t:3 * t + 3].max(axis=-1))
  np.testing.assert_array_equal(rcbm_lib.max_pool(h, 1), h)
  with pytest.raises(ValueError, match='pooling factor'):
    rcbm_lib.max_pool(h, 0)


@pytest.fixture(scope='module')
def trained():
  # Shapes and settings of configs/rcbm.py:tiny (compilations are shared).
  dyn, _, _ = make_planted(96, length=30, num_filters=3, seed=2)
  specs = [rcbm_lib.LevelSpec(3, 5, 2), rcbm_lib.LevelSpec(3, 3, 1)]
  scale = np.array([1.0, 2.0, 0.5, 1.0, 1.0, 1.0, 3.0])
  done = []
  model, fits = rcbm_lib.fit_rcbm(
      dyn.x / scale[None, :, None], specs,
      cfg=cbm.SolverConfig(lam=0.3, inner_max_iters=30),
      feature_names=dyn.feature_names, scale=scale,
      inference=rcbm_lib.InferenceSettings(max_iters=100, batch_size=32),
      fit_kwargs=dict(max_iters=15, batch_size=64),
      on_level_done=lambda *a: done.append(a[0]))
  return model, fits, dyn.x, done


def test_levels_are_stacked_and_sorted(trained):
  model, fits, x, done = trained
  assert done == [1, 2] and model.num_levels == 2
  l1, l2 = model.levels
  chex.assert_shape([l1.w, l2.w], [(3, 7, 5), (3, 3, 3)])
  assert np.all(np.diff(l1.strength) <= 0) and np.all(np.diff(l2.strength) <= 0)
  # The level-1 filters are the fit's, reordered by strength (Eq. 10).
  order = np.argsort(-fits[0].h.sum(axis=(0, 2)), kind='stable')
  np.testing.assert_allclose(l1.w, fits[0].params.w[order])
  feats = [rcbm_lib.features(model, x[:10], level) for level in (1, 2)]
  chex.assert_shape(feats, [(10, 3, 34),
                            (10, 3, 17 + 3 - 1)])  # ceil(34 / 2) = 17
  with pytest.raises(ValueError, match='level must be in 1..2'):
    rcbm_lib.features(model, x[:10], 3)


def test_save_load_reinfer_identical(trained, tmp_path):
  model, _, x, _ = trained
  path = io_lib.save_model(model, str(tmp_path))
  assert os.path.basename(path) == io_lib.MODEL_FILE
  loaded = io_lib.load_model(str(tmp_path))
  assert loaded.feature_names == model.feature_names
  assert loaded.inference == model.inference
  np.testing.assert_array_equal(loaded.scale, model.scale)
  for a, b in zip(model.levels, loaded.levels):
    np.testing.assert_array_equal(a.w, b.w)
    assert (a.sigma, a.beta, a.lam, a.pool) == (b.sigma, b.beta, b.lam, b.pool)
  before = rcbm_lib.infer(model, x[:40])
  after = rcbm_lib.infer(loaded, x[:40])
  for a, b in zip(before, after):
    np.testing.assert_array_equal(a.h, b.h)
    np.testing.assert_array_equal(a.sq_err, b.sq_err)


def test_bad_inputs_give_clear_errors(trained):
  model, _, x, _ = trained
  bad = x[:3].copy()
  bad[1, 2, 5] = np.nan
  with pytest.raises(DataError, match=r'x\[1, 2, 5\] is nan'):
    rcbm_lib.infer(model, bad)
  with pytest.raises(DataError, match='rank 2'):
    rcbm_lib.infer(model, x[0])
  with pytest.raises(DataError, match='3 features but the model was trained '
                     'on 7'):
    rcbm_lib.infer(model, x[:3, :3])
  with pytest.raises(DataError, match='empty sample set'):
    rcbm_lib.infer(model, x[:0])
  with pytest.raises(DataError, match='too short'):
    rcbm_lib.infer(model, x[:3, :, :4])


def test_load_errors(tmp_path):
  with pytest.raises(DataError, match='no such model file'):
    io_lib.load_model(str(tmp_path / 'missing.npz'))
  junk = tmp_path / 'junk.npz'
  junk.write_bytes(b'not a zip')
  with pytest.raises(DataError, match='cannot read as an RCBM model'):
    io_lib.load_model(str(junk))
  other = tmp_path / 'other.npz'
  np.savez(other, meta=np.asarray('{"format": "something-else"}'))
  with pytest.raises(DataError, match='unknown model format'):
    io_lib.load_model(str(other))
