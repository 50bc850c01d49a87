"""The transition prior (cyan_rcbm/cyan/prior.py) against plain numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import configs.cyan as cyan_configs
from cyan_rcbm.cyan import event_step
from cyan_rcbm.cyan import model as model_lib
from cyan_rcbm.cyan import prior
from cyan_rcbm.cyan import train as train_lib
from cyan_rcbm.data import types

U = 7


EDGES = np.array([[0, 3], [0, 5], [1, 2], [2, 6], [4, 0], [6, 1]], np.int32)


def _dataset(rows, edges=EDGES):
  cascades = [types.Cascade(id=str(i), users=np.asarray(r, np.int32),
                            times=np.arange(len(r), dtype=np.float64))
              for i, r in enumerate(rows)]
  return types.CascadeDataset(cascades=cascades,
                              vocab=[str(u) for u in range(U)], edges=edges)


def test_successor_table_keeps_the_most_frequent_successors():
  data = _dataset([[0, 1, 2], [0, 1, 3], [0, 2], [1, 2, 0], [4, 5]])
  users, counts = prior.successor_table(data, U, top_m=2)
  np.testing.assert_array_equal(users[0], [1, 2])   # 0->1 twice, 0->2 once
  np.testing.assert_array_equal(counts[0], [2, 1])
  np.testing.assert_array_equal(users[1], [2, 3])   # 1->2 twice, 1->3 once
  np.testing.assert_array_equal(counts[1], [2, 1])
  np.testing.assert_array_equal(counts[6], [0, 0])  # no successor


def test_graph_table_lists_out_neighbours_most_active_first():
  share = np.log(np.array([1, 2, 3, 9, 1, 8, 1], float) / 25)
  users, counts = prior.graph_table(EDGES, share, U, top_m=1)
  assert users[0, 0] == 3 and counts[0, 0] == 1   # 0 -> 3 (share 9) over 5
  assert users[4, 0] == 0 and counts[3, 0] == 0   # 3 has no out-edge


def _reference(users_UxM, counts_UxM, seq, k, window, decay, leave_out=None,
               reach=1):
  """Dense numpy `log(1 + A_k)` of the events up to position k."""
  dense = np.zeros((U, U))
  for v in range(U):
    for m in range(users_UxM.shape[1]):
      dense[v, users_UxM[v, m]] += counts_UxM[v, m]
  acc = np.zeros(U)
  for j in range(max(0, k - window + 1), k + 1):
    acc += decay ** (k - j) * dense[seq[j]]
    if (leave_out is not None and j > k - reach and
        counts_UxM[seq[j]][users_UxM[seq[j]] == leave_out].sum() > 0):
      acc[leave_out] -= decay ** (k - j)
  return np.log1p(np.maximum(acc, 0.0))


def test_successor_table_reach_counts_later_users():
  data = _dataset([[0, 1, 2], [0, 2]])
  users, counts = prior.successor_table(data, U, top_m=2, reach=2)
  np.testing.assert_array_equal(users[0], [2, 1])   # 0 -> 2 twice, 0 -> 1
  np.testing.assert_array_equal(counts[0], [2, 1])


@pytest.mark.parametrize('leave_one_out, reach', [(False, 1), (True, 1),
                                                   (True, 3)])
def test_log_prior_equals_dense_reference(leave_one_out, reach):
  rng = np.random.default_rng(0)
  data = _dataset([rng.permutation(U)[:rng.integers(2, U)] for _ in range(30)])
  users, counts = prior.successor_table(data, U, top_m=3, reach=reach)
  seqs = np.stack([rng.permutation(U)[:6] for _ in range(4)]).astype(np.int32)
  mask = np.arange(6)[None] < np.array([6, 3, 1, 5])[:, None]
  recent, valid = prior.recent_users(jnp.asarray(seqs), jnp.asarray(mask), 4)
  nxt = np.concatenate([seqs[:, 1:], np.zeros((4, 1), np.int32)], 1)
  got = prior.log_prior(jnp.asarray(users, jnp.float32), jnp.asarray(counts),
                        recent, valid, 0.5, U,
                        jnp.asarray(nxt) if leave_one_out else None, reach)
  for b in range(4):
    for k in range(int(mask[b].sum())):
      want = _reference(users, counts, seqs[b], k, 4, 0.5,
                        nxt[b, k] if leave_one_out else None, reach)
      np.testing.assert_allclose(got[b, k], want, rtol=1e-5, atol=1e-6)


def _prior_model(variant, data):
  config = cyan_configs.get_config('tiny')
  config.model.update(variant=variant, transition_prior=True, prior_top_m=3,
                      prior_window=4, prior_reach=3, popularity_bias=True)
  graphdef, params = model_lib.init_params(config.model, U, calendar=False)
  return config, graphdef, prior.install(params, config.model, data, U)


@pytest.mark.parametrize('variant', ['cyan_cov', 'rmtpp'])
def test_event_by_event_prior_equals_full_pass(variant):
  rng = np.random.default_rng(1)
  data = _dataset([rng.permutation(U)[:5] for _ in range(20)])
  _, graphdef, params = _prior_model(variant, data)
  users = np.stack([rng.permutation(U)[:6] for _ in range(3)]).astype(np.int32)
  gaps = rng.exponential(1.0, (3, 6)).astype(np.float32)
  lengths = np.array([6, 2, 4])
  mask = np.arange(6)[None] < lengths[:, None]
  net = nnx.merge(graphdef, params)
  net.mask_active = False
  full = net(users, gaps, mask)
  last = event_step.next_event(net, users, gaps, mask)
  rows = np.arange(3)
  want = jax.nn.log_softmax(last.logits, -1)
  np.testing.assert_allclose(full.log_probs[rows, lengths - 1], want,
                             rtol=1e-4, atol=1e-4)
  assert float(jnp.abs(params['prior_counts']).sum()) > 0
  assert float(jnp.abs(params['prior_graph_counts']).sum()) > 0


def test_train_step_keeps_the_counts_fixed_and_learns_the_weight():
  rng = np.random.default_rng(2)
  data = _dataset([rng.permutation(U)[:5] for _ in range(20)])
  config, graphdef, params = _prior_model('cyan', data)
  tx = train_lib.create_optimizer(config.train)
  step = train_lib.create_train_step(graphdef, config.train)
  users = np.stack([rng.permutation(U)[:5] for _ in range(4)]).astype(np.int32)
  gaps = np.ones((4, 5), np.float32)
  mask = np.ones((4, 5), bool)
  before = jax.tree.map(np.asarray, params)
  new, _, _ = step(jax.tree.map(jnp.copy, params), tx.init(params),
                   train_lib._zero_stats(), (users, gaps, mask, None),
                   np.int32(0))
  np.testing.assert_array_equal(new['prior_users'], before['prior_users'])
  np.testing.assert_array_equal(new['prior_counts'], before['prior_counts'])
  assert np.all(np.asarray(new['prior_weights']) !=
                np.asarray(before['prior_weights']))


@pytest.mark.parametrize('variant', ['cyan_cov', 'rmtpp'])
def test_sampled_softmax_over_every_user_is_the_exact_softmax(variant):
  """All U users as negatives with pi = 1: the sampled NLL is the exact one."""
  rng = np.random.default_rng(3)
  data = _dataset([rng.permutation(U)[:5] for _ in range(20)])
  _, graphdef, params = _prior_model(variant, data)
  params = dict(params, prior_weights=jnp.asarray([0.7, 0.5, 0.3, 0.2]))
  users = np.stack([rng.permutation(U)[:6] for _ in range(3)]).astype(np.int32)
  gaps = rng.exponential(1.0, (3, 6)).astype(np.float32)
  mask = np.arange(6)[None] < np.array([6, 2, 4])[:, None]
  net = nnx.merge(graphdef, params)
  exact, _, target = model_lib.event_nll(
      net(users, gaps, mask, leave_one_out=True), users, gaps, mask)
  sampled, _, _ = net.sampled_user_nll(
      users, gaps, mask, None, jnp.arange(U, dtype=jnp.int32),
      jnp.zeros(U), leave_one_out=True)
  np.testing.assert_allclose(np.where(target, sampled, 0.0), exact,
                             rtol=1e-5, atol=1e-5)


def test_sampler_draws_distinct_negatives_by_popularity():
  from cyan_rcbm.cyan import softmax
  rng = np.random.default_rng(4)
  data = _dataset([rng.permutation(U)[:5] for _ in range(20)] + [[0, 1]] * 30)
  config = cyan_configs.get_config('tiny')
  config.train.update(softmax='sampled', num_negatives=3)
  sampler = softmax.sampler_for(config.train, data, seed=0)
  draws = np.stack([np.asarray(sampler.negatives(s)) for s in range(300)])
  assert all(len(set(row)) == 3 for row in draws)
  freq = np.bincount(draws.ravel(), minlength=U)
  assert freq[0] > freq[6] and freq[1] > freq[5]   # 0 and 1 are popular
  config.train.num_negatives = U
  with pytest.raises(Exception, match='num_negatives'):
    softmax.sampler_for(config.train, data, seed=0)
