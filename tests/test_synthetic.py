"""Tests for cyan_rcbm.data.synthetic (equations.md A2, CYAN-RNN section 4.2)."""

import hashlib
import json
import os

import numpy as np
import pytest

from cyan_rcbm.data import synthetic
from cyan_rcbm.errors import ConfigError, DataError

def _check_cascades(s: synthetic.SyntheticSet):
  """equations.md A2 invariants of every generated cascade."""
  assert s.dataset.vocab == [str(u) for u in range(s.num_users)]
  np.testing.assert_array_equal(s.dataset.edges, np.argwhere(s.adjacency))
  for c in s.dataset.cascades:
    n = len(c)
    assert n >= s.min_length
    assert c.times[0] == 0.0 and c.parents[0] == -1
    assert np.all(np.diff(c.times) >= 0) and c.times[-1] <= s.horizon
    assert len(set(c.users.tolist())) == n
    parents = c.parents[1:]
    assert np.all((parents >= 0) & (parents < np.arange(1, n)))
    assert s.adjacency[c.users[parents], c.users[1:]].all()
    assert np.all(c.times[1:] > c.times[parents])


@pytest.fixture(scope='module')
def cp_exp():
  return synthetic.make_synthetic('cp', 'exp', num_users=32,
                                  num_cascades=400, seed=3)


@pytest.mark.parametrize('network,delay,kwargs', [
    ('random', 'ray', {}),
    ('cp', 'ray', dict(param_draw='loguniform', horizon=5.0)),
    # equations.md A2's literal model: Bernoulli graph, no transmission coin.
    ('cp', 'exp', dict(edges_per_user=0, transmit_prob=1.0, min_length=1)),
    ('random', 'exp', dict(num_users=8, edges_per_user=1.5)),
])
def test_cascades_are_valid(cp_exp, network, delay, kwargs):
  _check_cascades(cp_exp)
  s = synthetic.make_synthetic(network, delay, **{
      'num_cascades': 300, 'seed': 1, **kwargs})
  _check_cascades(s)
  assert len(s.dataset) == 300
  assert np.isnan(s.edge_params[~s.adjacency]).all()
  assert (s.edge_params[s.adjacency] >= 0.01).all()
  assert (s.edge_params[s.adjacency] <= 10).all()


def test_short_cascades_are_redrawn_or_kept(cp_exp):
  assert cp_exp.num_redrawn > 0
  assert min(len(c) for c in cp_exp.dataset.cascades) >= 2
  kept = synthetic.make_synthetic('cp', 'exp', num_cascades=400, seed=3,
                                  min_length=1)
  assert kept.num_redrawn == 0
  assert min(len(c) for c in kept.dataset.cascades) == 1


def test_deterministic(cp_exp):
  again = synthetic.make_synthetic('cp', 'exp', num_cascades=400, seed=3)
  np.testing.assert_array_equal(again.adjacency, cp_exp.adjacency)
  np.testing.assert_array_equal(again.edge_params, cp_exp.edge_params)
  for a, b in zip(again.dataset.cascades, cp_exp.dataset.cascades):
    np.testing.assert_array_equal(a.users, b.users)
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.parents, b.parents)
  other = synthetic.make_synthetic('cp', 'exp', num_cascades=400, seed=4)
  assert (other.adjacency != cp_exp.adjacency).any()
  # The graph and its parameters do not depend on how many cascades are drawn.
  fewer = synthetic.make_synthetic('cp', 'exp', num_cascades=10, seed=3)
  np.testing.assert_array_equal(fewer.edge_params, cp_exp.edge_params)


@pytest.mark.parametrize('kwargs,match', [
    (dict(network='star'), 'network'),
    (dict(delay='gauss'), 'delay'),
    (dict(num_users=24), 'power of two'),
    (dict(param_draw='normal'), 'param_draw'),
    (dict(num_cascades=-1), 'num_cascades'),
    (dict(horizon=0.0), 'horizon'),
    (dict(transmit_prob=0.0), 'transmit_prob'),
    (dict(min_length=0), 'min_length'),
    (dict(edges_per_user=40), 'edges_per_user'),
])
def test_bad_arguments(kwargs, match):
  with pytest.raises(ConfigError, match=match):
    synthetic.make_synthetic(**{'num_cascades': 5, **kwargs})


def test_impossible_min_length():
  with pytest.raises(ConfigError, match='min_length'):
    synthetic.make_synthetic('cp', 'exp', num_users=4, num_cascades=5,
                             edges_per_user=0.5, min_length=4)


def _digests(directory):
  return {name: hashlib.sha256(open(os.path.join(directory, name), 'rb')
                               .read()).hexdigest()
          for name in sorted(os.listdir(directory))}


def test_save_load_round_trip_and_identical_bytes(cp_exp, tmp_path):
  synthetic.save_synthetic(cp_exp, str(tmp_path / 'a'))
  assert sorted(os.listdir(tmp_path / 'a')) == [
      'cascades.jsonl', 'edge_params.json', 'graph.txt', 'meta.json']
  back = synthetic.load_synthetic(str(tmp_path / 'a'))
  assert back.meta() == cp_exp.meta()
  np.testing.assert_array_equal(back.adjacency, cp_exp.adjacency)
  np.testing.assert_array_equal(back.edge_params, cp_exp.edge_params)
  np.testing.assert_array_equal(back.dataset.edges, cp_exp.dataset.edges)
  assert list(back.dataset.vocab) == list(cp_exp.dataset.vocab)
  assert back.dataset.time_unit == 'units'
  assert len(back.dataset) == len(cp_exp.dataset)
  for a, b in zip(back.dataset.cascades, cp_exp.dataset.cascades):
    assert a.id == b.id
    np.testing.assert_array_equal(a.users, b.users)
    np.testing.assert_array_equal(a.times, b.times)  # exact float64
    np.testing.assert_array_equal(a.parents, b.parents)
  # Same seed, regenerated from scratch: byte-identical files.
  again = synthetic.make_synthetic('cp', 'exp', num_cascades=400, seed=3)
  synthetic.save_synthetic(again, str(tmp_path / 'b'))
  assert _digests(tmp_path / 'a') == _digests(tmp_path / 'b')
  other = synthetic.make_synthetic('cp', 'exp', num_cascades=400, seed=4)
  synthetic.save_synthetic(other, str(tmp_path / 'c'))
  assert (_digests(tmp_path / 'a')['cascades.jsonl']
          != _digests(tmp_path / 'c')['cascades.jsonl'])


def test_load_errors(cp_exp, tmp_path):
  with pytest.raises(DataError, match='meta.json: missing file'):
    synthetic.load_synthetic(str(tmp_path))
  small = synthetic.make_synthetic('random', 'ray', num_users=4,
                                   num_cascades=3, edges_per_user=1)
  synthetic.save_synthetic(small, str(tmp_path))
  params_path = tmp_path / 'edge_params.json'
  params = json.loads(params_path.read_text())
  params['edges'] = params['edges'][1:]
  params_path.write_text(json.dumps(params))
  with pytest.raises(DataError, match='edge_params.json: the edges'):
    synthetic.load_synthetic(str(tmp_path))
  (tmp_path / 'meta.json').write_text('{"network": "cp"')
  with pytest.raises(DataError, match='meta.json:1: invalid JSON'):
    synthetic.load_synthetic(str(tmp_path))
