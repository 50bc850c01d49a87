"""Tests for cyan_rcbm.cyan.baselines.ct (CT-Bernoulli / CT-Jaccard) on a toy graph."""

import dataclasses

import numpy as np
import pytest

from cyan_rcbm import errors
from cyan_rcbm.cyan import baselines
from cyan_rcbm.cyan import evaluate
from cyan_rcbm.cyan.baselines import _common
from cyan_rcbm.cyan.baselines import ct
from cyan_rcbm.data import splits as splits_lib
from cyan_rcbm.data.types import Cascade, CascadeDataset

# Edges 0->1, 0->2, 1->2, 2->3 over 4 users.
_EDGES = np.array([[0, 1], [0, 2], [1, 2], [2, 3]], np.int32)


def _dataset(cascades, edges=_EDGES):
  return CascadeDataset(
      [Cascade(str(i), np.asarray([u for u, _ in c], np.int32),
               np.asarray([t for _, t in c], np.float64))
       for i, c in enumerate(cascades)],
      vocab=['0', '1', '2', '3'], edges=edges, source='toy')


# A_0 = 3, A_1 = 2, A_2 = 3, A_3 = 1. Propagations along edges: 0->1 (c0,
# delay 1), 0->2 (c0 delay 3, c1 delay 2), 1->2 (c0, delay 2). In c3, 2
# joins before 0: 0 and 2 co-occur but 0 did not propagate to 2. 1->3 (c2) is
# not an edge.
_TRAIN = _dataset([[(0, 0.0), (1, 1.0), (2, 3.0)],
                   [(0, 0.0), (2, 2.0)],
                   [(1, 0.0), (3, 1.0)],
                   [(2, 0.0), (0, 1.0)]])


def test_propagation_counts_by_hand():
  counts = ct.propagation_counts(_TRAIN, _EDGES)
  np.testing.assert_array_equal(counts.joined, [3, 2, 3, 1])
  np.testing.assert_array_equal(counts.propagated, [1, 2, 1, 0])
  np.testing.assert_array_equal(counts.both, [1, 3, 1, 0])
  np.testing.assert_allclose(counts.delay_sum, [1.0, 5.0, 2.0, 0.0])


def test_repeated_user_counts_once_at_first_activation():
  data = _dataset([[(0, 0.0), (1, 1.0), (0, 2.0), (1, 4.0)]])
  counts = ct.propagation_counts(data, _EDGES)
  np.testing.assert_array_equal(counts.joined, [1, 1, 0, 0])
  np.testing.assert_array_equal(counts.propagated, [1, 0, 0, 0])
  np.testing.assert_allclose(counts.delay_sum, [1.0, 0, 0, 0])


@pytest.mark.parametrize('kind,probs', [
    ('bernoulli', {(0, 1): 1 / 3, (0, 2): 2 / 3, (1, 2): 1 / 2}),
    # p = A_v2u / (A_v + A_u - A_v&u)
    ('jaccard', {(0, 1): 1 / 4, (0, 2): 2 / 3, (1, 2): 1 / 4}),
])
def test_fitted_edges_and_scores_by_hand(kind, probs):
  model = ct.ContinuousTimeModel.fit(_TRAIN, kind)
  fitted = {(int(s), int(d)): (float(p), float(t)) for s, d, p, t in
            zip(model.src, model.dst, model.prob, model.tau)}
  assert set(fitted) == set(probs)  # 2->3 never propagated: p = 0, dropped
  for edge, p in probs.items():
    assert fitted[edge][0] == pytest.approx(p, rel=1e-6)
  taus = {(0, 1): 1.0, (0, 2): 2.5, (1, 2): 2.0}
  for edge, tau in taus.items():
    assert fitted[edge][1] == pytest.approx(tau, rel=1e-6)

  test = _dataset([[(0, 0.0), (1, 0.5), (2, 1.5), (3, 2.0)]])
  neg, gap, nll = model.predict(_common.padded(test))
  neg = np.asarray(neg)[0]
  assert gap is None and nll is None
  score = 1.0 - np.exp(-neg)  # the spec's score, from -log(1 - score)
  # k = 0 (t = 0): only user 0 active, at dt = 0.
  np.testing.assert_allclose(score[0], [0, probs[0, 1], probs[0, 2], 0],
                             atol=1e-6)
  # k = 1 (t = 0.5): user 2 reached from 0 (dt 0.5) and 1 (dt 0).
  expected = 1 - (1 - probs[0, 2] * np.exp(-0.5 / 2.5)) * (1 - probs[1, 2])
  assert score[1, 2] == pytest.approx(expected, rel=1e-5)
  assert score[1, 3] == 0.0  # 2 -> 3 has p = 0; 2 is not active yet anyway
  # k = 2 (t = 1.5): user 2's own score decays from both sources.
  expected = 1 - ((1 - probs[0, 2] * np.exp(-1.5 / 2.5)) *
                  (1 - probs[1, 2] * np.exp(-1.0 / 2.0)))
  assert score[2, 2] == pytest.approx(expected, rel=1e-5)


def test_ranking_through_the_shared_evaluator():
  model = ct.ContinuousTimeModel.fit(_TRAIN, 'bernoulli')
  # After [0] user 2 (p 2/3) outranks user 1 (1/3); 3 scores 0.
  result = evaluate.evaluate(model, _dataset([[(0, 0.0), (1, 1.0)]]),
                             batch_size=2)
  assert result['num_events'] == 1
  assert result['acc@1'] == 0.0 and result['mrr'] == pytest.approx(0.5)
  assert result['rmse'] is None


def test_chunked_accumulation_matches_one_chunk(monkeypatch):
  rng = np.random.default_rng(0)
  edges = np.array([(a, b) for a in range(4) for b in range(4) if a != b],
                   np.int32)
  cascades = []
  for _ in range(30):
    users = rng.permutation(4)[:rng.integers(2, 5)]
    cascades.append(list(zip(users, np.sort(rng.exponential(1.0,
                                                            len(users))))))
  data = _dataset(cascades, edges)
  model = ct.ContinuousTimeModel.fit(data, 'jaccard')
  batch = _common.padded(data)
  whole = np.asarray(model.predict(batch)[0])
  monkeypatch.setattr(ct, '_CHUNK_ELEMENTS', 1)  # 256 pairs per call
  chunked = np.asarray(model.predict(batch)[0])
  np.testing.assert_allclose(chunked, whole, rtol=1e-6)


def test_missing_graph_names_the_data_set():
  no_graph = dataclasses.replace(_TRAIN, edges=None)
  splits = splits_lib.Splits(no_graph, no_graph, no_graph)
  with pytest.raises(errors.ConfigError,
                     match="CT-Bernoulli needs the social graph, but data set "
                     "'twitter' has no graph"):
    baselines.fit_baseline('ct_bern', splits, data_name='twitter')
  empty = dataclasses.replace(_TRAIN, edges=np.zeros((0, 2), np.int32))
  with pytest.raises(errors.ConfigError, match='an empty graph'):
    ct.ContinuousTimeModel.fit(empty, 'jaccard', data_name='mine')
  with pytest.raises(errors.ConfigError, match='CT kind'):
    ct.ContinuousTimeModel.fit(_TRAIN, 'poisson')
