"""The figures of the CYAN-RNN reproduction (Figs. 4-6 in the paper's style)."""

from __future__ import annotations

import os

import numpy as np

from cyan_rcbm.cyan import analysis
from cyan_rcbm.experiments.cyan import tables
from cyan_rcbm.experiments.cyan.plan import (GENERATED, LABELS, MODELS, REAL,
                                             SYNTHETIC, Plan, run_dir)


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def bar_panels(rows, datasets, models, keys, path, title, log=False) -> bool:
  """Grouped bars (Fig. 4 style): one panel per data set, bars per model."""
  panels = [d for d in datasets if any(
      r['dataset'] == d and any(r.get(k) is not None for k in keys)
      for r in rows)]
  if not panels:
    return False
  plt = _plt()
  cols = min(3, len(panels))
  nrows = -(-len(panels) // cols)
  fig, axes = plt.subplots(nrows, cols, squeeze=False,
                           figsize=(4.2 * cols, 3.0 * nrows))
  colors = plt.get_cmap('tab10')
  for ax, dataset in zip(axes.ravel(), panels):
    present = [m for m in models if any(
        r['dataset'] == dataset and r['model'] == m and
        any(r.get(k) is not None for k in keys) for r in rows)]
    width = 0.8 / max(len(present), 1)
    for j, model in enumerate(present):
      these = [r for r in rows if r['dataset'] == dataset and
               r['model'] == model]
      stats = [tables.metric_stats(these, k) for k in keys]
      means = [s[0] if s else np.nan for s in stats]
      stds = [s[1] if s else 0.0 for s in stats]
      ax.bar(np.arange(len(keys)) + (j - (len(present) - 1) / 2) * width,
             means, width, yerr=stds, label=LABELS[model],
             color=colors(MODELS.index(model)), capsize=2)
    ax.set_xticks(np.arange(len(keys)))
    ax.set_xticklabels([k.upper() if k == 'rmse' else k for k in keys],
                       fontsize=8)
    ax.set_title(dataset, fontsize=9)
    if log:
      ax.set_yscale('log')
    ax.tick_params(labelsize=7)
  for ax in axes.ravel()[len(panels):]:
    ax.axis('off')
  handles, labels = [], []
  for ax in axes.ravel():
    for h, l in zip(*ax.get_legend_handles_labels()):
      if l not in labels:
        handles.append(h)
        labels.append(l)
  fig.legend(handles, labels, loc='lower center', ncol=len(labels),
             fontsize=7, frameon=False)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout(rect=(0, 0.06, 1, 0.96))
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return True


def alignment_figure(plan: Plan, dataset: str, path: str) -> bool:
  """Fig. 5: the same test cascade's alignments without and with coverage."""
  from cyan_rcbm.cyan import plots  # pylint: disable=g-import-not-at-top
  panels = []
  for variant in ('cyan', 'cyan_cov'):
    npz = os.path.join(run_dir(plan, dataset, variant, plan.seeds[0]),
                       analysis.ALIGNMENTS_FILE)
    if not os.path.exists(npz):
      return False
    with np.load(npz) as data:
      panels.append((f'{data["ids"][0]} ({LABELS[variant]})',
                     data['alpha_0'], data['users_0']))
  plots.alignment_heatmaps(panels, path, max_events=20,
                           title=f'{dataset}: alignments (seed '
                           f'{plan.seeds[0]})')
  return True


def _shrink_png(src: str, dst: str, width: int = 760) -> None:
  """Copies a PNG at `width` pixels with a 64-colour palette (small files)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(src) as image:
    image = image.convert('RGB')
    height = round(image.height * width / image.width)
    small = image.resize((width, height), Image.LANCZOS)
    small.quantize(colors=64).save(dst, optimize=True)


def write_figures(plan: Plan, rows) -> list[str]:
  """All PNGs; returns their file names."""
  out = plan.results_dir
  made = []
  def keep(name, ok):
    if ok:
      made.append(name)
  synthetic = [d for d in plan.datasets if d in SYNTHETIC]
  real = [d for d in plan.datasets if d in REAL]
  keep('fig4_synthetic_users.png', bar_panels(
      rows, synthetic, MODELS, ('acc@1', 'acc@5', 'mrr'),
      os.path.join(out, 'fig4_synthetic_users.png'),
      'Fig. 4 (a)-(d): next user on synthetic data (mean ± std over seeds)'))
  keep('fig4_synthetic_rmse.png', bar_panels(
      rows, synthetic, MODELS, ('rmse',),
      os.path.join(out, 'fig4_synthetic_rmse.png'),
      'Fig. 4 (e): RMSE of the next time on synthetic data', log=True))
  keep('fig4_real_users.png', bar_panels(
      rows, real, MODELS, ('acc@1', 'acc@5', 'mrr', 'hits@10', 'map@10'),
      os.path.join(out, 'fig4_real_users.png'),
      'Fig. 4 (f): next user on real data'))
  keep('fig4_real_rmse.png', bar_panels(
      rows, real, MODELS, ('rmse',), os.path.join(out, 'fig4_real_rmse.png'),
      'Fig. 4 (g): RMSE of the next time on real data (hours)', log=True))
  for dataset in synthetic:
    name = f'fig5_{dataset}.png'
    keep(name, alignment_figure(plan, dataset, os.path.join(out, name)))
  for dataset in (d for d in plan.datasets if d in GENERATED):
    for variant in ('cyan', 'cyan_cov'):
      src = os.path.join(run_dir(plan, dataset, variant, plan.seeds[0]),
                         analysis.NETWORK_PNG)
      if os.path.exists(src):
        name = f'fig6_{dataset}_{variant}.png'
        _shrink_png(src, os.path.join(out, name))
        made.append(name)
  return made
