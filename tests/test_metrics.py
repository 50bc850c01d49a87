"""Tests for cyan_rcbm.cyan.metrics and the evaluation loop (cyan.evaluate)."""

import numpy as np
import pytest

from cyan_rcbm.cyan import evaluate
from cyan_rcbm.cyan import metrics
from cyan_rcbm.data import types


def _apk(actual, predicted, k):
  """FOREST / MS-HGAT `apk` (Metrics.py), the reference for map@k."""
  score, hits = 0.0, 0.0
  for i, p in enumerate(predicted[:k]):
    if p in actual and p not in predicted[:i]:
      hits += 1.0
      score += hits / (i + 1.0)
  return score / min(len(actual), k)


def test_ranks_skip_active_users_and_count_ties():
  users = np.array([[3, 1, 4, 0]], np.int32)
  mask = np.array([[True, True, True, False]])
  scores = np.zeros((1, 4, 6), np.float32)
  # position 0 (predicts user 1): user 3 (active) scores highest, users 2
  # and 5 tie with the target, user 0 is below.
  scores[0, 0] = [-1.0, 0.5, 0.5, 9.0, -2.0, 0.5]
  # position 1 (predicts 4): active users 3 and 1 outrank it; 0 beats it.
  scores[0, 1] = [2.0, 8.0, -1.0, 7.0, 1.0, 0.0]
  greater, ties, has_next = metrics.target_ranks(scores, users, mask)
  np.testing.assert_array_equal(has_next, [[True, True, False, False]])
  assert (int(greater[0, 0]), int(ties[0, 0])) == (0, 2)
  assert (int(greater[0, 1]), int(ties[0, 1])) == (1, 0)
  g, _, _ = metrics.target_ranks(scores, users, mask, exclude_active=False)
  assert int(g[0, 0]) == 1 and int(g[0, 1]) == 3


def test_metrics_match_forest_definitions():
  ranks = np.array([1, 3, 12, 60, 200, 7])
  out = metrics.compute_metrics(ranks, None, None, None, np.ones(6, bool))
  num_users = 300
  for k in (10, 50, 100):
    preds = []
    for r in ranks:  # a ranked list with the true user (0) at rank r
      preds.append([1 + i for i in range(r - 1)] + [0] +
                   [num_users + i for i in range(num_users)])
    assert out[f'map@{k}'] == pytest.approx(
        np.mean([_apk([0], p, k) for p in preds]))
    assert out[f'hits@{k}'] == pytest.approx(np.mean(ranks <= k))
  assert out['acc@1'] == pytest.approx(1 / 6)
  assert out['acc@5'] == pytest.approx(2 / 6)
  assert out['mrr'] == pytest.approx(np.mean(1.0 / ranks))
  assert out['rmse'] is None and out['nll_per_event'] is None
  assert out['num_events'] == 6
  assert tuple(out)[:len(metrics.METRIC_KEYS)] == metrics.METRIC_KEYS


def test_ties_give_expectations_under_random_tie_breaking():
  # a constant scorer over 20 candidates: the true user is anywhere 1..20.
  n = 20
  out = metrics.compute_metrics(np.ones(4, int), None, None, None,
                                np.ones(4, bool), ties=np.full(4, n - 1))
  assert out['acc@1'] == pytest.approx(1 / n)
  assert out['acc@5'] == pytest.approx(5 / n)
  assert out['mrr'] == pytest.approx(np.sum(1 / np.arange(1, n + 1)) / n)
  assert out['map@10'] == pytest.approx(np.sum(1 / np.arange(1, 11)) / n)
  assert out['hits@50'] == pytest.approx(1.0)


def test_rmse_nll_and_mask():
  mask = np.array([True, True, False])
  out = metrics.compute_metrics(np.array([1, 2, 3]), np.array([1.0, 2.0, 9.0]),
                                np.array([2.0, 4.0, 0.0]),
                                np.array([0.5, 1.5, 99.0]), mask)
  assert out['rmse'] == pytest.approx(np.sqrt((1 + 4) / 2))
  assert out['nll_per_event'] == pytest.approx(1.0)
  assert out['num_events'] == 2
  empty = metrics.compute_metrics(None, None, None, None, np.zeros(0, bool))
  assert empty['num_events'] == 0 and empty['acc@1'] is None


def _dataset():
  rng = np.random.default_rng(0)
  cascades = []
  for i, n in enumerate([5, 9, 3, 14, 2]):
    times = np.r_[0.0, np.cumsum(rng.exponential(size=n - 1))]
    cascades.append(types.Cascade(f'c{i}', rng.permutation(20)[:n].astype(
        np.int32), times))
  return types.CascadeDataset(cascades, vocab=[str(u) for u in range(20)])


class _Oracle:
  """Knows the future: best score for the true next user, exact gaps."""

  def predict(self, batch):
    b, n = batch.users.shape
    scores = np.zeros((b, n, 20), np.float32)
    gaps = np.zeros((b, n), np.float32)
    scores[:, :-1][np.arange(b)[:, None], np.arange(n - 1), batch.users[:, 1:]] = 1
    gaps[:, :-1] = batch.gaps[:, 1:]
    return scores, gaps


class _Uniform:
  def predict(self, batch):
    b, n = batch.users.shape
    return np.zeros((b, n, 20)), None


def test_evaluate_scores_any_predictor():
  data = _dataset()
  out = evaluate.evaluate(_Oracle(), data, batch_size=2)
  assert out['num_events'] == 5 + 9 + 3 + 14 + 2 - 5
  assert out['acc@1'] == 1.0 and out['mrr'] == 1.0
  assert out['rmse'] == pytest.approx(0.0, abs=1e-6)
  assert out['nll_per_event'] is None
  out, events = evaluate.evaluate(_Uniform(), data, return_events=True)
  assert out['rmse'] is None
  # candidates at position k: 20 users minus the k+1 active ones.
  candidates = 20 - (events['position'] + 1)
  assert out['acc@1'] == pytest.approx(np.mean(1 / candidates))
  assert set(events) >= {'index', 'position', 'rank', 'ties', 'true_gap'}
