"""Figures: alignment heat maps (paper Fig. 5) and inferred networks (Fig. 6).

Matplotlib with the Agg backend (files only, no display needed).
"""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position


def alignment_heatmaps(panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
                       path: str, *, max_events: int = 30,
                       vocab: Sequence[str] | None = None,
                       title: str = '') -> None:
  """Fig. 5: one grayscale panel per cascade (0 black, 1 white).

  Args:
    panels: `(cascade id, alpha [N, N], users [N])`; row k of alpha is the
      alignment of the step that predicts event k+1.
    path: PNG file.
    max_events: the first events drawn (a fragment of long cascades).
    vocab: user tokens for the tick labels.
    title: figure title.
  """
  fig, axes = plt.subplots(1, len(panels), squeeze=False,
                           figsize=(4.5 * len(panels), 4.8))
  for ax, (cid, alpha, users) in zip(axes[0], panels):
    m = min(max_events, alpha.shape[0])
    rows = max(m - 1, 1)
    ax.imshow(alpha[:rows, :m], cmap='gray', vmin=0.0, vmax=1.0,
              aspect='auto', interpolation='nearest')
    name = (lambda u: str(vocab[u])) if vocab is not None else str
    small = m <= 40
    if small:
      ax.set_xticks(range(m))
      ax.set_xticklabels([name(u) for u in users[:m]], rotation=90,
                         fontsize=6)
      ax.set_yticks(range(rows))
      ax.set_yticklabels([name(u) for u in users[1:rows + 1]], fontsize=6)
    ax.set_xlabel('activation order (user)')
    ax.set_ylabel('next activated user')
    ax.set_title(f'cascade {cid}', fontsize=9)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def network_comparison(inferred_UxU: np.ndarray, truth_UxU: np.ndarray,
                       path: str, *, activity: np.ndarray | None = None,
                       max_users: int = 64, title: str = '') -> None:
  """Fig. 6: inferred vs true network.

  Up to `max_users` users (the most active if there are more) on a circle:
  grey arrows are correctly inferred edges, red ones false positives, orange
  ones missed true edges. A second panel shows both adjacency matrices (true
  in grey, inferred as dots).
  """
  u = inferred_UxU.shape[0]
  if u > max_users:
    order = np.argsort(-(activity if activity is not None else
                         inferred_UxU.sum(0) + inferred_UxU.sum(1)),
                       kind='stable')[:max_users]
    users = np.sort(order)
  else:
    users = np.arange(u)
  inferred = inferred_UxU[np.ix_(users, users)].copy()
  truth = truth_UxU[np.ix_(users, users)].copy()
  np.fill_diagonal(inferred, False)
  np.fill_diagonal(truth, False)
  n = len(users)
  angle = 2 * np.pi * np.arange(n) / max(n, 1)
  xy = np.stack([np.cos(angle), np.sin(angle)], 1)
  fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 5.4))
  kinds = [(inferred & truth, 'grey', '-', 'correct'),
           (inferred & ~truth, 'red', '-', 'false'),
           (~inferred & truth, 'orange', '--', 'missed')]
  for mask, color, style, label in kinds:
    src, dst = np.nonzero(mask)
    if len(src):
      # arrows shortened by 6% at both ends so they stop short of the nodes.
      start = xy[src] + 0.06 * (xy[dst] - xy[src])
      delta = 0.88 * (xy[dst] - xy[src])
      ax.quiver(start[:, 0], start[:, 1], delta[:, 0], delta[:, 1],
                angles='xy', scale_units='xy', scale=1, color=color,
                width=0.002, headwidth=5, headlength=6, alpha=0.8,
                linestyle=style, linewidth=0.5 if style == '--' else 0)
    ax.plot([], [], color=color, linestyle=style,
            label=f'{label} ({len(src)})')
  ax.scatter(xy[:, 0], xy[:, 1], s=30, c='black', zorder=3)
  ax.set_aspect('equal')
  ax.axis('off')
  ax.legend(loc='lower right', fontsize=7)
  ax2.imshow(truth, cmap='Greys', vmin=0, vmax=2, interpolation='nearest')
  src, dst = np.nonzero(inferred)
  ax2.scatter(dst, src, s=6, c=np.where(truth[src, dst], 'black', 'red'))
  ax2.set_xlabel('user (influenced)')
  ax2.set_ylabel('user (influencer)')
  ax2.set_title('true edges (grey), inferred (dots; red = false)',
                fontsize=8)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
