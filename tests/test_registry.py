"""Tests for cyan_rcbm.data.registry: built-in sets and config.data fields."""

import os

import ml_collections
import numpy as np
import pytest

from cyan_rcbm.data import registry
from cyan_rcbm.errors import ConfigError, DataError


def _config(**fields):
  cfg = ml_collections.ConfigDict(dict(registry.DEFAULTS))
  cfg.update(fields)
  return cfg


def _sizes(splits):
  return [len(ds) for _, ds in splits.items()]


def test_data_root(monkeypatch, tmp_path):
  assert os.path.isdir(os.path.join(registry.data_root(), 'twitter'))
  monkeypatch.setenv('CYAN_RCBM_DATA', str(tmp_path))
  assert registry.data_root() == str(tmp_path)
  monkeypatch.setenv('CYAN_RCBM_DATA', str(tmp_path / 'none'))
  with pytest.raises(DataError, match='CYAN_RCBM_DATA'):
    registry.data_root()


def test_cyanrnn_given_split_shares_vocab_with_ids_equal_to_tokens():
  splits = registry.load_splits(_config(name='cyanrnn_cp_exp', split='given'))
  assert _sizes(splits) == [18003, 987, 1010]
  vocab = splits.train.vocab
  assert vocab == tuple(str(i) for i in range(32))
  assert splits.valid.vocab == vocab and splits.test.vocab == vocab
  c = splits.train.cascades[0]  # line 1: `0,7,0.000000,3,0.078454,...`
  assert c.id == '0' and c.users[:2].tolist() == [7, 3]
  assert c.times[1] == 0.078454


def test_twitter_is_read_leniently_and_scaled():
  splits = registry.load_splits(_config(name='twitter', time_scale=3600.0,
                                        split_seed=5))
  assert sum(_sizes(splits)) == 3454 and _sizes(splits) == [2763, 345, 346]
  c = splits.train.cascades[0]
  assert splits.train.time_unit == 'hours'
  np.testing.assert_allclose(c.times * 3600.0, c.timestamps, rtol=1e-15)
  again = registry.load_splits(_config(name='twitter', split_seed=5))
  assert [x.id for x in again.test.cascades] == [
      x.id for x in splits.test.cascades]


def test_android_chronological_with_graph():
  splits = registry.load_splits(_config(name='android',
                                        split='chronological',
                                        graph_direction='symmetric'))
  assert _sizes(splits) == [543, 68, 68]
  assert splits.train.edges is splits.test.edges
  with open(os.path.join(registry.data_root(), 'android', 'edges.txt')) as f:
    pairs = {tuple(line.strip().split(',')) for line in f}
  reciprocal = sum((b, a) in pairs for a, b in pairs)
  assert len(pairs) == 48573 and reciprocal == 11316
  assert len(splits.train.edges) == 2 * 48573 - reciprocal
  assert len({tuple(e) for e in splits.train.edges.tolist()}) == 85830
  starts = [c.times[0] for _, ds in splits.items() for c in ds.cascades]
  assert starts == sorted(starts)
  assert splits.train.num_users == 9953  # incl. 7,026 graph-only users


def test_topolstm_given_carves_valid_from_train():
  cfg = _config(name='topolstm_twitter', split='given')
  splits = registry.load_splits(cfg)
  assert _sizes(splits) == [405, 51, 113]
  assert len(splits.train.edges) == 12045
  assert [c.id for c in registry.load_splits(cfg).valid.cascades] == [
      c.id for c in splits.valid.cascades]
  pooled = registry.load_splits(_config(name='topolstm_twitter',
                                        subsample=100))
  ids = [c.id for _, ds in pooled.items() for c in ds.cascades]
  assert len(set(ids)) == len(ids) == 100 + 57 + 57
  assert {i.split(':')[0] for i in ids} == {'train', 'test'}


@pytest.mark.parametrize('fields,match', [
    (dict(name='reddit'), 'not a built-in set'),
    (dict(name='twitter', split='given'), 'no given split'),
    (dict(name='android', num_cascades=100), 'only to the synthetic'),
    (dict(split='shuffled'), 'data.split'),
    (dict(time_scale=0.0), 'time_scale'),
    (dict(subsample=-1), 'subsample'),
    (dict(name='', path=''), 'data.path and data.format'),
    (dict(min_length=0), 'min_length'),
    (dict(name='synthetic_cp_exp', min_length=0), 'min_length'),
    (dict(duplicate_users='last'), 'duplicate_users'),
    (dict(split_fractions=(0.5, 0.5)), 'split_fractions'),
])
def test_config_errors(fields, match):
  with pytest.raises(ConfigError, match=match):
    registry.load_splits(_config(**fields))


def test_user_files(tmp_path):
  for part, n in (('train', 6), ('test', 2)):
    (tmp_path / f'c.{part}').write_text(''.join(
        f'{i},a,0,b{i},1.5\n' for i in range(n)))
  (tmp_path / 'g.txt').write_text('a,b0\nb1,a\n')
  cfg = _config(name='', path=str(tmp_path / 'c.{split}'), format='cyanrnn',
                graph=str(tmp_path / 'g.txt'), split='given',
                split_fractions=(0.5, 0.25, 0.25))
  splits = registry.load_splits(cfg)
  assert _sizes(splits) == [4, 2, 2]  # valid: 1/3 of train
  assert splits.train.edges.tolist() == [[0, 1], [2, 0]]
  cfg.path = str(tmp_path / 'c.train')
  with pytest.raises(ConfigError, match='no given split'):
    registry.load_splits(cfg)
  cfg.split = 'random'
  assert _sizes(registry.load_splits(cfg)) == [3, 2, 1]  # round(1.5) = 2
  (tmp_path / 'short.txt').write_text('1,a,0\n')
  cfg.path = str(tmp_path / 'short.txt')
  with pytest.raises(DataError, match='no training cascades'):
    registry.load_splits(cfg)
  cfg.path = str(tmp_path / 'missing.txt')
  with pytest.raises(DataError, match='missing.txt: no such file'):
    registry.load_splits(cfg)


def test_synthetic_set_is_generated_once_and_cached(monkeypatch, tmp_path):
  from cyan_rcbm.data import synthetic  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('CYAN_RCBM_CACHE', str(tmp_path))
  cfg = _config(name='synthetic_random_exp', num_cascades=200, split_seed=3)
  first = registry.load_splits(cfg)
  assert _sizes(first) == [160, 20, 20]
  assert first.train.cascades[0].parents is not None
  assert first.train.edges is not None and first.train.time_unit == 'units'
  [cached] = os.listdir(tmp_path)
  assert cached == (f'synthetic-random-exp-n200-seed3-'
                    f'v{synthetic.GENERATOR_VERSION}')

  def _fail(*args, **kwargs):
    raise AssertionError('regenerated instead of reading the cache')
  monkeypatch.setattr(synthetic, 'make_synthetic', _fail)
  second = registry.load_splits(cfg)
  for a, b in zip(first.test.cascades, second.test.cascades):
    assert a.id == b.id
    np.testing.assert_array_equal(a.times, b.times)
  with pytest.raises(ConfigError, match='no given split'):
    registry.load_splits(_config(name='synthetic_random_exp', split='given'))
