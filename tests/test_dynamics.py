"""Tests for cyan_rcbm.data.dynamics: validation errors and .npz round trips."""

import os

import numpy as np
import pytest

from cyan_rcbm.data import dynamics
from cyan_rcbm.data.types import Dynamics
from cyan_rcbm.errors import DataError


def _dyn(n=3, d=2, t=5, seed=0):
  x = np.random.default_rng(seed).random((n, d, t)).astype(np.float32)
  return Dynamics(x=x, feature_names=['size', 'diameter'][:d],
                  ids=[f'user_{i}' for i in range(n)], source='unit')


def test_valid_input_passes():
  dynamics.validate_dynamics(_dyn())
  dynamics.validate_dynamics(np.zeros((1, 1, 1), np.int32))


def test_nan_names_index_sample_and_feature():
  d = _dyn()
  d.x[1, 1, 4] = np.nan
  d.x[2, 0, 0] = np.inf
  with pytest.raises(DataError) as e:
    dynamics.validate_dynamics(d.x, source='dyn.npz', feature_names=d.feature_names,
                               ids=d.ids)
  msg = str(e.value)
  assert msg.startswith('dyn.npz: ')
  assert "x[1, 1, 4] is nan (sample 'user_1', feature 'diameter')" in msg
  assert '2 non-finite values' in msg


def test_inf_without_names_uses_indices():
  x = np.zeros((2, 3, 4))
  x[0, 2, 1] = -np.inf
  with pytest.raises(DataError, match=r'x\[0, 2, 1\] is -inf \(sample 0, feature 2\)'):
    dynamics.validate_dynamics(x)


@pytest.mark.parametrize('shape,pattern', [
    ((4, 5), r'rank 2\); expected rank 3'),
    ((1, 2, 3, 4), 'rank 4'),
    ((0, 2, 3), 'empty sample set'),
    ((2, 0, 3), 'no features'),
    ((2, 3, 0), 'zero length'),
])
def test_bad_shapes(shape, pattern):
  with pytest.raises(DataError, match=pattern):
    dynamics.validate_dynamics(np.zeros(shape), source='s.npz')


def test_non_numeric_and_length_mismatches():
  with pytest.raises(DataError, match='dtype'):
    dynamics.validate_dynamics(np.full((1, 1, 1), 'a'))
  with pytest.raises(DataError, match='3 feature_names for 2 features'):
    dynamics.validate_dynamics(np.zeros((1, 2, 3)), feature_names=['a', 'b', 'c'])
  with pytest.raises(DataError, match='1 ids for 2 samples'):
    dynamics.validate_dynamics(np.zeros((2, 2, 3)), ids=['a'])


def test_round_trip_with_extras(tmp_path):
  d = _dyn()
  path = str(tmp_path / 'sub' / 'd.npz')
  later = np.arange(3)
  dynamics.write_dynamics(d, path, extras={'later': later})
  back = dynamics.read_dynamics(path)
  np.testing.assert_array_equal(back.x, d.x)
  assert back.x.dtype == np.float32
  assert list(back.feature_names) == list(d.feature_names)
  assert list(back.ids) == list(d.ids)
  assert back.source == 'unit'
  np.testing.assert_array_equal(dynamics.read_extras(path)['later'], later)
  assert dynamics.read_dynamics(path, dtype=np.float64).x.dtype == np.float64
  assert [f for f in os.listdir(tmp_path / 'sub')] == ['d.npz']


def test_read_defaults_names_and_ids(tmp_path):
  path = str(tmp_path / 'plain.npz')
  np.savez(path, x=np.ones((2, 3, 4), np.float64))
  back = dynamics.read_dynamics(path)
  assert list(back.feature_names) == ['f0', 'f1', 'f2']
  assert list(back.ids) == ['0', '1']
  assert back.source == path


