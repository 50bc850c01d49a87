"""RCBM runtime benchmark (paper Figs. 5-6, left panels): prints one JSON object.

python scripts/bench_rcbm.py                   # everything (a few minutes)
python scripts/bench_rcbm.py --sizes=100,1000  # smaller
python scripts/bench_rcbm.py --devices=1,2,4 --sizes=1000,10000 \
    --steps=fixed --noheadline --noforms        # data-parallel scaling

Data: planted samples (`cyan_rcbm.data.planted`, D=7, T=60, 5 planted
filters of Tw=7). Model: a 2-level RCBM with K=10, Tw=7 per level, pooling
c=2, one restart, trained to convergence (relative decrease of the Eq. 6
objective within an outer iteration < 1e-4, at most `--max_iters` outer
iterations per level), for the fixed step sizes (FS) and the line search (LS).

Keys:
* `rcbm2_n10000_seconds`: wall seconds to train the 2-level FS model on
  10,000 samples, compilation included (it runs first, in a fresh process);
  `rcbm2_n10000_w20_seconds`: the same with 20 W steps per outer iteration.
* `sizes[n][step]`: `ms_per_fista_iter` (level-1 h-step over all n samples,
  K=10), `ms_per_outer_iter` (level 1, mean after the first),
  `seconds_to_convergence` (2 levels, compilation included), outer
  iterations and final objective per level.
* `op_forms_ms`: one scale-and-copy and one deconvolution on 10,000 samples
  per operator form (what `'auto'` chooses from).
* `load`: `uptime` load averages before and after (the machine is shared).

`--devices=1,2,4`: the benchmark (with the other flags given) once per
device count, each in a fresh process with the samples split over N devices
(`--mesh_devices=N`, `cyan_rcbm.common.sharding`); prints
`{"devices": {N: {...}}, "note": ...}`. On a CPU-only machine the N devices
are XLA host devices (`--xla_force_host_platform_device_count=N`) sharing
the same cores: the numbers show the partitioning overhead, not a speed-up.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from cyan_rcbm.common import backend_defaults
from cyan_rcbm.common import precision
from cyan_rcbm.common import sharding
from cyan_rcbm.data.planted import make_planted
from cyan_rcbm.rcbm import cbm
from cyan_rcbm.rcbm import ops
from cyan_rcbm.rcbm import rcbm as rcbm_lib

_SIZES = flags.DEFINE_list('sizes', ['100', '1000', '10000'],
                           'Sample counts n.')
_STEPS = flags.DEFINE_list('steps', ['fixed', 'line_search'], 'Step rules.')
_MAX_ITERS = flags.DEFINE_integer('max_iters', 300,
                                  'Outer iterations per level, at most.')
_BATCH = flags.DEFINE_string(
    'batch_size', 'auto', "Samples per mini-batch ('auto': 500 on CPU, "
    '262144 on GPU/TPU; cyan_rcbm.common.backend_defaults).')
_PRECISION = flags.DEFINE_enum('precision', 'float32', ['float32', 'fast'],
                                'Matmul precision policy (config.precision).')
_FORMS = flags.DEFINE_bool('forms', True, 'Time the operator forms.')
_HEADLINE = flags.DEFINE_bool('headline', True,
                              'Run the n=10,000 2-level timings.')
_RECOVERY_FIGURE = flags.DEFINE_string(
    'recovery_figure', '', 'If set: also learn K=5 filters from 1,000 '
    'planted samples (4 restarts) and draw planted vs learned filters here.')

_DEVICES = flags.DEFINE_list(
    'devices', [], 'Device counts to compare (e.g. 1,2,4), each in its own '
    'process; empty: one run with --mesh_devices.')
_MESH_DEVICES = flags.DEFINE_integer(
    'mesh_devices', 1, 'Devices the samples are split over (1: no sharding).')

K, TW, D, T, POOL = 10, 7, 7, 60, 2


def _batch() -> int:
  return backend_defaults.resolve(_BATCH.value, 'model.batch_size',
                                  '--batch_size')


def _load() -> list[float]:
  return [round(v, 2) for v in os.getloadavg()]


def _data(n: int) -> np.ndarray:
  return make_planted(n, num_features=D, length=T, num_filters=5,
                      filter_length=TW, seed=0)[0].x


def _mesh():
  return sharding.create_mesh(_MESH_DEVICES.value)


def _train_2level(x, cfg):
  """(seconds, per-level summaries) of a 2-level RCBM fit."""
  histories = {}

  def make_callback(level):
    histories[level] = []
    return lambda state, info: histories[level].append(info)

  specs = [rcbm_lib.LevelSpec(K, TW, POOL), rcbm_lib.LevelSpec(K, TW, 1)]
  t0 = time.perf_counter()
  rcbm_lib.fit_rcbm(
      x, specs, cfg=cfg, feature_names=[f'f{j}' for j in range(D)],
      fit_kwargs=dict(max_iters=_MAX_ITERS.value, tol=1e-4,
                      batch_size=_batch(), num_restarts=1, mesh=_mesh()),
      make_callback=make_callback)
  seconds = time.perf_counter() - t0
  levels = []
  for level in (1, 2):
    h = histories[level]
    levels.append({
        'outer_iterations': len(h),
        'converged': bool(abs(h[-1]['rel_change']) < 1e-4),
        'objective': h[-1]['objective'],
        'seconds': sum(i['seconds'] for i in h),
        'ms_per_outer_iter': (1e3 * float(np.mean([i['seconds'] for i in h[1:]]))
                              if len(h) > 1 else None),
        'mean_fista_iters_per_outer': float(np.mean([i['inner_iters']
                                                     for i in h])),
    })
  return seconds, levels


def _ms_per_fista_iter(x_np, cfg):
  """Level-1 h-step over all samples: (time(40) - time(10)) / 30 iterations."""
  mesh = _mesh()
  x = cbm.to_solver_layout(x_np, _batch(), cfg.form, mesh=mesh)
  w0 = cbm.init_filters(x_np, K, TW, 0)
  state = cbm.init_state(x, w0, mesh=mesh)
  lam = jnp.asarray(cfg.lam, x.dtype)

  def make(iters):
    c = cbm.SolverConfig(step=cfg.step, lam=cfg.lam, inner_max_iters=iters,
                         inner_tol=0.0)

    @jax.jit
    def solve(x, w, h, xh):
      return lax.map(lambda a: cbm.solve_h(a[0], w, a[1], a[2], lam, c).h,
                     (x, h, xh))
    return solve

  fns = [make(10), make(40)]
  args = (x, state.w, state.h, state.xhat)
  for f in fns:
    jax.block_until_ready(f(*args))
  best = float('inf')
  for _ in range(3):
    times = []
    for f in fns:
      t0 = time.perf_counter()
      jax.block_until_ready(f(*args))
      times.append(time.perf_counter() - t0)
    best = min(best, (times[1] - times[0]) / 30)
  return 1e3 * best


def _op_forms_ms(n=10000):
  rng = np.random.default_rng(0)
  w = jnp.asarray(rng.standard_normal((K, 8, TW)), jnp.float32)
  h = jnp.asarray(rng.random((n, T + TW - 1, K)), jnp.float32)
  r = jnp.asarray(rng.standard_normal((n, T, 8)), jnp.float32)
  out = {}
  for form in ops.FORMS:
    conv = jax.jit(lambda w, h, f=form: ops.conv_tm(w, h, f))
    deconv = jax.jit(lambda w, r, f=form: ops.deconv_tm(w, r, f))
    row = {}
    for name, fn, arg in (('scale_and_copy', conv, h), ('deconvolve', deconv,
                                                        r)):
      jax.block_until_ready(fn(w, arg))
      best = float('inf')
      for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(w, arg))
        best = min(best, time.perf_counter() - t0)
      row[name] = round(1e3 * best, 2)
    out[form] = row
  out['auto'] = {'scale_and_copy': ops.resolve_form('auto', 'conv'),
                 'deconvolve': ops.resolve_form('auto', 'deconv')}
  return out


def _recovery_figure(path):
  """Planted filters vs learned ones (docs/rcbm.md figure); returns the cosines."""
  from cyan_rcbm.rcbm import plots  # pylint: disable=g-import-not-at-top
  dyn, w_true, _ = make_planted(1000, num_features=D, length=T, num_filters=5,
                                filter_length=TW, seed=0)
  fit = cbm.fit_cbm(dyn.x, 5, TW, cfg=cbm.SolverConfig(lam=0.3),
                    max_iters=_MAX_ITERS.value, num_restarts=4,
                    batch_size=_batch(), seed=0)
  cosines = [max(plots.best_shift_match(a, b)[0] for b in fit.params.w)
             for a in w_true]
  plots.plot_recovery(
      w_true, np.asarray(fit.params.w), dyn.feature_names, path,
      title='1,000 planted samples (D=7, T=60, noise 0.05): planted filters '
      '(top), learned (bottom)')
  return {'path': path, 'cosines': [round(c, 4) for c in cosines]}


def main(argv):
  del argv  # flags only; --devices re-runs with sys.argv
  if _DEVICES.value:
    out = sharding.rerun_per_device_count(
        __file__, sys.argv[1:], [int(c) for c in _DEVICES.value])
    out['load_average'] = _load()
    print(json.dumps(out))
    return
  with precision.scope(_PRECISION.value):
    result = _run_all()
  print(json.dumps(result))


def _run_all() -> dict:
  result = {'load_before': _load(), **backend_defaults.environment(),
            'precision': _PRECISION.value, 'devices': str(jax.devices()),
            'mesh_devices': sharding.num_devices(_mesh()), 'K': K, 'Tw': TW,
            'D': D, 'T': T, 'pool': POOL, 'batch_size': _batch()}
  if _HEADLINE.value:
    x = _data(10000)
    seconds, levels = _train_2level(x, cbm.SolverConfig())
    result['rcbm2_n10000_seconds'] = round(seconds, 2)
    result['rcbm2_n10000_levels'] = levels
    seconds, levels = _train_2level(x, cbm.SolverConfig(w_steps=20))
    result['rcbm2_n10000_w20_seconds'] = round(seconds, 2)
    result['rcbm2_n10000_w20_levels'] = levels
    result['load_after_headline'] = _load()
  sizes = {}
  for n in [int(s) for s in _SIZES.value]:
    x = _data(n)
    sizes[str(n)] = {}
    for step in _STEPS.value:
      cfg = cbm.SolverConfig(step=step)
      seconds, levels = _train_2level(x, cfg)
      sizes[str(n)][step] = {
          'ms_per_fista_iter': round(_ms_per_fista_iter(x, cfg), 2),
          'ms_per_outer_iter': levels[0]['ms_per_outer_iter'],
          'seconds_to_convergence': round(seconds, 2),
          'levels': levels,
          'load': _load(),
      }
  result['sizes'] = sizes
  if _FORMS.value:
    result['op_forms_ms'] = _op_forms_ms()
  if _RECOVERY_FIGURE.value:
    result['recovery'] = _recovery_figure(_RECOVERY_FIGURE.value)
  result['load_after'] = _load()
  return result


if __name__ == '__main__':
  app.run(main)
