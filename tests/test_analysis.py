"""Tests for cyan_rcbm.cyan.analysis (alignments, network inference) and plots."""

import os

import numpy as np
import pytest

from cyan_rcbm.cyan import analysis
from cyan_rcbm.cyan import plots
from cyan_rcbm.data import batching
from cyan_rcbm.data import types


def test_alignments_to_absolute_places_the_window():
  # window of 3: row k covers events k-2..k.
  alpha = np.array([[0, 0, 1.0], [0, 0.4, 0.6], [0.2, 0.3, 0.5],
                    [0.1, 0.1, 0.8]], np.float32)
  full = analysis.alignments_to_absolute(alpha)
  np.testing.assert_allclose(full, [[1, 0, 0, 0], [0.4, 0.6, 0, 0],
                                    [0.2, 0.3, 0.5, 0], [0, 0.1, 0.1, 0.8]])


def test_pr_curve_against_a_hand_count():
  scores = np.array([5, 5, 3, 2, 0, 0])
  truth = np.array([1, 0, 1, 0, 1, 0], bool)
  curve = analysis.pr_curve(scores, truth)
  np.testing.assert_array_equal(curve['thresholds'], [5, 3, 2, 0])
  np.testing.assert_allclose(curve['precision'], [1 / 2, 2 / 3, 2 / 4, 3 / 6])
  np.testing.assert_allclose(curve['recall'], [1 / 3, 2 / 3, 2 / 3, 1])
  ap = 1 / 3 * 1 / 2 + 1 / 3 * 2 / 3 + 0 + 1 / 3 * 1 / 2
  assert curve['average_precision'] == pytest.approx(ap)
  f1 = 2 * np.array(curve['precision']) * curve['recall'] / (
      np.array(curve['precision']) + curve['recall'])
  assert curve['best'] == int(np.argmax(f1))


class _FixedAttention:
  """Attends to a chosen earlier event (the true parent, or event k)."""

  def __init__(self, use_parents: bool, window: int = 4):
    self.use_parents = use_parents
    self.window = window

  def alignments(self, batch):
    b, n = batch.users.shape
    alpha = np.zeros((b, n, self.window), np.float32)
    for r in range(b):
      for k in range(n):
        target = k
        if self.use_parents and k + 1 < n and batch.parents[r, k + 1] >= 0:
          target = batch.parents[r, k + 1]
        slot = target - (k - self.window + 1)
        if slot < 0:  # parent outside the window: attend to event k
          slot = self.window - 1
        alpha[r, k, slot] = 1.0
    return alpha


def _tree_data():
  # users 0..5; edges 0->1, 0->2, 1->3, 2->4, 3->5, plus an unused 4->0.
  edges = np.array([[0, 1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 0]], np.int32)
  cascades = []
  for i in range(6):
    users = np.array([0, 1, 2, 3, 4, 5], np.int32)
    parents = np.array([-1, 0, 0, 1, 2, 3], np.int32)
    cascades.append(types.Cascade(f'c{i}', users, np.arange(6.0) + i,
                                  parents=parents))
  return types.CascadeDataset(cascades, vocab=[str(u) for u in range(6)],
                              edges=edges)


def test_network_inference_recovers_true_parents():
  data = _tree_data()
  batcher = batching.CascadeBatcher(data, batch_size=4, bucket_lengths=[8])
  keep = (0, 5)
  parents = analysis.collect_alignments(_FixedAttention(True), batcher,
                                        keep=keep)
  assert sorted(parents.alignments) == [0, 5]
  assert parents.alignments[0].shape == (6, 6)
  report, counts = analysis.infer_network(parents, 6, data.edges)
  assert report['parent_accuracy'] == 1.0
  # the "previous event" guess is right only for event 1 (parent 0): 1 of 5.
  assert report['parent_accuracy_previous_event'] == pytest.approx(1 / 5)
  assert counts[0, 1] == 6 and counts[3, 5] == 6 and counts[1, 2] == 0
  assert report['precision'] == 1.0 and report['recall'] == 5 / 6
  # against the pairs the cascades used (the 5 tree edges): all recovered.
  assert report['parents_f1'] == 1.0 and report['parents_pr_auc'] == 1.0
  assert report['f1'] == pytest.approx(2 * (5 / 6) / (1 + 5 / 6))
  chain = analysis.collect_alignments(_FixedAttention(False), batcher)
  chain_report, _ = analysis.infer_network(chain, 6, data.edges)
  assert chain_report['parent_accuracy'] == pytest.approx(1 / 5)
  assert chain_report['f1'] < report['f1']


def test_figures_are_written(tmp_path):
  alpha = analysis.alignments_to_absolute(np.full((5, 3), 1 / 3, np.float32))
  path = str(tmp_path / 'a.png')
  plots.alignment_heatmaps([('c0', alpha, np.arange(5))], path, max_events=4)
  assert os.path.getsize(path) > 1000
  rng = np.random.default_rng(0)
  truth = rng.random((40, 40)) < 0.1
  inferred = truth ^ (rng.random((40, 40)) < 0.05)
  path = str(tmp_path / 'n.png')
  plots.network_comparison(inferred, truth, path, max_users=30)
  assert os.path.getsize(path) > 1000