def test_read_errors(tmp_path):
  with pytest.raises(DataError, match='missing.npz: no such file'):
    dynamics.read_dynamics(str(tmp_path / 'missing.npz'))
  path = str(tmp_path / 'nox.npz')
  np.savez(path, y=np.ones(3))
  with pytest.raises(DataError, match=r"nox.npz: no array \"x\".*'y'"):
    dynamics.read_dynamics(path)
  path = str(tmp_path / 'rank.npz')
  np.savez(path, x=np.ones((3, 4)))
  with pytest.raises(DataError, match='rank.npz: x has shape'):
    dynamics.read_dynamics(path)
  path = str(tmp_path / 'nan.npz')
  x = np.ones((2, 2, 2))
  x[1, 0, 1] = np.nan
  np.savez(path, x=x, ids=np.array(['a', 'b']))
  with pytest.raises(DataError, match=r"nan.npz: x\[1, 0, 1\] is nan \(sample 'b'"):
    dynamics.read_dynamics(path)
  path = str(tmp_path / 'junk.npz')
  with open(path, 'w') as f:
    f.write('not a zip')
  with pytest.raises(DataError, match='junk.npz: not an .npz archive'):
    dynamics.read_dynamics(path)


def test_write_rejects_bad_extras_and_data(tmp_path):
  with pytest.raises(DataError, match="extra 'later'"):
    dynamics.write_dynamics(_dyn(), str(tmp_path / 'a.npz'), extras={'later': np.ones(2)})
  d = _dyn()
  d.x[0, 0, 0] = np.nan
  with pytest.raises(DataError, match='b.npz'):
    dynamics.write_dynamics(d, str(tmp_path / 'b.npz'))
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize('compressed', [True, False])
def test_write_npz_atomic_round_trip_and_no_partial_file(tmp_path, compressed):
  path = str(tmp_path / 'sub' / 'a.npz')
  arrays = {'w': np.arange(6.0).reshape(2, 3), 'name': np.asarray('x')}
  dynamics.write_npz_atomic(path, arrays, compressed=compressed)
  with np.load(path) as z:
    assert sorted(z.files) == ['name', 'w']
    np.testing.assert_array_equal(z['w'], arrays['w'])
  # A failing write leaves the old file and no temporary file behind.
  with pytest.raises(Exception):
    dynamics.write_npz_atomic(
        path, {'bad': np.array([lambda: 0], dtype=object)},
        compressed=compressed)
  assert os.listdir(tmp_path / 'sub') == ['a.npz']
  with np.load(path) as z:
    np.testing.assert_array_equal(z['w'], arrays['w'])


def test_npy_and_npz_are_memory_mapped_where_the_file_allows(tmp_path):
  x = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
  npy, stored, packed = (str(tmp_path / n) for n in ('x.npy', 's.npz',
                                                     'c.npz'))
  np.save(npy, x)
  np.savez(stored, x=x, ids=np.array(['a', 'b']))
  np.savez_compressed(packed, x=x)
  for path, mapped in ((npy, True), (stored, True), (packed, False)):
    back = dynamics.read_dynamics(path, dtype=None)
    assert isinstance(back.x, np.memmap) == mapped, path
    np.testing.assert_array_equal(back.x, x)
    assert back.x.dtype == np.float64
    as_f32 = dynamics.read_dynamics(path)
    assert as_f32.x.dtype == np.float32 and not isinstance(as_f32.x,
                                                           np.memmap)
  assert dynamics.read_dynamics(stored).ids == ['a', 'b']
  fortran = str(tmp_path / 'f.npy')
  np.save(fortran, np.asfortranarray(x))
  np.testing.assert_array_equal(dynamics.read_dynamics(fortran, dtype=None).x,
                                x)


def test_npy_errors_name_the_file(tmp_path):
  text = tmp_path / 'x.txt'
  text.write_text('1 2 3\n')
  with pytest.raises(DataError, match=r'x.txt: not an .npz archive nor an '
                     r'.npy file \(expected an .npz with x'):
    dynamics.read_dynamics(str(text))
  path = str(tmp_path / 'flat.npy')
  np.save(path, np.ones(5))
  with pytest.raises(DataError, match='flat.npy: x has shape'):
    dynamics.read_dynamics(path)
  cut = tmp_path / 'cut.npy'
  np.save(str(cut), np.ones((4, 3, 5)))
  cut.write_bytes(cut.read_bytes()[:60])
  with pytest.raises(DataError, match='cut.npy: cannot read'):
    dynamics.read_dynamics(str(cut))


def test_non_finite_values_are_found_in_any_block():
  x = np.zeros((50, 2, 3))
  x[37, 1, 2] = np.inf
  x[45, 0, 0] = np.nan
  first, count = dynamics._non_finite(x, block=12)  # 2 samples per block
  assert first == (37, 1, 2) and count == 2
