"""Tests for cyan_rcbm.common: workdir files, progress, checkpoints, configs."""

import io
import json
import os

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from cyan_rcbm import errors
from cyan_rcbm.common import checkpoint
from cyan_rcbm.common import config_loading
from cyan_rcbm.common import workdir as workdir_lib


def _config(seed=0):
  config = ml_collections.ConfigDict()
  config.seed = seed
  config.model = ml_collections.ConfigDict({'hidden': 8})
  return config


def test_prepare_workdir_writes_config_and_detects_resume(tmp_path):
  wd = str(tmp_path / 'run')
  assert workdir_lib.prepare_workdir(_config(), wd) is False
  with open(os.path.join(wd, 'config.json')) as f:
    assert json.load(f) == {'seed': 0, 'model': {'hidden': 8}}
  assert workdir_lib.prepare_workdir(_config(), wd) is True


def test_prepare_workdir_rejects_a_different_config(tmp_path):
  wd = str(tmp_path / 'run')
  workdir_lib.prepare_workdir(_config(), wd)
  with pytest.raises(errors.ConfigError, match='seed'):
    workdir_lib.prepare_workdir(_config(seed=1), wd)


def test_metric_writer_truncates_after_resume_step(tmp_path):
  writer = workdir_lib.MetricWriter(str(tmp_path))
  for step in range(1, 6):
    writer.write(step, loss=np.float32(1.0 / step), acc=jnp.asarray(0.5))
  writer.truncate_after(3)
  rows = writer.read()
  assert [r['step'] for r in rows] == [1, 2, 3]
  assert rows[0]['loss'] == pytest.approx(1.0)


def test_dump_json_handles_numpy_and_nonfinite(tmp_path):
  path = str(tmp_path / 'x.json')
  workdir_lib.dump_json({'a': np.arange(3), 'b': float('nan'),
                         'c': np.float64(2.5)}, path)
  with open(path) as f:
    assert json.load(f) == {'a': [0, 1, 2], 'b': None, 'c': 2.5}


def test_progress_line_has_rate_and_eta():
  stream = io.StringIO()
  progress = workdir_lib.Progress('cyan', total=10, unit='events',
                                  stream=stream)
  line = progress.report(5, work=1000, loss=1.5)
  assert line.startswith('[cyan] step 5/10 (50%)')
  assert 'loss 1.5' in line and 'events/s' in line and 'ETA' in line
  assert stream.getvalue() == line + '\n'


def test_checkpointer_round_trip_keeps_latest(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), max_to_keep=2)
  state = {'w': jnp.ones((2, 3)), 'step': jnp.asarray(0, jnp.int32)}
  assert ckpt.restore(state) is None
  for step in (1, 2, 3):
    ckpt.save(step, {'w': state['w'] * step,
                     'step': jnp.asarray(step, jnp.int32)}, {'epoch': step})
  step, restored, meta = checkpoint.Checkpointer(str(tmp_path)).restore(state)
  assert step == 3 and meta == {'epoch': 3}
  np.testing.assert_array_equal(restored['w'], 3 * np.ones((2, 3)))
  assert sorted(os.listdir(ckpt.directory)) == ['2', '3']


def test_load_config_variants_and_overrides():
  config = config_loading.load_config('configs/demo.py', seed=3)
  assert config.task == 'demo' and config.seed == 3
  with pytest.raises(errors.ConfigError, match='no variants'):
    config_loading.load_config('configs/demo.py:nope')
  with pytest.raises(errors.ConfigError, match="no field 'nope'"):
    config_loading.load_config('configs/demo.py', nope=1)
  with pytest.raises(errors.ConfigError, match='does not exist'):
    config_loading.load_config('configs/missing.py')
