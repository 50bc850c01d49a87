"""Redraws a finished (or partial) run's curves and figures into WORKDIR/plots/.

python scripts/plot_run.py --workdir=runs/tiny
python scripts/plot_run.py --workdir=runs/rcbm_higgs --norecompute

The run type comes from `WORKDIR/config.json` (`task`):
* every run: `curves.png` from `metrics.jsonl` (CYAN: train / valid NLL and
  its user / time parts, valid ranking metrics vs step; RCBM: objective,
  sigma, beta and FISTA iterations vs outer iteration, one line per level);
* CYAN (attention variants): `alignments.png` (Fig. 5) from
  `alignments.npz`; with --recompute (default) the best checkpoint is loaded
  and the test-split analyses rerun: alignments and `network_inference.png`
  (Fig. 6, with its `.json`);
* RCBM: `filters_level<l>.png` from `model.npz`, `k_selection_level<l>.png`
  from `eval.json`; with --recompute also `fit_histograms.png` (needs the
  training data and one inference pass);
* a demo run (configs/demo.py): each part's sub-workdir in turn.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence

from absl import app
from absl import flags

PLOTS_DIR = 'plots'
_CYAN_PANELS = (
    ('NLL per event', ('train_nll', 'valid_nll_per_event')),
    ('NLL parts', ('train_user_nll', 'train_time_nll',
                   'valid_user_nll_per_event', 'valid_time_nll_per_event')),
    ('valid ranking', ('valid_acc@1', 'valid_acc@5', 'valid_mrr')),
    ('valid RMSE', ('valid_rmse',)),
)
_RCBM_PANELS = (('objective (Eq. 6)', 'objective'), ('sigma', 'sigma'),
                ('beta', 'beta'), ('FISTA iterations', 'inner_iters'))


def _error(message: str) -> 'NoReturn':  # noqa: F821
  from cyan_rcbm import errors  # pylint: disable=g-import-not-at-top
  raise errors.InputError(message)


def read_run(workdir: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
  """(config.json, metrics.jsonl rows) of a run; InputError if not a run."""
  from cyan_rcbm.common import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(workdir):
    _error(f'--workdir={workdir}: no such directory.')
  path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if not os.path.exists(path):
    _error(f'{workdir} has no {workdir_lib.CONFIG_FILE}: not a run directory '
           '(python -m cyan_rcbm.main ... --workdir=DIR writes one).')
  try:
    with open(path) as f:
      config = json.load(f)
  except json.JSONDecodeError as e:
    _error(f'{path}: not valid JSON ({e}).')
  rows = workdir_lib.MetricWriter(workdir, tensorboard=False).read()
  return config, rows


def _line_plot(ax, rows, key, label=None, **kwargs):
  points = [(r['step'], r[key]) for r in rows
            if isinstance(r.get(key), (int, float))]
  if points:
    steps, values = zip(*points)
    ax.plot(steps, values, marker='.' if len(points) < 30 else None,
            label=label or key, **kwargs)
  return bool(points)


def plot_curves(rows: Sequence[dict[str, Any]], task: str, path: str,
                title: str = '') -> str | None:
  """Curves of `metrics.jsonl` rows (see module docstring); None if empty."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  if not rows:
    return None
  panels = _CYAN_PANELS if task == 'cyan' else _RCBM_PANELS
  fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4),
                           squeeze=False)
  drawn = False
  for ax, (name, keys) in zip(axes[0], panels):
    if task == 'cyan':
      for key in keys:
        drawn |= _line_plot(ax, rows, key)
      ax.set_xlabel('train step')
    else:
      for level in sorted({r.get('level') for r in rows if 'level' in r}):
        drawn |= _line_plot(ax, [r for r in rows if r.get('level') == level],
                            keys, label=f'level {level}')
      ax.set_xlabel('outer iteration (all levels)')
      if name.startswith('objective'):
        ax.set_yscale('log')
    ax.set_title(name, fontsize=9)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  if not drawn:
    plt.close(fig)
    return None
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def _cyan_figures(workdir: str, config: dict[str, Any], out: str,
                  recompute: bool) -> list[str]:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.cyan import analysis  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.cyan import plots  # pylint: disable=g-import-not-at-top
  variant = config['model']['variant']
  if variant == 'rmtpp':
    return []  # no attention: curves only
  paths = []
  if recompute and os.path.isdir(os.path.join(workdir, 'checkpoints')):
    import ml_collections  # pylint: disable=g-import-not-at-top
    from cyan_rcbm.cyan import api  # pylint: disable=g-import-not-at-top
    from cyan_rcbm.cyan import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
    from cyan_rcbm.cyan import train as cyan_train  # pylint: disable=g-import-not-at-top
    from cyan_rcbm.data import registry  # pylint: disable=g-import-not-at-top
    model = api.load_cyan(workdir)
    cfg = ml_collections.ConfigDict(config)
    splits = registry.load_splits(cfg.data)
    test_b = cyan_train.make_batchers(cfg, splits)[2]
    if test_b is not None:
      predictor = evaluate_lib.ModelPredictor(model.graphdef, model.params)
      analysis.run_analyses(cfg, out, predictor, test_b, splits.test)
      paths += [os.path.join(out, name) for name in (
          analysis.ALIGNMENTS_PNG, analysis.NETWORK_PNG)
                if os.path.exists(os.path.join(out, name))]
      return paths
  npz = os.path.join(workdir, analysis.ALIGNMENTS_FILE)
  if os.path.exists(npz):
    with np.load(npz) as z:
      panels = [(str(cid), z[f'alpha_{j}'], z[f'users_{j}'])
                for j, cid in enumerate(z['ids'])]
    path = os.path.join(out, analysis.ALIGNMENTS_PNG)
    plots.alignment_heatmaps(
        panels, path,
        max_events=int(config['analysis']['alignment_max_events']),
        title=f'{variant} alignments')
    paths.append(path)
  return paths


