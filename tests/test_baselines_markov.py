"""Tests for cyan_rcbm.cyan.baselines.markov (MC-1) against hand-computed values."""

import numpy as np
import pytest

from cyan_rcbm import errors
from cyan_rcbm.cyan import evaluate
from cyan_rcbm.cyan.baselines import _common
from cyan_rcbm.cyan.baselines import markov
from cyan_rcbm.data.types import Cascade, CascadeDataset


def _dataset(user_lists, num_users=3):
  cascades = [Cascade(str(i), np.asarray(u, np.int32),
                      np.arange(len(u), dtype=np.float64))
              for i, u in enumerate(user_lists)]
  return CascadeDataset(cascades, [str(u) for u in range(num_users)])


# Transitions: 0->1 twice, 1->2, 1->0, 0->2.
_TRAIN = _dataset([[0, 1, 2], [0, 1], [1, 0, 2]])


def test_counts_and_log_probs_by_hand():
  model = markov.MarkovChain.fit(_TRAIN, smoothing=1.0)
  np.testing.assert_array_equal(model.counts.toarray(),
                                [[0, 2, 1], [1, 0, 1], [0, 0, 0]])
  test = _dataset([[0, 1, 2]])
  log_probs, gap, nll, extras = model.predict(_common.padded(test))
  assert gap is None and nll is None
  # p(.|0) = (0+1, 2+1, 1+1) / (3 + 3); p(.|1) = (1+1, 0+1, 1+1) / (2 + 3).
  np.testing.assert_allclose(np.exp(log_probs[0, 0]), [1 / 6, 3 / 6, 2 / 6],
                             rtol=1e-6)
  np.testing.assert_allclose(np.exp(log_probs[0, 1]), [2 / 5, 1 / 5, 2 / 5],
                             rtol=1e-6)
  # p(.|2): no training transition out of 2 -> uniform.
  np.testing.assert_allclose(np.exp(log_probs[0, 2]), [1 / 3] * 3, rtol=1e-6)
  # Active users masked: after [0], p(1) = (3/6) / (3/6 + 2/6) = 3/5; after
  # [0, 1] only user 2 is left, so p(2) = 1.
  user_nll = np.asarray(extras['user_nll_per_event'])[0]
  np.testing.assert_allclose(user_nll[:2], [-np.log(3 / 5), 0.0], atol=1e-6)
  assert user_nll[2] == 0.0  # no next event


def test_metrics_through_the_shared_evaluator():
  model = markov.MarkovChain.fit(_TRAIN, smoothing=1.0)
  # Event 2 (user 2 after 0): among candidates {1, 2}, p(1|0) > p(2|0), so
  # user 2 ranks 2nd; event 3 (user 1 after 2): only candidate left.
  result = evaluate.evaluate(model, _dataset([[0, 2, 1]]), batch_size=4)
  assert result['num_events'] == 2
  assert result['acc@1'] == pytest.approx(0.5)
  assert result['mrr'] == pytest.approx((1 / 2 + 1) / 2)
  assert result['rmse'] is None and result['nll_per_event'] is None
  assert result['user_nll_per_event'] == pytest.approx(
      (-np.log((2 / 6) / (5 / 6)) + 0.0) / 2, rel=1e-5)


def test_smoothing_is_chosen_on_validation_nll():
  valid = _dataset([[2, 0, 1], [0, 2]])
  grid = (1e-3, 0.1, 10.0)
  chosen = markov.MarkovChain.fit(_TRAIN, valid, grid=grid)
  padded_valid = _common.padded(valid)
  has_next = np.asarray(padded_valid.mask)[:, 1:]
  nlls = {}
  for beta in grid:
    extras = markov.MarkovChain.fit(_TRAIN, smoothing=beta).predict(
        padded_valid)[3]
    nlls[beta] = float(np.asarray(
        extras['user_nll_per_event'])[:, :-1][has_next].mean())
  assert chosen.smoothing == min(nlls, key=nlls.get)
  assert chosen.valid_user_nll == pytest.approx(min(nlls.values()), rel=1e-6)


def test_errors():
  with pytest.raises(errors.ConfigError, match='smoothing must be > 0'):
    markov.MarkovChain.fit(_TRAIN, smoothing=0.0)
  with pytest.raises(errors.DataError, match='two or more events'):
    markov.MarkovChain.fit(_dataset([[0], [1]]))
  with pytest.raises(errors.DataError, match='no cascades'):
    markov.MarkovChain.fit(_dataset([]))
