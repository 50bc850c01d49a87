"""The README's main job, on built-in data (nothing to download).

python -m cyan_rcbm.main --config=configs/demo.py --workdir=runs/demo

1. CYAN-RNN(cov) vs RMTPP on a synthetic core-periphery / exponential-delay
   cascade set (equations.md A2): one `cyan_rcbm.cyan.train.train_and_evaluate`
   run per entry of `config.cyan_variants`, in `WORKDIR/<variant>/` (test
   metrics, Fig. 5 alignment heat map, Fig. 6 inferred vs true network).
2. A 2-level RCBM on the Higgs-Twitter dynamics:
   `cyan_rcbm.rcbm.train.train_and_evaluate` in `WORKDIR/rcbm_higgs/`
   (filters per level, K selection, error/activation histograms).
3. One results table, printed and written to `WORKDIR/results.md`, with
   `WORKDIR/results.json` (all numbers and every figure's path).

Each part is a normal resumable run in its own workdir; a part that finished
is recorded in its `demo_part.json` and skipped by a re-run (an interrupted
part resumes from its checkpoint). Sizes live in configs/demo.py.
"""

from __future__ import annotations

import contextlib
import copy
import glob
import json
import os
import time
from typing import Any

from absl import flags
from absl import logging
import ml_collections

from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.data import registry

PART_FILE = 'demo_part.json'
RESULTS_MD = 'results.md'
RESULTS_JSON = 'results.json'
RCBM_DIR = 'rcbm_higgs'
MODEL_NAMES = {'cyan': 'CYAN-RNN', 'cyan_cov': 'CYAN-RNN(cov)',
               'rmtpp': 'RMTPP'}
CYAN_COLUMNS = (('acc@1', 'Acc@1'), ('acc@5', 'Acc@5'), ('mrr', 'MRR'),
                ('rmse', 'RMSE'), ('nll_per_event', 'NLL/event'))


def cyan_dir(workdir: str, variant: str) -> str:
  """The sub-workdir of the CYAN run with `model.variant = variant`."""
  return os.path.join(workdir, variant)


@contextlib.contextmanager
def _quiet_library_logs():
  """absl INFO lines (orbax writes ~20 per checkpoint) hide the progress
  lines: WARNING and above only, unless --verbosity was given."""
  verbosity = logging.get_verbosity()
  explicit = 'verbosity' in flags.FLAGS and flags.FLAGS['verbosity'].present
  if not explicit:
    logging.set_verbosity(logging.WARNING)
  try:
    yield
  finally:
    logging.set_verbosity(verbosity)


def _run_part(name: str, workdir: str, run) -> dict[str, Any]:
  """Runs `run()` once; a finished part is read back from `demo_part.json`."""
  path = os.path.join(workdir, PART_FILE)
  if os.path.exists(path):
    with open(path) as f:
      part = json.load(f)
    print(f'[demo] {name}: finished earlier in {part["seconds"]:.0f}s, '
          f'skipped ({path}).', flush=True)
    return dict(part, skipped=True)
  print(f'[demo] {name}: workdir {workdir}', flush=True)
  t0 = time.perf_counter()
  result = run()
  part = {'name': name, 'seconds': time.perf_counter() - t0,
          'result': result}
  workdir_lib.dump_json(part, path)
  print(f'[demo] {name}: done in {part["seconds"]:.0f}s.', flush=True)
  return _read_json(path)


def _sub_config(config: ml_collections.ConfigDict,
                demo_config: ml_collections.ConfigDict,
                **fields: Any) -> ml_collections.ConfigDict:
  """A part's config: `config` with the demo's seed and TensorBoard switch."""
  sub = copy.deepcopy(config)
  with sub.unlocked():
    sub.seed = int(demo_config.seed)
    sub.tensorboard = bool(demo_config.tensorboard)
    for dotted, value in fields.items():
      node = sub
      *parents, leaf = dotted.split('__')
      for p in parents:
        node = node[p]
      node[leaf] = value
  return sub


def _read_json(path: str) -> dict[str, Any] | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _figures(workdir: str, sub_dir: str) -> list[str]:
  return sorted(os.path.relpath(p, workdir)
                for p in glob.glob(os.path.join(sub_dir, '*.png')))


def _fmt(value: Any, digits: int = 4) -> str:
  if value is None:
    return '-'
  if isinstance(value, float):
    return f'{value:.{digits}f}' if abs(value) < 1e4 else f'{value:.4g}'
  return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
  """A Markdown table padded to aligned columns (readable as plain text)."""
  widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
  line = lambda r: '| ' + ' | '.join(c.ljust(w) for c, w in zip(r, widths)) + ' |'
  return [line(header), '|' + '|'.join('-' * (w + 2) for w in widths) + '|'
          ] + [line(r) for r in rows]