def _rcbm_figures(workdir: str, config: dict[str, Any], out: str,
                  recompute: bool) -> list[str]:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.rcbm import io as io_lib  # pylint: disable=g-import-not-at-top
  from cyan_rcbm.rcbm import plots  # pylint: disable=g-import-not-at-top
  model_path = os.path.join(workdir, io_lib.MODEL_FILE)
  eval_path = os.path.join(workdir, 'eval.json')
  if not (os.path.exists(model_path) and os.path.exists(eval_path)):
    print(f'[plot_run] {workdir}: no {io_lib.MODEL_FILE} / eval.json yet (run '
          'not finished): curves only.', flush=True)
    return []
  model = io_lib.load_model(model_path)
  with open(eval_path) as f:
    levels = json.load(f)['levels']
  if recompute:
    import ml_collections  # pylint: disable=g-import-not-at-top
    from cyan_rcbm.rcbm import rcbm as rcbm_lib  # pylint: disable=g-import-not-at-top
    from cyan_rcbm.rcbm import train as rcbm_train  # pylint: disable=g-import-not-at-top
    data = ml_collections.ConfigDict(config['data'])
    dyn = rcbm_train.load_dynamics(data)
    train_idx, _ = rcbm_train.split_indices(
        dyn.num_samples, float(data.test_fraction), int(data.split_seed))
    x_train = np.asarray(dyn.x, np.float64)[train_idx].astype(
        model.levels[0].w.dtype)
    acts = rcbm_lib.infer(model, x_train)
    return plots.write_all(out, model, acts, levels)
  paths = []
  names = list(model.feature_names)
  for i, (level, result) in enumerate(zip(model.levels, levels)):
    number = i + 1
    paths.append(plots.plot_filters(
        level.w, names, os.path.join(out, f'filters_level{number}.png'),
        title=f'level {number} filters (Tw={level.filter_length})',
        strength=level.strength))
    paths.append(plots.plot_k_selection(
        np.asarray(result['cumulative_activation']), result['k_selected'],
        os.path.join(out, f'k_selection_level{number}.png'),
        bic=result.get('bic'), title=f'level {number}: choosing K'))
    names = [f'L{number}.W{k + 1}' for k in range(level.num_filters)]
  return paths


def plot_run(workdir: str, recompute: bool = True) -> list[str]:
  """Draws a run's curves and figures into `workdir/plots/`; their paths.

  Raises:
    InputError: `workdir` is missing, not a run, or of an unknown task.
  """
  config, rows = read_run(workdir)
  task = config.get('task')
  if task == 'demo':
    from cyan_rcbm import demo  # pylint: disable=g-import-not-at-top
    subs = [demo.cyan_dir(workdir, v) for v in config['cyan_variants']]
    subs.append(os.path.join(workdir, demo.RCBM_DIR))
    paths = []
    for sub in subs:
      if os.path.exists(os.path.join(sub, 'config.json')):
        paths += plot_run(sub, recompute)
    return paths
  if task not in ('cyan', 'rcbm'):
    _error(f'{os.path.join(workdir, "config.json")}: unknown task {task!r}; '
           "plot_run.py draws 'cyan', 'rcbm' and 'demo' runs.")
  out = os.path.join(workdir, PLOTS_DIR)
  os.makedirs(out, exist_ok=True)
  title = (f'{config["model"]["variant"]} on {config["data"]["name"] or "data"}'
           if task == 'cyan' else f'RCBM on {config["data"]["source"]} data')
  paths = []
  curves = plot_curves(rows, task, os.path.join(out, 'curves.png'), title)
  if curves:
    paths.append(curves)
  figures = _cyan_figures if task == 'cyan' else _rcbm_figures
  paths += figures(workdir, config, out, recompute)
  for path in paths:
    print(f'[plot_run] wrote {path}', flush=True)
  return paths


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Too many command-line arguments: {argv[1:]}')
  if not flags.FLAGS.workdir:
    raise app.UsageError('--workdir is required.')
  from absl import logging  # pylint: disable=g-import-not-at-top
  from cyan_rcbm import errors  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS['verbosity'].present:  # orbax logs ~20 INFO lines a load
    logging.set_verbosity(logging.WARNING)
  try:
    plot_run(flags.FLAGS.workdir, flags.FLAGS.recompute)
  except errors.InputError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


def _cli() -> None:
  """Flags are defined here, not at import: tests import this module next to
  cyan_rcbm.main, which defines --workdir too."""
  flags.DEFINE_string('workdir', None, 'Run directory (holds config.json).')
  flags.DEFINE_bool(
      'recompute', True, 'Also draw the figures that need the saved model '
      'run on data (CYAN network inference; RCBM fit histograms).')
  app.run(main)


if __name__ == '__main__':
  _cli()
