"""Tests for cyan_rcbm.data.splits."""

import numpy as np
import pytest

from cyan_rcbm.data.splits import chronological_split, random_split
from cyan_rcbm.data.types import Cascade, CascadeDataset
from cyan_rcbm.errors import ConfigError


def _dataset(n=50):
  rng = np.random.default_rng(3)
  starts = rng.integers(0, 10, size=n).astype(float)  # many ties
  cascades = [Cascade(str(i), np.array([0, 1], np.int32),
                      np.array([s, s + 1.0])) for i, s in enumerate(starts)]
  return CascadeDataset(cascades, ('a', 'b'), edges=np.array([[0, 1]],
                                                             np.int32))


def _ids(split):
  return [[c.id for c in ds.cascades] for _, ds in split.items()]


def test_random_split_is_a_deterministic_partition():
  ds = _dataset()
  a, b = random_split(ds, seed=1), random_split(ds, seed=1)
  assert _ids(a) == _ids(b)
  assert _ids(a) != _ids(random_split(ds, seed=2))
  ids = _ids(a)
  assert [len(x) for x in ids] == [40, 5, 5]
  assert sorted(sum(ids, []), key=int) == [c.id for c in ds.cascades]
  for part in ids:  # file order within a split
    assert part == sorted(part, key=int)
  for _, part in a.items():
    assert part.vocab is ds.vocab and part.edges is ds.edges


def test_chronological_split_orders_by_first_event_then_file_order():
  ds = _dataset()
  split = chronological_split(ds, (0.6, 0.2, 0.2))
  assert _ids(split) == _ids(chronological_split(ds, (0.6, 0.2, 0.2)))
  keys = [(c.times[0], int(c.id)) for _, part in split.items()
          for c in part.cascades]
  assert keys == sorted(keys) and len(keys) == len(ds)
  assert [len(x) for x in _ids(split)] == [30, 10, 10]
  train_end = max(c.times[0] for c in split.train.cascades)
  assert all(c.times[0] >= train_end for c in split.test.cascades)


def test_chronological_split_prefers_timestamps():
  cascades = [Cascade('late', np.array([0], np.int32), np.array([0.0]),
                      timestamps=np.array([2e9])),
              Cascade('early', np.array([0], np.int32), np.array([5.0]),
                      timestamps=np.array([1e9]))]
  split = chronological_split(CascadeDataset(cascades, ('a',)), (0.5, 0, 0.5))
  assert _ids(split) == [['early'], [], ['late']]


@pytest.mark.parametrize('bad', [(0.8, 0.1), (0.8, 0.3, 0.1), (1.2, -0.1, 0),
                                 ('a', 0, 0), 0.8])
def test_bad_fractions(bad):
  with pytest.raises(ConfigError, match='split_fractions'):
    random_split(_dataset(), bad)


def test_check_sizes_needs_an_event_to_score_in_every_used_split():
  from cyan_rcbm.data import splits as splits_lib  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.errors import DataError  # pylint: disable=g-import-not-at-top
  parts = random_split(_dataset(10), (0.8, 0.2, 0.0), seed=0)
  warnings = splits_lib.check_sizes(parts, {'test': False}, 'how', 'src')
  assert warnings == ['WARNING: the test split is empty (how): nothing for '
                      'the test metrics (eval_test.json).']
  with pytest.raises(DataError, match=r'src: how gives train 8 cascades / '
                     r'\d+ events, valid 2 cascades / \d+ events, test 0 '
                     r'cascades / 0 events: the test split feeds the test '
                     'metrics'):
    splits_lib.check_sizes(parts, {'test': True}, 'how', 'src')
  # one-event cascades have nothing to score (min_length=1).
  single = CascadeDataset(tuple(
      Cascade(str(i), np.array([i], np.int32), np.zeros(1)) for i in range(4)),
      tuple(str(i) for i in range(4)))
  with pytest.raises(DataError, match='the train split feeds training'):
    splits_lib.check_sizes(random_split(single, (1.0, 0.0, 0.0)),
                           {'valid': False, 'test': False}, 'how')
