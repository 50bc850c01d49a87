"""Writes RCBM's dynamics sample sets (equations.md B1, B8) as .npz files.

python scripts/prepare_dynamics.py --out_dir=runs/dynamics

* `higgs_target.npz`, `higgs_window.npz`: the seven Twitter features from the
  Higgs activity file (`cyan_rcbm.data.higgs`), per target user / per hour;
* `cascades_<name>.npz`: the five B8 features per cascade
  (`cyan_rcbm.data.cascade_dynamics`) for the shipped sets with a follower
  graph (android, christianity, topolstm_twitter: all their files pooled) and
  the synthetic sets (generated here with their graph).

Each file holds `x`, `feature_names`, `ids`, `source` and per-sample side
arrays `extra_*` (e.g. `extra_later_events`, a forecasting target); read it
with `cyan_rcbm.data.dynamics.read_dynamics` / `read_extras`.
"""

import os
import time

from absl import app
from absl import flags

from cyan_rcbm.data import cascade_dynamics
from cyan_rcbm.data import dynamics
from cyan_rcbm.data import higgs
from cyan_rcbm.data import readers
from cyan_rcbm.data import synthetic

_SHIPPED = ('android', 'christianity', 'topolstm_twitter')
_SYNTHETIC = ('synthetic_cp_exp', 'synthetic_cp_ray', 'synthetic_random_exp',
              'synthetic_random_ray')

_OUT_DIR = flags.DEFINE_string('out_dir', 'runs/dynamics', 'Output directory.')
_SETS = flags.DEFINE_list(
    'sets', ['higgs_target', 'higgs_window', *_SHIPPED, *_SYNTHETIC],
    'Sets to write.')
_NUM_BINS = flags.DEFINE_integer('num_bins', 60, 'Time bins T of every set.')
_HIGGS_MIN_EVENTS = flags.DEFINE_integer(
    'higgs_min_events', 10, 'higgs_target: minimum lines on a target; '
    'higgs_window: minimum actions in a window.')
_GRAPH_DIRECTION = flags.DEFINE_enum(
    'graph_direction', 'forward', list(readers.GRAPH_DIRECTIONS),
    'Shipped graphs: `a b` lines as a -> b (b follows a), reversed, or both.')
_SYNTHETIC_CASCADES = flags.DEFINE_integer(
    'synthetic_cascades', 2000, 'Cascades per synthetic set.')
_SYNTHETIC_HORIZON = flags.DEFINE_float(
    'synthetic_horizon', 100.0, 'Horizon T of the synthetic generator; also '
    'the window of their samples.')


def _build(name: str, cache: dict):
  """(Dynamics, extras) of one set."""
  if name in ('higgs_target', 'higgs_window'):
    if 'higgs' not in cache:
      cache['higgs'] = higgs.read_higgs_activity()
    s = higgs.higgs_samples(mode=name.split('_')[1],
                            num_bins=_NUM_BINS.value,
                            min_events=_HIGGS_MIN_EVENTS.value,
                            activity=cache['higgs'])
    return s.dynamics, s.extras()
  if name in _SHIPPED:
    dataset = cascade_dynamics.read_pooled_set(
        name, graph_direction=_GRAPH_DIRECTION.value)
    horizon = None  # the median duration
  elif name in _SYNTHETIC:
    network, delay = name.split('_')[1:]
    dataset = synthetic.make_synthetic(
        network, delay, num_cascades=_SYNTHETIC_CASCADES.value,
        horizon=_SYNTHETIC_HORIZON.value).dataset
    horizon = _SYNTHETIC_HORIZON.value
  else:
    raise app.UsageError(f'--sets: unknown set {name!r}; valid: higgs_target, '
                         f'higgs_window, {", ".join(_SHIPPED + _SYNTHETIC)}')
  s = cascade_dynamics.cascade_samples(dataset, num_bins=_NUM_BINS.value,
                                       horizon=horizon)
  return s.dynamics, s.extras()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  start = time.perf_counter()
  cache = {}
  for name in _SETS.value:
    t0 = time.perf_counter()
    dyn, extras = _build(name, cache)
    stem = name if name.startswith('higgs') else f'cascades_{name}'
    path = os.path.join(_OUT_DIR.value, f'{stem}.npz')
    dynamics.write_dynamics(dyn, path, extras=extras)
    n, d, t = dyn.x.shape
    print(f'{path}: n={n} D={d} T={t} ({time.perf_counter() - t0:.1f} s)  '
          f'{dyn.source}', flush=True)
  print(f'total {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
  app.run(main)
