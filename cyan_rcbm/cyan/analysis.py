"""Alignments (paper Fig. 5) and network inference from them (Fig. 6,
equations.md A6).

* `collect_alignments` runs the attention model over a data set once and
  returns, for chosen cascades, the full alignment matrix `alpha[k, i]`
  (step k predicts event k+1; column i = event i; zero outside the window),
  and, for every predicted event, the most-attended earlier event.
* `infer_network`: parent of event k+1 = user of `argmax_i alpha_{k,i}`;
  pairs (parent user -> user) are counted over all cascades into a user-user
  matrix, which is thresholded into an adjacency matrix. Against the true
  graph: precision, recall and F1 at the best threshold, and the area under
  the precision-recall curve (average precision over all thresholds, pairs
  ranked by count). Candidate pairs are ordered pairs of distinct users that
  occur in the cascades. With true parents (synthetic data), the same
  against the (parent user -> user) pairs the cascades actually used
  (`parents_*` keys), and the fraction of events whose most-attended event
  is the true parent, next to the same fraction for the "previous event"
  guess.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.cyan import plots
from cyan_rcbm.data import batching
from cyan_rcbm.data import types

ALIGNMENTS_FILE = 'alignments.npz'
ALIGNMENTS_PNG = 'alignments.png'
NETWORK_FILE = 'network_inference.json'
NETWORK_PNG = 'network_inference.png'


@dataclasses.dataclass
class AttentionParents:
  """Per predicted event (flat arrays over all cascades of a pass)."""
  index: np.ndarray         # cascade position in the data set
  position: np.ndarray      # k: the event predicted is k+1
  parent_event: np.ndarray  # argmax_i alpha_{k,i} (event index in the row)
  parent_user: np.ndarray   # its user
  child_user: np.ndarray    # u_{k+1}
  true_parent: np.ndarray | None  # true parent event of k+1 (-1 unknown)
  true_parent_user: np.ndarray | None  # its user (-1 unknown)
  alignments: dict[int, np.ndarray]  # cascade index -> alpha [N, N]


def collect_alignments(predictor, batcher: batching.CascadeBatcher,
                       keep: tuple[int, ...] = ()) -> AttentionParents:
  """One pass of `predictor.alignments` (window layout) over `batcher`.

  Args:
    predictor: has `alignments(batch) -> alpha [B, N, L]`, e.g.
      `evaluate.ModelPredictor` of an attention variant.
    batcher: the data.
    keep: data-set indices of cascades whose full matrices are returned.
  """
  cols = {k: [] for k in ('index', 'position', 'parent_event', 'parent_user',
                          'child_user', 'true_parent', 'true_parent_user')}
  kept = {}
  for batch in batcher.batches():
    alpha = np.asarray(predictor.alignments(batch))
    b, n, win = alpha.shape
    pos = np.arange(n)
    has_next = np.zeros((b, n), bool)
    has_next[:, :-1] = batch.mask[:, 1:]
    parent = pos[None, :] - win + 1 + np.argmax(alpha, axis=-1)
    rows = np.arange(b)[:, None]
    child = np.zeros_like(batch.users)
    child[:, :-1] = batch.users[:, 1:]
    true_parent = np.full((b, n), -1, np.int32)
    if batch.parents is not None:
      true_parent[:, :-1] = batch.parents[:, 1:]
    cols['index'].append(np.broadcast_to(batch.index[:, None], (b, n))[has_next])
    cols['position'].append(np.broadcast_to(pos, (b, n))[has_next])
    cols['parent_event'].append(parent[has_next])
    cols['parent_user'].append(batch.users[rows, np.maximum(parent, 0)][has_next])
    cols['child_user'].append(child[has_next])
    cols['true_parent'].append(true_parent[has_next])
    cols['true_parent_user'].append(np.where(
        true_parent >= 0, batch.users[rows, np.maximum(true_parent, 0)],
        -1)[has_next])
    for r, i in enumerate(batch.index):
      if i in keep:
        m = int(batch.mask[r].sum())
        full = alignments_to_absolute(alpha[r, :m])
        kept[int(i)] = full
  flat = {k: np.concatenate(v) if v else np.zeros(0, np.int64)
          for k, v in cols.items()}
  return AttentionParents(
      **{k: flat[k] for k in ('index', 'position', 'parent_event',
                              'parent_user', 'child_user')},
      true_parent=flat['true_parent'] if batcher.parents else None,
      true_parent_user=flat['true_parent_user'] if batcher.parents else None,
      alignments=kept)


def alignments_to_absolute(alpha_NxL: np.ndarray) -> np.ndarray:
  """Window alignments of one cascade `[N, L]` -> `[N, N]`, column i = event i.

  Row k is `alpha_{k, .}` over events `0..k` (zero outside the window).
  """
  alpha_NxL = np.asarray(alpha_NxL)
  n, win = alpha_NxL.shape
  out = np.zeros((n, n), np.float32)
  for k in range(n):
    lo = k - win + 1
    cols = np.arange(max(lo, 0), k + 1)
    out[k, cols] = alpha_NxL[k, cols - lo]
  return out


def pr_curve(scores: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
  """Precision/recall over thresholds `scores >= t` (t: each distinct score).

  Returns thresholds (descending), precision, recall, the best-F1 point and
  the average precision `sum_i (R_i - R_{i-1}) P_i`.
  """
  scores = np.asarray(scores, np.float64).ravel()
  truth = np.asarray(truth, bool).ravel()
  positives = int(truth.sum())
  order = np.argsort(-scores, kind='stable')
  s, t = scores[order], truth[order]
  last_of_group = np.r_[s[1:] != s[:-1], True]
  tp = np.cumsum(t)[last_of_group]
  predicted = (np.arange(len(s)) + 1)[last_of_group]
  precision = tp / predicted
  recall = tp / max(positives, 1)
  f1 = np.where(tp > 0, 2 * precision * recall /
                np.maximum(precision + recall, 1e-12), 0.0)
  best = int(np.argmax(f1)) if len(f1) else 0
  ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
  return dict(thresholds=s[last_of_group], precision=precision,
              recall=recall, best=best, f1=f1, average_precision=ap)


def infer_network(parents: AttentionParents, num_users: int,
                  edges: np.ndarray | None) -> tuple[dict[str, Any],
                                                     np.ndarray]:
  """Network inference from attention parents (Fig. 6); see module docstring.

  Returns:
    `(report, counts_UxU)`; report has precision/recall/F1 at the best
    threshold and the PR-AUC when `edges` is given, parent accuracy when
    true parents are known.
  """
  counts = np.zeros((num_users, num_users), np.int64)
  np.add.at(counts, (parents.parent_user, parents.child_user), 1)
  report: dict[str, Any] = dict(num_events=int(len(parents.child_user)))
  if parents.true_parent is not None:
    known = parents.true_parent >= 0
    report['parent_accuracy'] = float(np.mean(
        parents.parent_event[known] == parents.true_parent[known])) if (
            known.any()) else None
    report['parent_accuracy_previous_event'] = float(np.mean(
        parents.position[known] == parents.true_parent[known])) if (
            known.any()) else None
    report['num_events_with_parent'] = int(known.sum())
  seen = np.zeros(num_users, bool)
  seen[parents.parent_user] = True
  seen[parents.child_user] = True
  users = np.flatnonzero(seen)
  if edges is not None and len(edges):
    truth = np.zeros((num_users, num_users), bool)
    truth[edges[:, 0], edges[:, 1]] = True
    report.update(_against(counts, truth, users))
  if parents.true_parent_user is not None:
    # the diffusion network the cascades actually used: true (parent user ->
    # user) pairs.
    known = parents.true_parent_user >= 0
    truth = np.zeros((num_users, num_users), bool)
    truth[parents.true_parent_user[known], parents.child_user[known]] = True
    report.update({f'parents_{k}': v for k, v in
                   _against(counts, truth, users).items()
                   if k not in ('num_users', 'edge_density')})
  return report, counts


def _against(counts: np.ndarray, truth: np.ndarray, users: np.ndarray
             ) -> dict[str, Any]:
  """Best-F1 point and PR-AUC of `counts` as edge scores against `truth`."""
  sub_counts = counts[np.ix_(users, users)]
  sub_truth = truth[np.ix_(users, users)]
  off = ~np.eye(len(users), dtype=bool)
  curve = pr_curve(sub_counts[off], sub_truth[off])
  best = curve['best']
  return dict(
      threshold=float(curve['thresholds'][best]),
      precision=float(curve['precision'][best]),
      recall=float(curve['recall'][best]),
      f1=float(curve['f1'][best]),
      pr_auc=curve['average_precision'],
      num_users=int(len(users)),
      num_true_edges=int(sub_truth[off].sum()),
      num_inferred_edges=int((sub_counts[off] >= curve['thresholds'][best]
                              ).sum()),
      edge_density=float(sub_truth[off].mean()) if off.any() else None)


def _chosen_cascades(data: types.CascadeDataset, count: int) -> tuple[int, ...]:
  """The `count` longest cascades (ties: data-set order)."""
  lengths = np.array([len(c) for c in data.cascades])
  order = np.argsort(-lengths, kind='stable')
  return tuple(int(i) for i in order[:count])


def run_analyses(config, workdir: str, predictor,
                 batcher: batching.CascadeBatcher,
                 data: types.CascadeDataset) -> dict[str, Any]:
  """Writes alignments (.npz/.png) and, with a graph/parents, network inference.

  Args:
    config: the run config (`config.analysis`).
    workdir: output folder.
    predictor: an attention-variant `evaluate.ModelPredictor`.
    batcher: batches of `data` (the test split).
    data: the test split.

  Returns:
    the network-inference report (empty if not computed).
  """
  a = config.analysis
  chosen = _chosen_cascades(data, a.alignment_cascades)
  parents = collect_alignments(predictor, batcher, keep=chosen)
  arrays = {}
  panels = []
  for j, i in enumerate(chosen):
    cascade = data.cascades[i]
    alpha = parents.alignments[i]
    m = alpha.shape[0]
    start = len(cascade) - m  # max_events truncation keeps the last m
    users = np.asarray(cascade.users[start:])
    arrays[f'alpha_{j}'] = alpha
    arrays[f'users_{j}'] = users
    arrays[f'times_{j}'] = np.asarray(cascade.times[start:])
    panels.append((str(cascade.id), alpha, users))
  if chosen:
    np.savez_compressed(os.path.join(workdir, ALIGNMENTS_FILE),
                        ids=np.array([str(data.cascades[i].id) for i in chosen]),
                        **arrays)
    plots.alignment_heatmaps(panels, os.path.join(workdir, ALIGNMENTS_PNG),
                             max_events=a.alignment_max_events,
                             vocab=data.vocab,
                             title=f'{config.model.variant} alignments')
  report = {}
  has_truth = data.edges is not None or parents.true_parent is not None
  if a.network_inference and has_truth:
    report, counts = infer_network(parents, data.num_users, data.edges)
    report['variant'] = config.model.variant
    workdir_lib.dump_json(report, os.path.join(workdir, NETWORK_FILE))
    if data.edges is not None:
      truth = np.zeros_like(counts, bool)
      truth[data.edges[:, 0], data.edges[:, 1]] = True
      plots.network_comparison(counts >= report['threshold'], truth,
                               os.path.join(workdir, NETWORK_PNG),
                               activity=counts.sum(0) + counts.sum(1),
                               title=(f'{config.model.variant}: F1 '
                                      f'{report["f1"]:.3f}, PR-AUC '
                                      f'{report["pr_auc"]:.3f}'))
    print('[cyan] network inference: ' + ', '.join(
        f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}'
        for k, v in report.items()), flush=True)
  return report
