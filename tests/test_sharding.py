"""Tests for cyan_rcbm.common.sharding: sharded runs equal single-device runs.

The comparisons run in a subprocess with 4 CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=4`): the pytest process
has already initialised JAX with one. This file is also that subprocess's
script (`python tests/test_sharding.py OUT_DIR`): it trains tiny CYAN and
RCBM models with `mesh_devices=1` and `mesh_devices=4`, checks that the
arrays really are split over 4 devices, and writes what the tests compare.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from cyan_rcbm import errors
from cyan_rcbm.common import sharding

DEVICES = 4
# CYAN-RNN (attention; the coverage variant only adds compile time); 6 rows
# per batch (max_batch_events / 32), which 4 devices pad to 8.
_CYAN = dict(model__variant='cyan', data__num_cascades=120,
             data__split_fractions=(0.8, 0.2, 0.0),
             batching__max_batch_events=192, train__num_epochs=1, log_every=1)


# ---------------------------------------------------------------------------
# The subprocess (4 host devices).


def _cyan_run(workdir, mesh_devices):
  """Tiny CYAN-RNN run; (per-step train NLL, valid metrics, final state)."""
  from cyan_rcbm.common import checkpoint  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.common import config_loading  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.cyan import train  # pylint: disable=g-import-not-at-top
  config = config_loading.load_config('configs/cyan.py:tiny',
                                      mesh_devices=mesh_devices, **_CYAN)
  train.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  losses = [r['train_nll'] for r in rows if 'train_nll' in r]
  valid = {k: v for r in rows for k, v in r.items() if k.startswith('valid_')}
  ckpt = checkpoint.Checkpointer(workdir)
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  restored = ocp.PyTreeCheckpointer().restore(
      os.path.join(ckpt.directory, str(ckpt.latest_step()), 'state'))
  return losses, valid, restored


def _worker(out_dir):
  import jax  # pylint: disable=g-import-not-at-top
  from jax.sharding import PartitionSpec as P  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.data.planted import make_planted  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.rcbm import cbm  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.rcbm import rcbm as rcbm_lib  # pylint: disable=g-import-not-at-top
  assert jax.device_count() == DEVICES, jax.devices()
  start = time.perf_counter()
  out = {}
  arrays = {}

  # CYAN: the real training loop, both ways.
  for m in (1, DEVICES):
    print(f"[worker] {time.perf_counter() - start:.1f}s cpu {time.process_time():.1f}s: cyan {m}", flush=True)
    losses, valid, state = _cyan_run(os.path.join(out_dir, f'cyan{m}'), m)
    out[f'cyan{m}'] = dict(losses=losses, valid=valid)
    flat, _ = jax.tree.flatten(state['params'])
    for i, leaf in enumerate(flat):
      arrays[f'cyan{m}_param{i}'] = np.asarray(leaf)

  # RCBM: one CBM fit, both ways; 36 samples in chunks of 12 (3 per device).
  x = make_planted(36, num_features=3, length=16, num_filters=2,
                   filter_length=4, seed=0)[0].x.astype(np.float32)
  cfg = cbm.SolverConfig(lam=0.2, inner_max_iters=20)
  mesh = sharding.create_mesh(DEVICES)
  fits = {}
  print(f"[worker] {time.perf_counter() - start:.1f}s cpu {time.process_time():.1f}s: rcbm", flush=True)
  for m, mesh_m in ((1, None), (DEVICES, mesh)):
    fits[m] = cbm.fit_cbm(x, 3, 4, cfg=cfg, max_iters=6, tol=0.0,
                          batch_size=12, num_restarts=2, restart_iters=2,
                          mesh=mesh_m)
    fit = fits[m]
    out[f'rcbm{m}'] = dict(
        objective=[h['objective'] for h in fit.history],
        inner_iters=[h['inner_iters'] for h in fit.history],
        sigma=float(fit.params.sigma), beta=float(fit.params.beta))
    arrays[f'rcbm{m}_w'] = fit.params.w
    arrays[f'rcbm{m}_h'] = fit.h
    level = rcbm_lib.make_level(fit, 1, 0.2)[0]
    acts = rcbm_lib.infer_level(x, level, rcbm_lib.InferenceSettings(
        max_iters=30, batch_size=16), mesh_m)
    arrays[f'rcbm{m}_infer_h'] = acts.h
  h = fits[DEVICES].state.h
  x_layout = cbm.to_solver_layout(x, 12, cfg.form, mesh=mesh)
  hlo = cbm.outer_step.lower(fits[DEVICES].state, x_layout, num_samples=36,
                             cfg=cfg, mesh=mesh).compile().as_text()
  out['rcbm_sharded'] = dict(
      spec=str(h.sharding.spec), expected=str(P(None, sharding.AXIS)),
      shards=[list(s.data.shape) for s in h.addressable_shards],
      all_reduce='all-reduce' in hlo)
  print(f"[worker] {time.perf_counter() - start:.1f}s cpu {time.process_time():.1f}s: cyan step", flush=True)
  out['cyan_sharded'] = _cyan_step_sharding()
  print(f"[worker] {time.perf_counter() - start:.1f}s cpu {time.process_time():.1f}s: errors", flush=True)
  out['errors'] = _config_errors(x, cfg, mesh, out_dir)
  print(f"[worker] {time.perf_counter() - start:.1f}s cpu {time.process_time():.1f}s: done", flush=True)
  with open(os.path.join(out_dir, 'result.json'), 'w') as f:
    json.dump(out, f)
  np.savez(os.path.join(out_dir, 'arrays.npz'), **arrays)


def _config_errors(x, cfg, mesh, out_dir):
  """Messages of the ConfigErrors of indivisible batch sizes on 4 devices."""
  from cyan_rcbm.common import config_loading  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.cyan import train  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.rcbm import cbm  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.rcbm import train as rcbm_train  # pylint: disable=g-import-not-at-top
  cases = {
      'cyan': lambda: train.train_and_evaluate(config_loading.load_config(
          'configs/cyan.py:tiny', mesh_devices=DEVICES,
          batching__batch_size=6), os.path.join(out_dir, 'bad_cyan')),
      'cyan_too_many': lambda: train.train_and_evaluate(
          config_loading.load_config('configs/cyan.py:tiny', mesh_devices=8),
          os.path.join(out_dir, 'bad_cyan8')),
      'rcbm_fit': lambda: cbm.fit_cbm(x, 2, 4, cfg=cfg, batch_size=10,
                                      mesh=mesh),
      'rcbm_train': lambda: rcbm_train.train_and_evaluate(
          config_loading.load_config('configs/rcbm.py:tiny',
                                     mesh_devices=DEVICES,
                                     model__batch_size=30),
          os.path.join(out_dir, 'bad_rcbm')),
  }
  messages = {}
  for name, fn in cases.items():
    try:
      fn()
      messages[name] = None
    except errors.ConfigError as e:
      messages[name] = str(e)
  return messages


def _cyan_step_sharding():
  """Shardings of the train step's inputs and whether its HLO all-reduces."""
  import jax  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.common import config_loading  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.cyan import evaluate  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.cyan import model as model_lib  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.cyan import parallel  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.cyan import train  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.data import registry  # pylint: disable=g-import-not-at-top
  config = config_loading.load_config('configs/cyan.py:tiny',
                                      mesh_devices=DEVICES, **_CYAN)
  mesh = sharding.create_mesh(DEVICES)
  splits = registry.load_splits(config.data)
  train_b = train.make_batchers(config, splits)[0]
  graphdef, params = model_lib.init_params(
      config.model, splits.train.num_users, calendar=train_b.calendar)
  opt_state = train.create_optimizer(config.train).init(params)
  state = sharding.replicate((params, opt_state, train._zero_stats()), mesh)  # pylint: disable=protected-access
  bucket, rows = train_b.plan()[0]
  batch = parallel.device_batch(train_b.make_batch(bucket, rows), mesh)
  step = train.create_train_step(graphdef, config.train, mesh)
  hlo = step.lower(*state, evaluate.model_inputs(batch),
                   sharding.replicate(np.int32(0), mesh)).compile().as_text()
  return dict(rows=int(batch.users.shape[0]),
              shards=[list(s.data.shape) for s in batch.users.addressable_shards],
              params_replicated=all(
                  leaf.sharding.is_fully_replicated
                  for leaf in jax.tree.leaves(state[0])),
              all_reduce='all-reduce' in hlo)


