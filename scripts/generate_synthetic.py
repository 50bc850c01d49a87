"""Writes the CYAN-RNN paper's four synthetic sets (section 4.2; equations.md
A2).

python scripts/generate_synthetic.py --out_dir=data/synthetic

Each set goes to `<out_dir>/<set>/` (cascades.jsonl, graph.txt,
edge_params.json, meta.json; see `cyan_rcbm.data.synthetic.save_synthetic`).
The same flags always give byte-identical files.
"""

import time

from absl import app
from absl import flags

from cyan_rcbm.data import stats
from cyan_rcbm.data import synthetic

_OUT_DIR = flags.DEFINE_string('out_dir', None, 'Output directory.',
                               required=True)
_NUM_CASCADES = flags.DEFINE_integer('num_cascades', 20000,
                                     'Cascades per set.')
_NUM_USERS = flags.DEFINE_integer('num_users', 32, 'Users U (a power of 2).')
_HORIZON = flags.DEFINE_float('horizon', 100.0, 'Time horizon T.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of every random draw.')
_SETS = flags.DEFINE_list('sets', 'cp_exp,cp_ray,random_exp,random_ray',
                          'Sets to write, <network>_<delay>.')
_PARAM_DRAW = flags.DEFINE_enum('param_draw', 'uniform',
                                list(synthetic.PARAM_DRAWS),
                                'Draw of the per-edge delay parameters.')
_EDGES_PER_USER = flags.DEFINE_float(
    'edges_per_user', 3.0, 'Edges per user of the fixed-count Kronecker '
    'graph; 0: Bernoulli Kronecker graph (equations.md A2).')
_TRANSMIT_PROB = flags.DEFINE_float(
    'transmit_prob', 0.5, 'Probability that an edge transmits in a cascade.')
_MIN_LENGTH = flags.DEFINE_integer(
    'min_length', 2, 'Shorter cascades are redrawn (1: keep all).')


def _parse_set(name: str) -> tuple[str, str]:
  network, _, delay = name.partition('_')
  if network not in synthetic.NETWORKS or delay not in synthetic.DELAYS:
    raise app.UsageError(
        f'--sets: {name!r} is not <network>_<delay> with network in '
        f'{tuple(synthetic.NETWORKS)} and delay in {tuple(synthetic.DELAYS)}')
  return network, delay


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  sets = [(name, *_parse_set(name)) for name in _SETS.value]
  start = time.perf_counter()
  for name, network, delay in sets:
    t0 = time.perf_counter()
    s = synthetic.make_synthetic(
        network, delay, num_users=_NUM_USERS.value,
        num_cascades=_NUM_CASCADES.value, horizon=_HORIZON.value,
        seed=_SEED.value, param_draw=_PARAM_DRAW.value,
        edges_per_user=_EDGES_PER_USER.value,
        transmit_prob=_TRANSMIT_PROB.value, min_length=_MIN_LENGTH.value)
    t1 = time.perf_counter()
    out = f'{_OUT_DIR.value}/{name}'
    synthetic.save_synthetic(s, out)
    t2 = time.perf_counter()
    st = stats.distribution_stats(s.dataset)
    print(f'{name}: {st["cascades"]} cascades, {st["events"]} events, '
          f'{s.adjacency.sum()} edges, length mean {st["length_mean"]:.2f} '
          f'max {st["length_max"]}, users seen {st["users_seen"]}, last time '
          f'mean {st["last_time_mean"]:.2f} median '
          f'{st["last_time_median"]:.2f}; {s.num_redrawn} shorter than '
          f'{s.min_length} redrawn; generated in {t1 - t0:.1f}s, written in '
          f'{t2 - t1:.1f}s -> {out}')
  print(f'total wall time {time.perf_counter() - start:.1f}s')


if __name__ == '__main__':
  app.run(main)