def results_markdown(summary: dict[str, Any]) -> str:
  """The printed results table (also `results.md`) from `summary`."""
  out = []
  cyan = summary['cyan']
  if cyan['runs']:
    out.append(f'## Cascades: {cyan["data"]}')
    out.append('')
    rows = []
    for run in cyan['runs']:
      r = run['test']
      net = run.get('network') or {}
      rows.append([MODEL_NAMES.get(run['variant'], run['variant'])]
                  + [_fmt(r.get(k)) for k, _ in CYAN_COLUMNS]
                  + [_fmt(net.get('f1')), _fmt(net.get('pr_auc')),
                     str(r.get('epochs', '-')), f'{run["seconds"]:.0f}s'])
    out += _table(['model'] + [name for _, name in CYAN_COLUMNS]
                  + ['network F1', 'network PR-AUC', 'epochs', 'time'], rows)
    out.append('')
    out.append('Test split; Acc@k, MRR: next-user ranking; RMSE: next-time '
               'error (time units); NLL/event: user + time. Network: '
               'inferred from attention vs the true graph.')
    out.append('')
  rcbm = summary['rcbm']
  if rcbm:
    out.append(f'## Dynamics: {rcbm["data"]}')
    out.append('')
    rows = [[str(lv['level']), str(lv['num_filters']), str(lv['k_selected']),
             str(lv['filter_length']), str(lv['outer_iterations']),
             _fmt(lv['sigma']), _fmt(lv['beta']), f'{lv["seconds"]:.0f}s']
            for lv in rcbm['levels']]
    out += _table(['RCBM level', 'K', 'K selected (knee)', 'Tw',
                   'outer iterations', 'sigma', 'beta', 'time'], rows)
    out.append('')
    out.append(f'Test perplexity {_fmt(rcbm["perplexity_test"], 1)} '
               f'(train {_fmt(rcbm["perplexity_train"], 1)}), '
               f'{rcbm["num_train"]} train / {rcbm["num_test"]} test samples; '
               f'part time {rcbm["seconds"]:.0f}s.')
    out.append('')
  out.append('## Figures')
  out.append('')
  out += [f'* `{p}`' for p in summary['figures']]
  out.append('')
  parts = summary.get('parts_seconds', summary['seconds'])
  line = f'Wall time: {summary["seconds"]:.0f}s'
  if summary.get('skipped'):
    line += (f' ({summary["skipped"]} finished parts skipped; the parts took '
             f'{parts:.0f}s when they ran)')
  out.append(line + '.')
  return '\n'.join(out) + '\n'


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str
                       ) -> dict[str, Any]:
  """Runs the demo's parts (module docstring) and writes the results.

  Args:
    config: see configs/demo.py.
    workdir: the demo's directory; each part gets a sub-directory.

  Returns:
    The contents of `results.json`.
  """
  from cyan_rcbm.cyan import train as cyan_train  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.rcbm import train as rcbm_train  # pylint: disable=g-import-not-at-top
  if config.rcbm.data.source in ('higgs', 'cascades'):
    registry.data_root()  # missing shipped data: fail now, not after part 1
  workdir_lib.prepare_workdir(config, workdir)
  t0 = time.perf_counter()
  variants = list(config.cyan_variants)
  count = len(variants) + 1
  summary: dict[str, Any] = {
      'cyan': {'data': _cyan_data_name(config.cyan), 'runs': []},
      'rcbm': None, 'figures': []}
  parts = []
  with _quiet_library_logs():
    for i, variant in enumerate(variants):
      sub = _sub_config(config.cyan, config, model__variant=variant)
      sub_dir = cyan_dir(workdir, variant)
      part = _run_part(
          f'part {i + 1}/{count}: {MODEL_NAMES.get(variant, variant)} on '
          f'{summary["cyan"]["data"]}', sub_dir,
          lambda sub=sub, sub_dir=sub_dir: cyan_train.train_and_evaluate(
              sub, sub_dir))
      parts.append(part)
      summary['cyan']['runs'].append({
          'variant': variant, 'workdir': os.path.relpath(sub_dir, workdir),
          'test': part['result'], 'seconds': part['seconds'],
          'network': _read_json(os.path.join(sub_dir,
                                             'network_inference.json'))})
      summary['figures'] += _figures(workdir, sub_dir)
    sub = _sub_config(config.rcbm, config)
    sub_dir = os.path.join(workdir, RCBM_DIR)
    part = _run_part(
        f'part {count}/{count}: {int(sub.model.num_levels)}-level RCBM on '
        f'{_rcbm_data_name(sub)}', sub_dir,
        lambda: rcbm_train.train_and_evaluate(sub, sub_dir))
    parts.append(part)
    result = part['result']
    summary['rcbm'] = {
        'data': _rcbm_data_name(sub), 'workdir': RCBM_DIR,
        'seconds': part['seconds'],
        **{k: result.get(k) for k in ('num_train', 'num_test',
                                      'perplexity_train', 'perplexity_test',
                                      'train_seconds')},
        'levels': [{k: lv.get(k) for k in (
            'level', 'num_filters', 'k_selected', 'filter_length', 'pool',
            'outer_iterations', 'converged', 'sigma', 'beta', 'seconds')}
                   for lv in result['levels']]}
    summary['figures'] += _figures(workdir, sub_dir)
  summary['seconds'] = time.perf_counter() - t0
  summary['parts_seconds'] = sum(p['seconds'] for p in parts)
  summary['skipped'] = sum(bool(p.get('skipped')) for p in parts)
  text = results_markdown(summary)
  with open(os.path.join(workdir, RESULTS_MD), 'w') as f:
    f.write('# Demo results\n\n' + text)
  workdir_lib.dump_json(summary, os.path.join(workdir, RESULTS_JSON))
  print('\n' + text, flush=True)
  print(f'[demo] done in {summary["seconds"]:.0f}s: '
        f'{os.path.join(workdir, RESULTS_MD)}, '
        f'{os.path.join(workdir, RESULTS_JSON)}', flush=True)
  return summary


def _cyan_data_name(config: ml_collections.ConfigDict) -> str:
  data = config.data
  name = data.name or os.path.basename(data.path)
  if data.num_cascades:
    name += f' ({data.num_cascades:,} cascades)'
  return name


def _rcbm_data_name(config: ml_collections.ConfigDict) -> str:
  data = config.data
  name = {'higgs': 'Higgs-Twitter dynamics', 'planted': 'planted dynamics',
          'cascades': f'{data.cascades.name} cascade dynamics'}.get(
              data.source, os.path.basename(data.path))
  if data.max_samples:
    name += f' ({data.max_samples:,} samples)'
  return name
