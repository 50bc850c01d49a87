"""Tests for cyan_rcbm.common: workdir files, progress, checkpoints, configs."""

import io
import json
import os
import sys

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


def _tensorboard_scalars(logdir):
  """{tag: [(step, value)]} from the TFRecord event files in `logdir`."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  out = {}
  for name in sorted(os.listdir(logdir)):
    assert name.startswith('events.out.tfevents.'), name
    with open(os.path.join(logdir, name), 'rb') as f:
      raw = f.read()
    pos = 0
    while pos < len(raw):  # record: u64 length, u32 crc, data, u32 crc
      length = int.from_bytes(raw[pos:pos + 8], 'little')
      event = event_pb2.Event.FromString(raw[pos + 12:pos + 12 + length])
      pos += 16 + length
      for value in event.summary.value:
        out.setdefault(value.tag, []).append((event.step, value.simple_value))
  return out


def test_metric_writer_tensorboard_scalars(tmp_path, monkeypatch):
  monkeypatch.delenv(workdir_lib.TENSORBOARD_ENV, raising=False)
  writer = workdir_lib.MetricWriter(str(tmp_path), tensorboard=True)
  writer.write(1, train_nll=np.float32(2.5), epoch=1, note='text',
               bad=float('nan'))
  writer.write(2, **{'valid_acc@1': 0.25})
  writer.close()
  scalars = _tensorboard_scalars(str(tmp_path / 'tensorboard'))
  assert scalars == {'train/nll': [(1, 2.5)], 'epoch': [(1, 1.0)],
                     'valid/acc_at_1': [(2, 0.25)]}
  assert [r['step'] for r in writer.read()] == [1, 2]  # jsonl unchanged


def test_metric_writer_tensorboard_switch(tmp_path, monkeypatch):
  monkeypatch.delenv(workdir_lib.TENSORBOARD_ENV, raising=False)
  config = _config()
  config.tensorboard = True
  on, off = str(tmp_path / 'on'), str(tmp_path / 'off')
  workdir_lib.prepare_workdir(config, on)
  workdir_lib.prepare_workdir(_config(), off)
  assert workdir_lib.tensorboard_requested(on)
  assert not workdir_lib.tensorboard_requested(off)
  monkeypatch.setenv(workdir_lib.TENSORBOARD_ENV, '1')
  assert workdir_lib.tensorboard_requested(off)
  monkeypatch.setenv(workdir_lib.TENSORBOARD_ENV, 'off')
  assert not workdir_lib.tensorboard_requested(on)
  monkeypatch.setenv(workdir_lib.TENSORBOARD_ENV, 'maybe')
  with pytest.raises(errors.ConfigError, match='CYAN_RCBM_TENSORBOARD'):
    workdir_lib.tensorboard_requested(on)
  monkeypatch.delenv(workdir_lib.TENSORBOARD_ENV)
  writer = workdir_lib.MetricWriter(on)  # from config.json
  writer.truncate_after(0)
  writer.write(1, loss=1.0)
  writer.close()
  assert os.listdir(os.path.join(on, 'tensorboard'))
  workdir_lib.MetricWriter(off).write(1, loss=1.0)
  assert not os.path.exists(os.path.join(off, 'tensorboard'))


def test_metric_writer_without_tensorboardx_says_so_once(
    tmp_path, monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, 'tensorboardX', None)  # import fails
  monkeypatch.setattr(workdir_lib, '_warned_no_tensorboard', False)
  for _ in range(2):
    writer = workdir_lib.MetricWriter(str(tmp_path), tensorboard=True)
    writer.write(1, loss=1.0)
    writer.write(2, loss=0.5)
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'tensorboardX is not installed' in err
  assert [r['step'] for r in writer.read()] == [1, 2, 1, 2]
  assert not os.path.exists(tmp_path / 'tensorboard')


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
  first = progress.report(2, work=400, loss=2.5)
  assert first.startswith('[cyan] step 2/10 (20%) | loss 2.5 | elapsed')
  assert 'ETA' not in first  # the first steps include compilation
  line = progress.report(5, work=1000, loss=1.5)
  assert line.startswith('[cyan] step 5/10 (50%)')
  assert 'loss 1.5' in line and 'events/s' in line and 'ETA' in line
  assert stream.getvalue() == first + '\n' + line + '\n'
  assert '\r' not in stream.getvalue()


def test_progress_rate_after_the_first_report_excludes_warmup(monkeypatch):
  clock = iter([0.0, 100.0, 110.0])  # 100 s of "compilation" before step 1
  monkeypatch.setattr(workdir_lib.time, 'perf_counter', lambda: next(clock))
  progress = workdir_lib.Progress('rcbm', total=21, unit='iterations',
                                  stream=io.StringIO())
  progress.report(1)
  line = progress.report(11)  # 10 iterations in 10 s: 1/s, 10 left
  assert '1 iterations/s' in line and 'ETA 0m10s' in line
  assert 'elapsed 1m50s' in line


def test_progress_rate_leaves_out_excluded_time(monkeypatch):
  clock = iter([0.0, 0.0, 30.0, 60.0])
  monkeypatch.setattr(workdir_lib.time, 'perf_counter', lambda: next(clock))
  progress = workdir_lib.Progress('cyan', total=30, unit='events',
                                  stream=io.StringIO())
  progress.report(1, work=100)
  progress.exclude(20.0)  # e.g. a validation pass between the reports
  line = progress.report(11, work=1100)  # 1,000 events in 30 - 20 s
  assert '100 events/s' in line
  line = progress.report(21, work=2100)  # 2,000 events in 60 - 20 s
  # the ETA stays wall-clock: 60 s for 20 steps, 9 steps left
  assert '| 50 events/s' in line and 'ETA 0m27s' in line


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
  with pytest.raises(errors.ConfigError, match='valid: default, tiny'):
    config_loading.load_config('configs/demo.py:nope')
  with pytest.raises(errors.ConfigError, match="no field 'nope'"):
    config_loading.load_config('configs/demo.py', nope=1)
  with pytest.raises(errors.ConfigError, match='does not exist'):
    config_loading.load_config('configs/missing.py')


def test_checkpointer_falls_back_past_a_damaged_checkpoint(tmp_path, capsys):
  ckpt = checkpoint.Checkpointer(str(tmp_path))
  state = {'w': jnp.ones((2, 3))}
  for step in (1, 2):
    ckpt.save(step, {'w': state['w'] * step}, {'epoch': step})
  meta = os.path.join(ckpt.directory, '2', 'meta', 'metadata')
  with open(meta, 'r+b') as f:
    f.write(b'\x00garbage')
  # read-only use: the older one, the folder left as it is.
  step, restored, _ = checkpoint.Checkpointer(str(tmp_path)).restore(
      state, set_aside=False)
  assert step == 1 and float(restored['w'][0, 0]) == 1.0
  assert sorted(os.listdir(ckpt.directory)) == ['1', '2']
  assert '/checkpoints/2 is damaged' in capsys.readouterr().err
  # a run: the damaged one is moved aside, the next save goes on from it.
  again = checkpoint.Checkpointer(str(tmp_path))
  assert again.restore(state)[0] == 1
  assert os.listdir(tmp_path / 'checkpoints_damaged') == ['2']
  again.save(2, state, {'epoch': 2})
  assert again.latest_step() == 2
  with pytest.raises(ValueError, match='keep at least 2'):
    checkpoint.Checkpointer(str(tmp_path), max_to_keep=1)


def test_checkpointer_skips_a_checkpoint_of_another_shape(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path))
  ckpt.save(1, {'w': jnp.ones((2, 3))}, {'level': 1})
  assert ckpt.restore({'w': jnp.ones((4, 4))}) is None  # not damaged
  assert os.listdir(ckpt.directory) == ['1']
  with open(os.path.join(ckpt.directory, '1', 'meta', 'metadata'), 'wb') as f:
    f.write(b'{')
  with pytest.raises(errors.DataError, match='checkpoints: no checkpoint '
                     r'restores: steps \[1\] are all damaged'):
    ckpt.restore({'w': jnp.ones((2, 3))})
