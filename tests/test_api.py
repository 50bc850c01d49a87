"""Tests for the public API (cyan_rcbm top level, cyan_rcbm.cyan.api).

The module fixture runs the README's API example (README.md, Library API)
verbatim: it trains the tiny config once; the other tests reuse its model.
"""

import json
import os
import re

import chex
import numpy as np
import pytest

import cyan_rcbm as cr
from cyan_rcbm.cyan import api

_README = os.path.join(os.path.dirname(__file__), '..', 'README.md')


def _readme_block() -> str:
  with open(_README) as f:
    blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
  assert len(blocks) == 1, 'README.md must hold one python block'
  return blocks[0]


@pytest.fixture(scope='module')
def example(tmp_path_factory):
  """The README example, run in a fresh directory; returns its namespace."""
  cwd = os.getcwd()
  os.chdir(tmp_path_factory.mktemp('readme'))
  try:
    namespace = {}
    exec(compile(_readme_block(), 'README.md', 'exec'), namespace)  # pylint: disable=exec-used
    namespace['workdir'] = os.path.abspath('runs/api_tiny')
  finally:
    os.chdir(cwd)
  return namespace


@pytest.fixture(scope='module')
def model(example):
  return example['model']


def test_readme_example_runs(example):
  alpha, cascade = example['alpha'], example['cascade']
  assert alpha.shape == (len(cascade), len(cascade))
  assert example['counts'].shape == (32, 32)
  samples, prefix = example['samples'], example['prefix']
  assert len(samples) == 64 and len(prefix) == 3
  f = example['forecast']
  assert f.lower <= f.median <= f.upper and len(f.samples) == 200
  assert f.lower >= len(prefix) and f.truncated == 0


def test_load_cyan_round_trip(model, example):
  loaded = cr.load_cyan(example['workdir'])
  assert loaded.vocab == model.vocab and loaded.step == model.step
  chex.assert_trees_all_equal(loaded.params, model.params)
  cascades = list(model.splits().test.cascades[:6])
  for a, b in zip(model.predict(cascades, k=5), loaded.predict(cascades, k=5)):
    assert a.users == b.users
    np.testing.assert_array_equal(a.probs, b.probs)
    assert a.expected_time == b.expected_time
  # the same metrics as the training run's own test evaluation.
  with open(os.path.join(example['workdir'], 'eval_test.json')) as f:
    saved = json.load(f)
  got = loaded.evaluate('test')
  assert loaded.test_metrics == saved
  for key in ('acc@1', 'acc@5', 'mrr', 'rmse', 'nll_per_event', 'num_events'):
    assert got[key] == pytest.approx(saved[key], rel=1e-6), key


def test_predict_returns_tokens_and_a_sorted_law(model):
  test = model.splits().test
  cascades = list(test.cascades[:8])
  preds = model.predict(cascades, k=5)
  assert [p.cascade_id for p in preds] == [c.id for c in cascades]
  for p, c in zip(preds, cascades):
    assert len(p.users) == 5 and all(u in model.vocab for u in p.users)
    assert list(p.users) == model.user_tokens(p.user_ids)
    assert np.all(np.diff(p.probs) <= 0) and p.probs.sum() <= 1 + 1e-6
    assert not set(p.user_ids) & set(c.users.tolist())  # active: masked
    assert p.expected_gap > 0
    assert p.expected_time == pytest.approx(c.times[-1] + p.expected_gap)
  # every candidate: all not-yet-active users, probabilities summing to 1.
  (everyone,) = model.predict([cascades[0]], k=100)
  assert len(everyone.users) == 32 - len(set(cascades[0].users.tolist()))
  assert everyone.probs.sum() == pytest.approx(1.0, abs=1e-5)
  # (time, token) pairs give the same prediction as the Cascade.
  c = cascades[1]
  pairs = [(t, test.vocab[u]) for t, u in zip(c.times, c.users)]
  (a,), (b,) = model.predict([pairs], k=5), model.predict(c, k=5)
  assert a.users == b.users and np.allclose(a.probs, b.probs)


def test_alignments_and_network(model, example):
  cascade = example['cascade']
  alpha = example['alpha']
  np.testing.assert_allclose(alpha.sum(1), 1.0, atol=1e-5)
  assert np.all(np.triu(alpha, 1) == 0)  # only earlier events are attended
  win = model.config.model.dependence_length
  assert np.all(np.tril(alpha, -win) == 0)  # nor those outside the window
  counts = model.infer_network('test')
  assert counts.sum() == model.test_metrics['num_events']
  report = model.network_report(model.splits().test)
  for key in ('precision', 'recall', 'f1', 'pr_auc', 'parent_accuracy'):
    assert 0 <= report[key] <= 1, key
  rmtpp = cr.create_cyan(cr.load_config('configs/cyan.py:tiny',
                                        model__variant='rmtpp'), 32)
  with pytest.raises(cr.InputError, match='no attention'):
    rmtpp.alignments(cascade)