# ---------------------------------------------------------------------------
# The tests (parent process, 1 device).


@pytest.fixture(scope='module')
def sharded(tmp_path_factory):
  out_dir = str(tmp_path_factory.mktemp('sharding'))
  env = dict(sharding.host_device_env(DEVICES), JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, __file__, out_dir], env=env,
                        capture_output=True, text=True, timeout=600,
                        cwd=os.path.dirname(os.path.dirname(__file__)))
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
  with open(os.path.join(out_dir, 'result.json')) as f:
    result = json.load(f)
  with np.load(os.path.join(out_dir, 'arrays.npz')) as z:
    arrays = dict(z)
  return result, arrays


def test_cyan_sharded_training_equals_single_device(sharded):
  result, arrays = sharded
  one, four = result['cyan1'], result[f'cyan{DEVICES}']
  assert len(one['losses']) == len(four['losses']) >= 5
  np.testing.assert_allclose(four['losses'], one['losses'], rtol=1e-4)
  assert set(one['valid']) == set(four['valid']) and one['valid']
  for key, value in one['valid'].items():
    np.testing.assert_allclose(four['valid'][key], value, rtol=1e-4,
                               atol=1e-6, err_msg=key)
  names = sorted(k[len('cyan1_'):] for k in arrays if k.startswith('cyan1_'))
  assert names
  for name in names:
    np.testing.assert_allclose(arrays[f'cyan{DEVICES}_{name}'],
                               arrays[f'cyan1_{name}'], rtol=1e-4, atol=1e-5,
                               err_msg=name)


