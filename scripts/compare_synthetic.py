"""Compares our synthetic sets with the CYAN-RNN authors' shipped ones.

python scripts/compare_synthetic.py
--authors_dir=../shared/data/cyanrnn-synthetic

For CP-Exp and Random-Exp (the authors ship no Rayleigh sets) it prints a
markdown table of `cyan_rcbm.data.stats.distribution_stats` for the authors'
files (train+val+test) and for our generator: the defaults with seed 0, the
median [min, max] over `--seeds` seeds (each seed draws a new graph), and
the alternatives the defaults were chosen against (log-uniform parameters;
equations.md A2's literal Bernoulli graph without transmission coin).
"""

import json
import os

from absl import app
from absl import flags
import numpy as np

from cyan_rcbm.data import readers
from cyan_rcbm.data import stats as stats_lib
from cyan_rcbm.data import synthetic
from cyan_rcbm.data.types import CascadeDataset

_AUTHORS_DIR = flags.DEFINE_string(
    'authors_dir', os.path.join(os.path.dirname(__file__), '..', '..',
                                'shared', 'data', 'cyanrnn-synthetic'),
    'Directory of net32-{cp,random}-exp-cascades.{train,val,test}.')
_SEEDS = flags.DEFINE_integer('seeds', 10, 'Seeds per variant.')
_NUM_CASCADES = flags.DEFINE_integer('num_cascades', 20000,
                                     'Cascades per generated set.')
_JSON_OUT = flags.DEFINE_string('json_out', None,
                                'Optional file for all statistics as JSON.')

_VARIANTS = {
    'ours (defaults)': {},
    'ours, log-uniform params': dict(param_draw='loguniform'),
    'ours, equations.md A2 literal (Bernoulli graph, no coin)': dict(
        edges_per_user=0, transmit_prob=1.0),
}
_COLUMNS = (('cascades', '{:d}'), ('length_mean', '{:.1f}'),
            ('length_max', '{:d}'), ('length_2_frac', '{:.3f}'),
            ('users_seen', '{:d}'), ('first_pairs', '{:d}'),
            ('last_time_mean', '{:.2f}'), ('last_time_median', '{:.2f}'),
            ('last_time_p90', '{:.1f}'), ('last_time_max', '{:.1f}'))
_BINS = ((2, 2), (3, 5), (6, 10), (11, 15), (16, 20), (21, 25), (26, 32))


def _authors(network: str) -> CascadeDataset:
  vocab, cascades = {}, []
  for split in ('train', 'val', 'test'):
    path = os.path.join(_AUTHORS_DIR.value,
                        f'net32-{network}-exp-cascades.{split}')
    ds, report = readers.read_cascades(path, 'cyanrnn', vocab=vocab)
    print(report.summary())
    cascades.extend(ds.cascades)
  return CascadeDataset(cascades=cascades, vocab=readers.vocab_tokens(vocab))


def _binned(stats: list[dict]) -> list[float]:
  """Fractions of all cascades of all seeds per length bin."""
  hist = np.zeros(max(hi for _, hi in _BINS) + 1)
  for st in stats:
    hist[:len(st['length_hist'])] += st['length_hist']
  return [hist[lo:hi + 1].sum() / hist.sum() for lo, hi in _BINS]


def _row(name: str, stats: list[dict]) -> str:
  cells = []
  for key, fmt in _COLUMNS:
    values = [st[key] for st in stats]
    if len(values) == 1:
      cells.append(fmt.format(values[0]))
    else:
      med = np.median(values)
      med = int(round(med)) if fmt == '{:d}' else med
      cells.append(f'{fmt.format(med)} [{fmt.format(min(values))}, '
                   f'{fmt.format(max(values))}]')
  return f'| {name} | ' + ' | '.join(cells) + ' |'


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Too many command-line arguments.')
  everything = {}
  header = ('| set | ' + ' | '.join(k for k, _ in _COLUMNS) + ' |\n|' +
            '---|' * (len(_COLUMNS) + 1))
  hist_header = ('| set | ' + ' | '.join(
      f'{lo}' if lo == hi else f'{lo}-{hi}' for lo, hi in _BINS) + ' |\n|' +
                 '---|' * (len(_BINS) + 1))
  for network in ('cp', 'random'):
    rows, hist_rows, results = [], [], {}
    authors = stats_lib.distribution_stats(_authors(network))
    results['authors'] = [authors]
    rows.append(_row(f'authors {network}-exp', [authors]))
    for variant, kwargs in _VARIANTS.items():
      stats = [stats_lib.distribution_stats(synthetic.make_synthetic(
          network, 'exp', num_cascades=_NUM_CASCADES.value, seed=seed,
          **kwargs).dataset) for seed in range(_SEEDS.value)]
      results[variant] = stats
      if variant == 'ours (defaults)':
        rows.append(_row(f'ours {network}-exp, seed 0', stats[:1]))
      rows.append(_row(f'{variant}, seeds 0-{_SEEDS.value - 1}', stats))
    for variant, stats in results.items():
      hist_rows.append(f'| {variant} | ' + ' | '.join(
          f'{f:.3f}' for f in _binned(stats)) + ' |')
    print(f'\n### {network}-exp\n\n{header}\n' + '\n'.join(rows))
    print(f'\nLength histogram (fraction of cascades, all seeds pooled)\n\n'
          f'{hist_header}\n' + '\n'.join(hist_rows))
    everything[network] = results
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, 'w') as f:
      json.dump(everything, f, indent=1)


if __name__ == '__main__':
  app.run(main)