def test_other_vocab_order_is_mapped_by_token(model):
  test = model.splits().test
  order = np.random.default_rng(0).permutation(32)   # new id -> old id
  new_id = np.argsort(order)                         # old id -> new id
  shuffled = cr.CascadeDataset(
      cascades=[cr.Cascade(id=c.id, users=new_id[c.users].astype(np.int32),
                           times=c.times, parents=c.parents)
                for c in test.cascades],
      vocab=[test.vocab[i] for i in order], edges=new_id[test.edges])
  assert model.evaluate(shuffled) == model.evaluate('test')
  unknown = cr.CascadeDataset(cascades=test.cascades[:2],
                              vocab=['x'] + list(test.vocab[1:]))
  with pytest.raises(cr.InputError, match="token 'x'"):
    model.evaluate(unknown)


def test_samples_from_the_trained_model_are_valid(model, example):
  prefix = example['prefix']
  for c in example['samples']:
    np.testing.assert_array_equal(c.users[:3], prefix.users)
    assert len(np.unique(c.users)) == len(c)
    assert np.all(np.diff(c.times[2:]) >= 0)
    assert np.all(c.times[3:] > prefix.times[-1])
    assert np.all(c.times <= prefix.times[-1] + 5.0)


@pytest.mark.parametrize('bad, message', [
    ([[]], 'empty'),
    ([[(0.0, 'no-such-user')]], "unknown user token 'no-such-user'"),
    ([[(0.0, '1'), (1.0, '2', 3)]], 'expected a .time, user token. pair'),
    ([[('soon', '1')]], 'expected a number'),
    ([[(1.0, '1'), (0.5, '2')]], 'not sorted'),
    ([[(float('nan'), '1')]], 'non-finite'),
    (5, 'expected a list of cascades'),
    ('3,17', 'expected a list of cascades'),
    ([], 'no cascades'),
    ([cr.Cascade(id='c', users=np.array([0.5]), times=np.zeros(1))],
     'integer dense ids'),
    ([cr.Cascade(id='c', users=np.array([40]), times=np.zeros(1))],
     'not a dense id'),
    ([cr.Cascade(id='c', users=np.array([], np.int32), times=np.zeros(0))],
     "cascade 'c' is empty"),
])
def test_bad_cascades_are_input_errors(model, bad, message):
  with pytest.raises(cr.InputError, match=message):
    model.predict(bad)


def test_bad_arguments_are_input_errors(model, example, tmp_path):
  prefix = example['prefix']
  with pytest.raises(cr.InputError, match='k must be'):
    model.predict([prefix], k=0)
  with pytest.raises(cr.InputError, match='k must be an integer'):
    model.predict([prefix], k=2.5)
  with pytest.raises(cr.InputError, match='empty'):
    model.sample([], num_samples=2, max_events=3)
  with pytest.raises(cr.InputError, match='empty'):
    model.forecast_size([], horizon=1.0)
  with pytest.raises(cr.InputError, match='observed_until'):
    model.sample(prefix, num_samples=2, max_events=3,
                 observed_until=float(prefix.times[-1]) - 1)
  with pytest.raises(cr.InputError, match='unknown split'):
    model.evaluate('tests')
  with pytest.raises(cr.InputError, match='config.json'):
    cr.load_cyan(str(tmp_path))
  with pytest.raises(cr.InputError, match='must be a path'):
    cr.load_cyan(3)
  with pytest.raises(cr.InputError, match='ConfigDict'):
    cr.train_cyan({'task': 'cyan'}, str(tmp_path))
  with pytest.raises(cr.ConfigError, match='task'):
    cr.train_cyan(cr.load_config('configs/rcbm.py:tiny'), str(tmp_path))


def test_top_level_names():
  for name in cr.__all__:
    assert getattr(cr, name) is not None, name
  assert cr.train_cyan is api.train_cyan and cr.CyanModel is api.CyanModel
  assert issubclass(cr.DataError, cr.InputError)
  with pytest.raises(AttributeError):
    cr.no_such_name  # pylint: disable=pointless-statement
  for name in ('train_cyan', 'load_cyan', 'create_cyan'):
    assert getattr(cr, name).__doc__ and 'equations.md' in getattr(cr, name).__doc__
