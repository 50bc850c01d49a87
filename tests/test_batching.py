"""Tests for cyan_rcbm.data.batching."""

import datetime

import numpy as np
import pytest

from cyan_rcbm import errors
from cyan_rcbm.data import batching
from cyan_rcbm.data import types


def _dataset(lengths, num_users=50, seed=0, timestamps=False, parents=False):
  rng = np.random.default_rng(seed)
  cascades = []
  for i, n in enumerate(lengths):
    users = rng.choice(num_users, size=n, replace=n > num_users).astype(
        np.int32)
    times = np.cumsum(rng.exponential(size=n))
    times[0] = 0.0
    cascades.append(types.Cascade(
        id=f'c{i}', users=users, times=times,
        parents=(np.arange(n, dtype=np.int32) - 1) if parents else None,
        timestamps=(1.3e9 + 3600 * times) if timestamps else None))
  return types.CascadeDataset(cascades=cascades,
                              vocab=[str(u) for u in range(num_users)])


def test_masks_gaps_and_padding_rows():
  data = _dataset([3, 5, 2])
  batcher = batching.CascadeBatcher(data, batch_size=4, bucket_lengths=[8])
  [batch] = list(batcher.batches())
  assert batch.users.shape == (4, 8) and batch.users.dtype == np.int32
  np.testing.assert_array_equal(batch.mask.sum(1), [3, 5, 2, 0])
  np.testing.assert_array_equal(batch.index, [0, 1, 2, -1])
  c = data.cascades[1]
  np.testing.assert_array_equal(batch.users[1, :5], c.users)
  np.testing.assert_allclose(batch.gaps[1, :5], np.r_[0, np.diff(c.times)],
                             rtol=1e-6)
  np.testing.assert_allclose(batch.times[1, :5], c.times - c.times[0],
                             rtol=1e-6)
  assert np.all(batch.gaps[~batch.mask] == 0)
  assert np.all(batch.users[3] == 0) and batch.num_events == 10
  assert batch.calendar is None and batch.parents is None


def test_a_long_cascade_does_not_lengthen_other_batches():
  data = _dataset([5] * 40 + [300] + [12] * 20)
  batcher = batching.CascadeBatcher(data, batch_size=16)
  assert batcher.bucket_lengths == (8, 16, 32, 64, 128, 256, 512)
  lengths = {}
  for batch in batcher.batches(seed=0):
    real = batch.index[batch.index >= 0]
    lengths[tuple(real)] = batch.users.shape[1]
    # only the long cascade's own batch is long; the rest stay short.
    assert batch.users.shape[1] == (512 if 40 in real else 8 if np.all(
        real < 40) else 16)
    if batch.users.shape[1] == 16:  # its cascades are the 12-event ones
      assert np.all((real > 40) | (batch.mask.sum(1)[:len(real)] <= 8))
  # every cascade appears exactly once per epoch; full batches except one.
  seen = np.sort(np.concatenate([np.array(k) for k in lengths]))
  np.testing.assert_array_equal(seen, np.arange(61))
  assert batcher.num_batches() == len(lengths) == 4
  assert sorted(len(k) for k in lengths) == [13, 16, 16, 16]


def test_default_bucket_lengths():
  assert batching.bucket_lengths_for(28, 8, 2.0, fine_until=32) == (
      8, 12, 16, 20, 24, 28)
  assert batching.bucket_lengths_for(100, 8, 2.0, fine_until=16) == (
      8, 12, 16, 32, 64, 128)
  assert batching.bucket_lengths_for(100, 8, 1.5) == (8, 12, 20, 32, 48, 72,
                                                      112)


def test_max_batch_events_bounds_rows_of_long_buckets():
  data = _dataset([5] * 10 + [300])
  batcher = batching.CascadeBatcher(data, batch_size=16,
                                    max_batch_events=1024)
  rows = dict(zip(batcher.bucket_lengths, batcher.rows))
  assert rows[8] == 16 and rows[512] == 2
  assert (2, 512) in batcher.shapes()


def test_truncation_keeps_last_events_and_counts():
  data = _dataset([10, 4, 7], parents=True)
  batcher = batching.CascadeBatcher(data, batch_size=3, max_events=5,
                                    bucket_lengths=[8])
  assert batcher.report.num_truncated == 2
  assert batcher.report.num_events_truncated == 5 + 2
  [batch] = list(batcher.batches())
  np.testing.assert_array_equal(batch.users[0, :5], data.cascades[0].users[5:])
  np.testing.assert_array_equal(batch.mask.sum(1), [5, 4, 5])
  # parents re-indexed into the kept window; the first kept event lost its.
  np.testing.assert_array_equal(batch.parents[0, :5], [-1, 0, 1, 2, 3])
  assert batch.times[0, 0] == 0 and batch.gaps[0, 0] == 0
  assert 'truncated' in str(batcher.report)


def test_order_is_a_pure_function_of_seed_and_epoch():
  data = _dataset(np.random.default_rng(1).integers(2, 40, size=100))
  make = lambda: batching.CascadeBatcher(data, batch_size=8)
  order = lambda b, s, e: [tuple(x.index) for x in b.batches(seed=s, epoch=e)]
  a, b = make(), make()
  assert order(a, 3, 2) == order(b, 3, 2)
  assert order(a, 3, 2) != order(a, 3, 1)
  assert order(a, 3, 2) != order(a, 4, 2)
  # resuming from position 5 replays the rest of the same epoch.
  assert [tuple(x.index) for x in a.batches(seed=3, epoch=2, start=5)] == (
      order(a, 3, 2)[5:])
  # evaluation order is fixed and sorted by bucket.
  assert order(a, None, 0) == order(b, None, 7)


def test_calendar_fields_match_datetime():
  stamps = np.array([0.0, 1285000000.5, 1700000000, 951782400 + 86399])
  got = batching.calendar_fields(stamps)
  for ts, row in zip(stamps, got):
    d = datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc)
    assert list(row) == [d.year - 1970, d.month - 1, d.day - 1, d.weekday(),
                         d.hour, d.minute, d.second]
  data = _dataset([3, 4], timestamps=True)
  [batch] = list(batching.CascadeBatcher(data, batch_size=2,
                                         bucket_lengths=[4]).batches())
  assert batch.calendar.shape == (2, 4, 7)
  np.testing.assert_array_equal(
      batch.calendar[1], batching.calendar_fields(data.cascades[1].timestamps))


@pytest.mark.parametrize('cascade,match', [
    (types.Cascade('bad', np.array([0, 1], np.int32), np.array([1.0, 0.5])),
     'not sorted'),
    (types.Cascade('bad', np.array([0, 9], np.int32), np.array([0.0, 1.0])),
     'out of range'),
    (types.Cascade('bad', np.array([0, 1], np.int32),
                   np.array([0.0, np.nan])), 'non-finite'),
])
def test_bad_cascades_raise_data_errors(cascade, match):
  data = types.CascadeDataset([cascade], vocab=['a', 'b', 'c'],
                              source='f.txt')
  with pytest.raises(errors.DataError, match=match) as e:
    batching.CascadeBatcher(data, batch_size=2)
  assert "cascade 'bad'" in str(e.value)


def test_config_errors():
  data = _dataset([3, 40])
  with pytest.raises(errors.ConfigError, match='largest bucket'):
    batching.CascadeBatcher(data, batch_size=2, bucket_lengths=[8])
  with pytest.raises(errors.ConfigError, match='max_events'):
    batching.CascadeBatcher(data, batch_size=2, max_events=1)
  assert batching.repeated_users(_dataset([60], num_users=50)) == 1
