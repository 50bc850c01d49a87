"""The Weibo-scale generator and lazy batching (memory flat in the cascades)."""

import tracemalloc

import numpy as np

import configs.cyan as cyan_configs
from cyan_rcbm.data import batching
from cyan_rcbm.data import registry
from cyan_rcbm.data import weibo_scale


def test_generator_is_deterministic_long_tailed_and_valid():
  a = weibo_scale.generate(3000, seed=1)
  b = weibo_scale.generate(3000, seed=1)
  lengths = np.array([len(c) for c in a.cascades])
  assert [c.users.tolist() for c in a.cascades[:50]] == [
      c.users.tolist() for c in b.cascades[:50]]
  assert lengths.min() >= 2 and lengths.max() <= weibo_scale.MAX_LENGTH
  assert np.median(lengths) <= 5 and lengths.max() >= 100  # long tail
  for c in a.cascades[:200]:
    assert len(set(c.users.tolist())) == len(c)       # one activation each
    assert np.all(np.diff(c.times) >= 0)
    assert c.users.max() < weibo_scale.NUM_USERS


def test_registry_caches_the_set_and_config_trains_it(tmp_path, monkeypatch):
  monkeypatch.setenv('CYAN_RCBM_CACHE', str(tmp_path))
  config = cyan_configs.get_config('synthetic_weibo')
  config.data.num_cascades = 400
  splits = registry.load_splits(config.data)
  assert len(splits.train) + len(splits.valid) + len(splits.test) == 400
  assert list(tmp_path.glob('weibo-scale-n400-*.npz'))
  again = registry.load_splits(config.data)  # from the cache
  assert again.train.cascades[0].users.tolist() == (
      splits.train.cascades[0].users.tolist())


def _batcher_bytes(num_cascades: int) -> int:
  data = weibo_scale.generate(num_cascades, seed=0)
  tracemalloc.start()
  batcher = batching.CascadeBatcher(data, batch_size=64,
                                    max_batch_events=4096, calendar=False)
  size = tracemalloc.get_traced_memory()[0]
  tracemalloc.stop()
  assert batcher.num_batches() > 0
  return size


def test_batcher_pads_lazily_so_memory_does_not_grow_with_the_data():
  small, large = _batcher_bytes(500), _batcher_bytes(4000)
  # bookkeeping (lengths, plan) is a few integers per cascade; padded
  # copies of the cascades would cost hundreds of bytes each.
  assert (large - small) / 3500 < 64, (small, large)
  batcher = batching.CascadeBatcher(weibo_scale.generate(300, seed=0),
                                    batch_size=64, max_batch_events=4096,
                                    calendar=False)
  events = sum(int(b.mask.sum()) for b in batcher.batches())
  assert events == batcher.report.num_events
