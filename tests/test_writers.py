"""Tests for cyan_rcbm.data.writers: exact round trips and lossy refusals."""

import dataclasses
import os

import numpy as np
import pytest

from cyan_rcbm.data import readers
from cyan_rcbm.data import registry
from cyan_rcbm.data.readers import ReadOptions, read_cascades
from cyan_rcbm.data.types import Cascade, CascadeDataset
from cyan_rcbm.data.writers import write_cascades, write_graph
from cyan_rcbm.errors import ConfigError, DataError

# Times that print badly with '%f' or 'str' in some languages. Equal first
# two times: the topolstm seed gets the second event's time.
_TIMES = [np.array([0.0, 0.0, 1e-300, 0.1 + 0.2]),
          np.array([3.0, 3.0, 1284967588.123456789, 1.7976931348623157e308])]


def _dataset(parents=False):
  vocab = ('u0', 'alice', '42', 'x-y')
  cascades = [
      Cascade('c0', np.array([0, 1, 2, 3], np.int32), _TIMES[0],
              parents=np.array([-1, 0, 0, 2], np.int32) if parents else None),
      Cascade('c1', np.array([2, 3, 0, 1], np.int32), _TIMES[1],
              parents=np.array([-1, 0, 1, 1], np.int32) if parents else None),
  ]
  return CascadeDataset(cascades, vocab, edges=np.array([[0, 1], [3, 2]],
                                                        np.int32),
                        time_unit='units', source='test')


def _same_events(a, b):
  assert len(a) == len(b)
  for x, y in zip(a.cascades, b.cascades):
    assert [a.vocab[u] for u in x.users] == [b.vocab[u] for u in y.users]
    np.testing.assert_array_equal(x.times, y.times)  # bit-exact floats


@pytest.mark.parametrize('fmt', readers.FORMATS)
def test_round_trip_every_format(tmp_path, fmt):
  ds = _dataset()
  path, graph = str(tmp_path / f'c.{fmt}'), str(tmp_path / 'g.txt')
  write_cascades(ds, path, fmt)
  write_graph(ds, graph, fmt)
  back, report = read_cascades(path, fmt, graph_path=graph,
                               vocab={t: i for i, t in enumerate(ds.vocab)},
                               options=ReadOptions(min_length=1))
  _same_events(ds, back)
  assert back.vocab == ds.vocab
  np.testing.assert_array_equal(back.edges, ds.edges)
  assert report.duplicate_events == 0 and not report.malformed
  if fmt in ('jsonl', 'cyanrnn'):
    assert [c.id for c in back.cascades] == ['c0', 'c1']
  else:  # no ids in these formats: line numbers
    assert [c.id for c in back.cascades] == ['1', '2']


def test_jsonl_keeps_parents_and_timestamps(tmp_path):
  ds = _dataset(parents=True)
  ds = dataclasses.replace(ds, cascades=[
      dataclasses.replace(c, timestamps=c.times + 1.5e9)
      for c in ds.cascades])
  path = str(tmp_path / 'c.jsonl')
  write_cascades(ds, path, 'jsonl')
  back, _ = read_cascades(path, 'jsonl', options=ReadOptions(min_length=1))
  for x, y in zip(ds.cascades, back.cascades):
    np.testing.assert_array_equal(x.parents, y.parents)
    np.testing.assert_array_equal(x.timestamps, y.timestamps)
  # Written once, the same bytes again.
  first = open(path, 'rb').read()
  write_cascades(back, path, 'jsonl')
  assert open(path, 'rb').read() == first


def test_shipped_android_round_trips_through_every_text_format(tmp_path):
  data = registry.data_root()  # required: fails with its message if missing
  ds, _ = read_cascades(os.path.join(data, 'android', 'cascades.txt'),
                        'forest',
                        graph_path=os.path.join(data, 'android', 'edges.txt'))
  for fmt in ('forest', 'cyanrnn', 'jsonl'):
    path, graph = str(tmp_path / f'a.{fmt}'), str(tmp_path / f'a.{fmt}.g')
    write_cascades(ds, path, fmt)
    write_graph(ds, graph, fmt)
    back, _ = read_cascades(path, fmt, graph_path=graph)
    _same_events(ds, back)
    assert back.vocab == ds.vocab  # same first-appearance order
    np.testing.assert_array_equal(back.edges, ds.edges)


def test_lossy_writes_raise_unless_asked(tmp_path):
  path = str(tmp_path / 'c.txt')
  with pytest.raises(DataError, match="'cyanrnn' cannot store parents"):
    write_cascades(_dataset(parents=True), path, 'cyanrnn')
  write_cascades(_dataset(parents=True), path, 'cyanrnn', lossy=True)
  stamped = dataclasses.replace(_dataset(), cascades=[
      dataclasses.replace(c, timestamps=c.times + 1.0)
      for c in _dataset().cascades])
  with pytest.raises(DataError, match='cannot store timestamps'):
    write_cascades(stamped, path, 'forest')
  ds = _dataset()
  ds = dataclasses.replace(ds, cascades=[dataclasses.replace(
      ds.cascades[0], times=np.array([0.0, 0.5, 1.0, 2.0]))])
  with pytest.raises(DataError, match="cascade 'c0': topolstm stores the "
                     'first'):
    write_cascades(ds, path, 'topolstm')


def test_tokens_that_text_formats_cannot_hold(tmp_path):
  ds = dataclasses.replace(_dataset(), vocab=('a b', 'b', 'c', 'd'))
  with pytest.raises(DataError, match="user 'a b' cannot be written"):
    write_cascades(ds, str(tmp_path / 'c.txt'), 'forest')
  write_cascades(ds, str(tmp_path / 'c.jsonl'), 'jsonl')  # jsonl can
  back, _ = read_cascades(str(tmp_path / 'c.jsonl'), 'jsonl')
  assert 'a b' in back.vocab


def test_invalid_dataset_is_not_written(tmp_path):
  ds = _dataset()
  bad = dataclasses.replace(ds, cascades=[
      dataclasses.replace(ds.cascades[0], times=ds.cascades[0].times[::-1])])
  path = tmp_path / 'c.jsonl'
  with pytest.raises(DataError, match="cascade 'c0': times are not sorted"):
    write_cascades(bad, str(path), 'jsonl')
  assert not path.exists() and not list(tmp_path.iterdir())
  with pytest.raises(ConfigError):
    write_cascades(ds, str(path), 'csv')
  with pytest.raises(DataError, match='no graph'):
    write_graph(dataclasses.replace(ds, edges=None), str(path), 'jsonl')



@pytest.mark.parametrize('mask', [0o027, 0o002])
def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path, mask):
  from cyan_rcbm.data import dynamics  # pylint: disable=g-import-not-at-top
  old = os.umask(mask)
  try:
    npz, jsonl = str(tmp_path / 'x.npz'), str(tmp_path / 'c.jsonl')
    dynamics.write_npz_atomic(npz, {'x': np.ones(2)}, compressed=False)
    write_cascades(_dataset(), jsonl, 'jsonl')
    with open(str(tmp_path / 'plain.txt'), 'w') as f:
      f.write('as open() writes it')
  finally:
    os.umask(old)
  want = 0o666 & ~mask
  for name in ('x.npz', 'c.jsonl', 'plain.txt'):
    assert os.stat(tmp_path / name).st_mode & 0o777 == want, name