def test_cyan_batch_is_split_and_params_replicated(sharded):
  info = sharded[0]['cyan_sharded']
  # 6 cascades padded to 8 rows: 2 per device; the gradient all-reduces.
  assert info['rows'] == 8
  assert info['shards'] == [[2, 32]] * DEVICES
  assert info['params_replicated'] and info['all_reduce']


def test_rcbm_sharded_fit_equals_single_device(sharded):
  result, arrays = sharded
  one, four = result['rcbm1'], result[f'rcbm{DEVICES}']
  assert len(one['objective']) == len(four['objective']) == 6
  np.testing.assert_allclose(four['objective'], one['objective'], rtol=1e-4)
  np.testing.assert_allclose(four['inner_iters'], one['inner_iters'])
  np.testing.assert_allclose(four['sigma'], one['sigma'], rtol=1e-4)
  np.testing.assert_allclose(four['beta'], one['beta'], rtol=1e-4)
  for key in ('w', 'h', 'infer_h'):
    np.testing.assert_allclose(arrays[f'rcbm{DEVICES}_{key}'],
                               arrays[f'rcbm1_{key}'], rtol=1e-3, atol=1e-4,
                               err_msg=key)


def test_rcbm_samples_are_split_and_w_step_reduces(sharded):
  info = sharded[0]['rcbm_sharded']
  assert info['spec'] == info['expected']
  # [C=3, B=12, S=19, K=3] chunks: each device holds 3 samples of each.
  assert info['shards'] == [[3, 3, 19, 3]] * DEVICES
  assert info['all_reduce']


# ---------------------------------------------------------------------------
# Errors and helpers (1 device).


def test_indivisible_batches_on_four_devices_are_config_errors(sharded):
  messages = sharded[0]['errors']
  assert 'batching.batch_size=6 does not split over 4' in messages['cyan']
  assert 'mesh_devices=8 but JAX sees 4' in messages['cyan_too_many']
  assert 'batch_size=10 does not split over 4' in messages['rcbm_fit']
  assert 'batch_size=30 does not split over 4' in messages['rcbm_train']


def test_more_devices_than_exist_is_a_config_error():
  with pytest.raises(errors.ConfigError, match='xla_force_host_platform'):
    sharding.create_mesh(2)
  with pytest.raises(errors.ConfigError, match='mesh_devices must be'):
    sharding.create_mesh(-1)
  assert sharding.create_mesh(1) is None
  assert sharding.create_mesh(0) is None  # all devices: the only one


class _FakeMesh:
  size = 4


def test_indivisible_sizes_are_config_errors():
  with pytest.raises(errors.ConfigError,
                     match=r'batching.batch_size=6 does not split over 4 '
                     r'devices.*4 or 8'):
    sharding.check_divisible(6, _FakeMesh(), 'batching.batch_size')
  with pytest.raises(errors.ConfigError, match='multiple of 4, e.g. 4'):
    sharding.check_divisible(3, _FakeMesh(), 'batch_size')
  sharding.check_divisible(8, _FakeMesh(), 'batch_size')
  sharding.check_divisible(7, None, 'batch_size')
  assert sharding.round_up(5, _FakeMesh()) == 8
  assert sharding.round_up(5, None) == 5


def test_host_device_env_replaces_the_count(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_foo=1 '
                     '--xla_force_host_platform_device_count=2')
  assert sharding.host_device_env(4)['XLA_FLAGS'] == (
      '--xla_foo=1 --xla_force_host_platform_device_count=4')


def test_pad_rows():
  x = np.arange(6).reshape(3, 2)
  np.testing.assert_array_equal(sharding.pad_rows(x, 4, -1),
                                [[0, 1], [2, 3], [4, 5], [-1, -1]])
  assert sharding.pad_rows(x, 3) is x


if __name__ == '__main__':
  _worker(sys.argv[1])
