"""Tests for cyan_rcbm.common.backend_defaults: 'auto' per backend."""

import jax
import pytest

from cyan_rcbm import errors
from cyan_rcbm.common import backend_defaults
from cyan_rcbm.common import config_loading
from cyan_rcbm.data import batching


@pytest.fixture(params=['cpu', 'gpu'])
def backend(request, monkeypatch):
  monkeypatch.setattr(jax, 'default_backend', lambda: request.param)
  return request.param


def test_auto_fields_take_the_backend_values(backend, capsys):
  column = 0 if backend == 'cpu' else 1
  rcbm = backend_defaults.resolve_config(
      config_loading.load_config('configs/rcbm.py'))
  cyan = backend_defaults.resolve_config(
      config_loading.load_config('configs/cyan.py:twitter'))
  table = backend_defaults.TABLE
  assert rcbm.model.batch_size == table['model.batch_size'][column]
  assert rcbm.eval.infer_batch_size == table['eval.infer_batch_size'][column]
  assert (cyan.batching.eval_batch_size ==
          table['batching.eval_batch_size'][column])
  assert cyan.batching.max_buckets == table['batching.max_buckets'][column]
  assert rcbm.model.batch_size == (500 if backend == 'cpu' else 262144)
  out = capsys.readouterr().out
  assert f'model.batch_size = {rcbm.model.batch_size} (auto on {backend})' in out


def test_explicit_values_are_kept(backend):
  tiny = backend_defaults.resolve_config(
      config_loading.load_config('configs/rcbm.py:tiny'))
  assert tiny.model.batch_size == 64 and tiny.eval.infer_batch_size == 32
  cyan = config_loading.load_config('configs/cyan.py:tiny')
  cyan.batching.max_buckets = 7
  cyan = backend_defaults.resolve_config(cyan)
  assert cyan.batching.eval_batch_size == 32 and cyan.batching.max_buckets == 7


def test_remat_auto_is_on_for_coverage_on_cpu_only(backend):
  assert backend_defaults.remat('cyan_cov') == (backend == 'cpu')
  assert not backend_defaults.remat('cyan')
  assert backend_defaults.remat('rmtpp', True)
  assert not backend_defaults.remat('cyan_cov', False)


def test_bucket_shapes_are_capped_on_gpu(backend):
  lengths = batching.bucket_lengths_for(4096, 8, 2.0, 0)
  assert len(lengths) == 10
  cap = backend_defaults.resolve('auto', 'batching.max_buckets')
  kept = backend_defaults.cap_buckets(lengths, cap)
  if backend == 'cpu':
    assert kept == lengths
  else:
    assert kept == (8, 64, 512, 4096)


def test_cap_buckets_edges():
  assert backend_defaults.cap_buckets((32, 8, 16), 1) == (32,)
  assert backend_defaults.cap_buckets((8, 16), 5) == (8, 16)
  assert backend_defaults.cap_buckets((8, 16, 24, 32), 2) == (8, 32)


@pytest.mark.parametrize('value', ['big', -1, 2.5, True, None])
def test_bad_values_name_the_field(value):
  with pytest.raises(errors.ConfigError, match='model.batch_size'):
    backend_defaults.resolve(value, 'model.batch_size')


def test_command_line_style_values_parse():
  assert backend_defaults.resolve('AUTO', 'batching.max_buckets') in (0, 4)
  assert backend_defaults.resolve('2000', 'eval.infer_batch_size') == 2000


def test_resolved_runs_on_the_resolved_copy(monkeypatch):
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  config = config_loading.load_config('configs/rcbm.py')
  seen = backend_defaults.resolved(lambda c, w: c.model.batch_size)(config, '')
  assert seen == 262144 and config.model.batch_size == 'auto'
