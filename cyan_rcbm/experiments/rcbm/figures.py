"""RCBM reproduction figures that `cyan_rcbm.rcbm.plots` does not draw."""

from __future__ import annotations

import math

from cyan_rcbm.experiments.rcbm.plan import LABELS, MODELS, RCBM_STEPS


def plot_dynamics(x_list, titles, names, path):
  """Panels of [D, T] samples, one line per feature (symlog y)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  cols = min(3, len(x_list))
  rows = math.ceil(len(x_list) / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.4 * rows + 0.6),
                           squeeze=False)
  cmap = plt.get_cmap('tab10')
  for ax, x, title in zip(axes.ravel(), x_list, titles):
    for j in range(x.shape[0]):
      ax.plot(x[j], color=cmap(j % 10), lw=1.2, label=names[j])
    ax.set_yscale('symlog', linthresh=1.0)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)
  for ax in axes.ravel()[len(x_list):]:
    ax.axis('off')
  handles, labels = axes[0, 0].get_legend_handles_labels()
  fig.legend(handles, labels, loc='lower center', ncol=min(len(names), 4),
             fontsize=7, frameon=False)
  fig.tight_layout(rect=(0, 0.1, 1, 1))
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_runtime(summary, dataset, path):
  """Seconds and the two common-family held-out scores against n, per
  model (Figs. 5-8)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
  keys = (('seconds', 'training time (s), compile excluded', 'log'),
          ('nll_per_entry', '-log p per entry of X (Gaussian, held out)',
           'symlog'),
          ('nll_per_sample', '-log p per sample (half-normal, held out)',
           'symlog'))
  for model in MODELS:
    cells = sorted(k for k in summary if k[0] == dataset and k[1] == model)
    if not cells:
      continue
    n = [k[2] for k in cells]
    for ax, (key, _, _) in zip(axes, keys):
      stats = [summary[k][key] for k in cells]
      keep = [i for i, (m, _) in enumerate(stats) if m is not None]
      ax.errorbar([n[i] for i in keep], [stats[i][0] for i in keep],
                  yerr=[stats[i][1] or 0 for i in keep],
                  marker='o', ms=3, capsize=2, label=LABELS[model])
  for ax, (_, label, yscale) in zip(axes, keys):
    ax.set(xscale='log', xlabel='training samples n', ylabel=label)
    if yscale == 'symlog':
      ax.set_yscale('symlog', linthresh=10.0)
    else:
      ax.set_yscale(yscale)
  axes[0].legend(fontsize=7)
  fig.suptitle(f'{dataset}: runtime and held-out likelihood (Figs. 5-8)',
               fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_fsls(fsls, path):
  """The Eq. 6 objective of the three RCBM step rules against wall time."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(fsls), figsize=(4.5 * len(fsls), 3.2),
                           squeeze=False)
  for ax, (dataset, entry) in zip(axes[0], fsls.items()):
    for model, step in RCBM_STEPS.items():
      t = entry['traces'].get(step)
      if t is None:
        continue
      label = LABELS[model]
      ax.plot(t['seconds'], t['objective'], label=label)
    ax.set(xlabel='wall time (s)', ylabel='Eq. 6 objective per sample',
           title=f'{dataset}, n={entry["n"]}, level 1', yscale='log')
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
