"""Tests for cyan_rcbm.data.higgs (RCBM's Twitter features from Higgs)."""

import gzip

import numpy as np
import pytest

from cyan_rcbm.data import higgs
from cyan_rcbm.data.dynamics import validate_dynamics
from cyan_rcbm.errors import ConfigError, DataError

# Friend ties (all lines, undirected): 1-100, 2-100, 3-100, 4-5, 2-3, 1-2.
_TINY = """\
1 100 1000 RT
2 100 1060 MT
2 100 1060 RE
3 100 1100 RT
1 100 1200 RE
4 5 1210 RT
2 3 1300 MT
1 2 1400 RT
100 100 1500 RT
2 100 1700 RT
"""


@pytest.fixture(scope='module')
def tiny_path(tmp_path_factory):
  path = tmp_path_factory.mktemp('higgs') / 'tiny.txt.gz'
  with gzip.open(path, 'wt') as f:
    f.write(_TINY)
  return str(path)


def _rows(samples, i):
  return dict(zip(samples.dynamics.feature_names,
                  samples.dynamics.x[i].astype(int).tolist()))


def test_parse_tiny(tiny_path):
  act = higgs.read_higgs_activity(tiny_path)
  assert len(act) == 10
  assert act.type_counts() == {'RT': 6, 'MT': 2, 'RE': 2}
  targets, counts = act.target_counts()
  assert dict(zip(targets.tolist(), counts.tolist())) == {2: 1, 3: 1, 5: 1, 100: 7}


def test_target_features_by_hand(tiny_path):
  s = higgs.higgs_samples(tiny_path, bin_seconds=100, num_bins=4, peak_bin=1,
                          min_events=2)
  assert list(s.dynamics.ids) == ['100']
  # Actions on 100: 1 RT @1000, 2 comment @1060 (MT+RE merged), 3 RT @1100,
  # 1 RE @1200; 100's own RT is left out; 2 RT @1700 is after the window.
  # Peak bin 10 (t // 100) is placed at index 1, so the window starts at 900.
  got = _rows(s, 0)
  assert got['initiators'] == [0, 1, 0, 0]  # 1: no friend acted before
  assert got['first_time_commentators'] == [0, 1, 0, 0]  # 2, after friend 1
  assert got['first_time_propagators'] == [0, 0, 1, 0]  # 3, after friend 2
  assert got['recurring_propagators'] == [0, 0, 0, 0]
  assert got['recurring_commentators'] == [0, 0, 0, 1]  # 1 again
  assert got['lcc_size'] == [0, 2, 3, 3]  # {1, 2}, then 1-2-3
  assert got['diameter'] == [0, 1, 2, 2]
  assert s.window_start.tolist() == [900]
  assert s.window_events.tolist() == [4]
  assert s.later_events.tolist() == [1]
  assert s.total_lines.tolist() == [7]
  everyone = higgs.higgs_samples(tiny_path, bin_seconds=100, num_bins=4,
                                 peak_bin=1, min_events=1)
  assert list(everyone.dynamics.ids) == ['2', '3', '5', '100']


def test_window_features_by_hand(tiny_path):
  s = higgs.higgs_samples(tiny_path, mode='window', bin_seconds=100,
                          num_bins=4, min_events=1)
  # Windows of 400 s aligned to multiples of 400: 800, 1200, 1600.
  assert s.window_start.tolist() == [800, 1200, 1600]
  assert list(s.dynamics.ids) == ['1970-01-01T00:13:20Z',
                                  '1970-01-01T00:20:00Z',
                                  '1970-01-01T00:26:40Z']
  assert s.window_events.tolist() == [3, 5, 1]
  assert s.later_events.tolist() == [5, 1, 0]
  w0, w1 = _rows(s, 0), _rows(s, 1)
  assert w0['initiators'] == [0, 0, 1, 0]
  assert w0['first_time_commentators'] == [0, 0, 1, 0]
  assert w0['first_time_propagators'] == [0, 0, 0, 1]
  assert w0['lcc_size'] == [0, 0, 2, 3] and w0['diameter'] == [0, 0, 1, 2]
  # 1 RE @1200 and 4 RT @1210 start; 2 MT @1300 follows friend 1; 1 RT @1400
  # recurs; 100 RT @1500 follows friends 1 and 2 and closes a triangle.
  assert w1['initiators'] == [2, 0, 0, 0]
  assert w1['first_time_commentators'] == [0, 1, 0, 0]
  assert w1['recurring_propagators'] == [0, 0, 1, 0]
  assert w1['first_time_propagators'] == [0, 0, 0, 1]
  assert w1['lcc_size'] == [1, 2, 2, 3] and w1['diameter'] == [0, 1, 1, 1]
  assert s.dynamics.x.shape == (3, 7, 4)
  fewer = higgs.higgs_samples(tiny_path, mode='window', bin_seconds=100,
                              num_bins=4, min_events=3)
  assert fewer.window_start.tolist() == [800, 1200]


@pytest.mark.parametrize('text,line,pattern', [
    ('1 2 3 RT\n1 2 RT\n', 2, 'expected 4 fields'),
    ('1 2 3 RT\n1 2 3 XX\n', 2, "unknown type 'XX'"),
    ('1 2 3 RT\n1 2 3 MT\nx 2 3 RT\n', 3, 'userA, userB and unix_time must be integers'),
])
def test_parse_errors_name_the_line(tmp_path, text, line, pattern):
  path = tmp_path / 'bad.txt'
  path.write_text(text)
  with pytest.raises(DataError, match=f'bad.txt:{line}: {pattern}'):
    higgs.read_higgs_activity(str(path))


def test_other_errors(tmp_path, tiny_path):
  with pytest.raises(DataError, match='no such file'):
    higgs.read_higgs_activity(str(tmp_path / 'none.txt.gz'))
  with pytest.raises(ConfigError, match='mode'):
    higgs.higgs_samples(tiny_path, mode='user')
  with pytest.raises(ConfigError, match='peak_bin'):
    higgs.higgs_samples(tiny_path, num_bins=4, peak_bin=4)
  with pytest.raises(DataError, match='no samples'):
    higgs.higgs_samples(tiny_path, min_events=100)


@pytest.fixture(scope='module')
def activity():
  return higgs.read_higgs_activity()  # the shipped file


def test_shipped_file_counts(activity):
  assert len(activity) == 563_069
  assert activity.type_counts() == {'RT': 354_930, 'MT': 171_237, 'RE': 36_902}
  _, counts = activity.target_counts()
  assert (counts >= 10).sum() == 5_648
  assert (counts >= 100).sum() == 682


def test_shipped_targets_with_100_events(activity):
  s = higgs.higgs_samples(activity=activity, min_events=100)
  dyn = s.dynamics
  validate_dynamics(dyn)
  assert dyn.x.shape == (682, 7, 60) and dyn.x.dtype == np.float32
  assert tuple(dyn.feature_names) == higgs.FEATURES
  assert (dyn.x >= 0).all()
  # Each action counts once: the five count rows sum to the window's actions.
  np.testing.assert_array_equal(dyn.x[:, :5].sum(axis=(1, 2)), s.window_events)
  assert (s.window_events + s.later_events <= s.total_lines).all()
  assert np.median(s.window_events / s.total_lines) > 0.5  # window choice
  # The graph only grows: LCC size is non-decreasing in time.
  assert (np.diff(dyn.x[:, 6], axis=1) >= 0).all()
