"""Figures of a trained RCBM (paper Figs. 3-4, 9-14 style), as PNG files.

* `plot_filters`: one panel per filter, one line per input row (named
  features at level 1, level-(l-1) filters above), strongest first
  (Figs. 11-14).
* `plot_k_selection`: the cumulative activation F(m) with its knee, and the
  BIC curve over K when one was computed (Figs. 9-10).
* `plot_fit_histograms`: per-sample error and activation histograms with
  the fitted half-normal and exponential densities (Figs. 3-4).
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position


def plot_filters(w_KxDxTw: np.ndarray, row_names: Sequence[str], path: str,
                 title: str = '', strength: np.ndarray | None = None,
                 max_cols: int = 5) -> str:
  """Filters [K, D, Tw], one panel each, one line per row d."""
  k, d, _ = w_KxDxTw.shape
  cols = min(k, max_cols)
  rows = math.ceil(k / cols)
  fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows + 0.6),
                           squeeze=False, sharey=True)
  colors = plt.get_cmap('tab10' if d <= 10 else 'tab20')
  share = (strength / max(float(np.sum(strength)), 1e-30)
           if strength is not None else None)
  for i, ax in enumerate(axes.ravel()):
    if i >= k:
      ax.axis('off')
      continue
    label = f'W{i + 1}' + (f' ({100 * share[i]:.0f}%)' if share is not None
                           else '')
    _draw_filter(ax, w_KxDxTw[i], row_names, colors, label)
  return _finish(fig, axes, d, path, title,
                 bottom=0.08 if d <= 7 else 0.14)


def _draw_filter(ax, w_DxTw, row_names, colors, title):
  """One panel: a line per row of the filter."""
  for j in range(w_DxTw.shape[0]):
    ax.plot(np.arange(w_DxTw.shape[1]), w_DxTw[j], color=colors(j % colors.N),
            lw=1.5, label=row_names[j])
  ax.set_title(title, fontsize=8)
  ax.axhline(0, color='0.8', lw=0.5)
  ax.tick_params(labelsize=7)


def _finish(fig, axes, num_rows, path, title, bottom):
  """Shared legend, title, layout; saves and closes the figure."""
  handles, labels = axes[0, 0].get_legend_handles_labels()
  fig.legend(handles, labels, loc='lower center', ncol=min(num_rows, 7),
             fontsize=7, frameon=False)
  if title:
    fig.suptitle(title, fontsize=9)
  return _save(fig, path, rect=(0, bottom, 1, 0.95))


def _save(fig, path, rect=None):
  fig.tight_layout(rect=rect)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def plot_k_selection(cumulative_F: np.ndarray, k_selected: int, path: str,
                     bic: dict[str, Any] | None = None, title: str = '') -> str:
  """F(m) (Eq. 11) with the chosen m*, and BIC over K when given."""
  fig, ax = plt.subplots(figsize=(4.5, 3.2))
  m = np.arange(len(cumulative_F))
  ax.plot(m, cumulative_F, 'o-', color='tab:blue', label='F(m)')
  ax.axvline(k_selected, color='tab:blue', ls=':', lw=1,
             label=f'knee m*={k_selected}')
  ax.set_xlabel('m (filters, strongest first) / K')
  ax.set_ylabel('cumulative activation F(m)')
  ax.set_ylim(0, 1.05)
  if bic:
    ax2 = ax.twinx()
    ax2.plot(bic['num_filters'], bic['bic'], 's--', color='tab:red',
             label='BIC')
    best = bic['num_filters'][int(np.argmax(bic['bic']))]
    ax2.axvline(best, color='tab:red', ls=':', lw=1,
                label=f'best BIC K={best}')
    ax2.set_ylabel('BIC', color='tab:red')
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7,
              loc='lower right')
  else:
    ax.legend(fontsize=7, loc='lower right')
  if title:
    ax.set_title(title, fontsize=10)
  return _save(fig, path)


def plot_fit_histograms(sq_err: np.ndarray, l1: np.ndarray, sigma: float,
                        beta: float, path: str, title: str = '') -> str:
  """Histograms of e and a with the half-normal(sigma) and Exp(beta) pdfs."""
  e = np.sqrt(np.maximum(np.asarray(sq_err, np.float64), 0))
  a = np.asarray(l1, np.float64)
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
  _hist_with_pdf(
      ax1, e, 3 * sigma,
      lambda g: math.sqrt(2 / math.pi) / sigma * np.exp(-g ** 2 /
                                                        (2 * sigma ** 2)),
      f'half-normal sigma={sigma:.3g}',
      'per-sample error ||X - sum_k W_k (x) h_k||_F')
  _hist_with_pdf(ax2, a, 3 * beta, lambda g: np.exp(-g / beta) / beta,
                 f'exponential beta={beta:.3g}',
                 'per-sample activation sum_k ||h_k||_1')
  if title:
    fig.suptitle(title, fontsize=10)
  return _save(fig, path)


def _hist_with_pdf(ax, values, min_top, pdf, label, xlabel):
  """Density histogram with a fitted pdf; the axis ends at the 99th
  percentile (heavy tails would squash the view)."""
  top = max(float(np.quantile(values, 0.99)), min_top)
  ax.hist(values, bins=np.linspace(0, top, 41), density=True, color='0.75')
  grid = np.linspace(0, top, 200)
  ax.plot(grid, pdf(grid), 'r-', label=label)
  ax.set_xlabel(xlabel)
  ax.legend(fontsize=7)


def write_all(workdir: str, model, acts_train, level_results) -> list[str]:
  """All figures of a run (filters and F(m)/BIC per level, histograms)."""
  paths = []
  names = list(model.feature_names)
  for i, (level, result) in enumerate(zip(model.levels, level_results)):
    number = i + 1
    paths.append(plot_filters(
        level.w, names, os.path.join(workdir, f'filters_level{number}.png'),
        title=f'level {number} filters (Tw={level.filter_length})',
        strength=level.strength))
    paths.append(plot_k_selection(
        np.asarray(result['cumulative_activation']), result['k_selected'],
        os.path.join(workdir, f'k_selection_level{number}.png'),
        bic=result.get('bic'), title=f'level {number}: choosing K'))
    names = [f'L{number}.W{k + 1}' for k in range(level.num_filters)]
  first = model.levels[0]
  paths.append(plot_fit_histograms(
      acts_train[0].sq_err, acts_train[0].l1, first.sigma, first.beta,
      os.path.join(workdir, 'fit_histograms.png'),
      title='level 1: per-sample error and activation (training data)'))
  return paths


def best_shift_match(a_DxTw: np.ndarray, b_DxTw: np.ndarray
                     ) -> tuple[float, np.ndarray]:
  """(max cosine over relative time shifts, b shifted to that best shift)."""
  tw = a_DxTw.shape[1]
  best, best_b = -np.inf, b_DxTw
  for shift in range(-tw + 1, tw):
    shifted = np.zeros_like(b_DxTw)
    if shift >= 0:
      shifted[:, shift:] = b_DxTw[:, :tw - shift]
    else:
      shifted[:, :tw + shift] = b_DxTw[:, -shift:]
    norm = np.linalg.norm(a_DxTw) * np.linalg.norm(shifted)
    cos = float((a_DxTw * shifted).sum() / norm) if norm > 0 else -np.inf
    if cos > best:
      best, best_b = cos, shifted
  return best, best_b


def plot_recovery(w_true: np.ndarray, w_learned: np.ndarray,
                  row_names: Sequence[str], path: str, title: str = '') -> str:
  """Planted filters (top) above their best-matching learned filters
  (bottom, shifted into alignment), with the shift-invariant cosine."""
  k, d, _ = w_true.shape
  fig, axes = plt.subplots(2, k, figsize=(2.2 * k, 4.2), squeeze=False,
                           sharey=True)
  colors = plt.get_cmap('tab10')
  for i in range(k):
    matches = [best_shift_match(w_true[i], w) for w in w_learned]
    j = int(np.argmax([m[0] for m in matches]))
    cos, aligned = matches[j]
    _draw_filter(axes[0, i], w_true[i], row_names, colors, f'planted {i + 1}')
    _draw_filter(axes[1, i], aligned, row_names, colors,
                 f'learned W{j + 1}, cos {cos:.3f}')
  return _finish(fig, axes, d, path, title, bottom=0.07)
