"""End-to-end test of cyan_rcbm.experiments.reproduce_cyan.py in its --tiny mode.

2 data sets (a generated synthetic set with a graph, the authors' set without
one) x all 8 models x 1 seed, tiny models and one epoch.
"""

import json
import math
import os

import pytest

from cyan_rcbm import errors
from cyan_rcbm.experiments import reproduce_cyan


_USER = ('acc@1', 'acc@5', 'mrr', 'hits@10', 'hits@50', 'hits@100', 'map@10',
         'map@50', 'map@100')


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('reproduce'))
  plan = reproduce_cyan.make_plan(out, 'tiny')
  rows, failures = reproduce_cyan.reproduce(plan)
  return plan, rows, failures


def _finite(value):
  return value is not None and math.isfinite(value)


def test_rows_keys_and_nulls(tiny_run):
  plan, rows, failures = tiny_run
  assert not failures
  assert plan.datasets == ('synthetic_cp_exp', 'cyanrnn_random_exp')
  with open(os.path.join(plan.results_dir, 'results.json')) as f:
    assert json.load(f) == json.loads(json.dumps(rows))
  assert {(r['dataset'], r['model']) for r in rows} == {
      (d, m) for d in plan.datasets for m in reproduce_cyan.MODELS}
  for row in rows:
    assert set(row) == set(reproduce_cyan.ROW_KEYS)
    model, graph = row['model'], row['dataset'] == 'synthetic_cp_exp'
    applicable = graph or model not in ('ct_bern', 'ct_jac')
    assert row['seed'] == 0
    assert row['num_events'] > 0 if applicable else row['num_events'] == 0
    ranks_users = model in ('popularity', 'mc1', 'rmtpp', 'cyan', 'cyan_cov') or (
        model in ('ct_bern', 'ct_jac') and graph)
    predicts_time = model in ('poisson', 'hawkes', 'rmtpp', 'cyan',
                              'cyan_cov')
    for key in _USER:
      assert _finite(row[key]) if ranks_users else row[key] is None, (
          model, key, row[key])
    assert _finite(row['rmse']) if predicts_time else row['rmse'] is None
    neural = model in reproduce_cyan.NEURAL
    assert _finite(row['nll_per_event']) if neural else (
        row['nll_per_event'] is None)
    if model in ('ct_bern', 'ct_jac') and not graph:
      assert 'needs the social graph' in row['note']
      assert "'cyanrnn_random_exp'" in row['note']
    if ranks_users:
      assert 0 <= row['acc@1'] <= row['acc@5'] <= row['hits@10'] <= 1
    assert row['time_unit'] == 'units'


def test_report_and_figures(tiny_run):
  plan, _, _ = tiny_run
  with open(os.path.join(plan.results_dir, 'results.md')) as f:
    report = f.read()
  for text in ('| CYAN-RNN(cov) |', 'CYAN-RNN(cov) >= CYAN-RNN > RMTPP',
               'Neural RMSE far below Poisson and Hawkes', 'PR-AUC',
               'previous event (no model)', '#### cyanrnn_random_exp'):
    assert text in report
  for name in ('fig4_synthetic_users.png', 'fig4_synthetic_rmse.png',
               'fig5_synthetic_cp_exp.png', 'fig5_cyanrnn_random_exp.png',
               'fig6_synthetic_cp_exp_cyan.png',
               'fig6_synthetic_cp_exp_cyan_cov.png'):
    path = os.path.join(plan.results_dir, name)
    assert os.path.getsize(path) < 200_000, name
    assert f'({name})' in report


def test_rerun_skips_finished_runs(tiny_run):
  plan, rows, _ = tiny_run
  evals = [os.path.join(root, name)
           for root, _, names in os.walk(os.path.join(plan.out_dir, 'runs'))
           for name in names if name == 'eval_test.json']
  assert len(evals) == len(rows)
  before = {p: os.path.getmtime(p) for p in evals}
  again, failures = reproduce_cyan.reproduce(plan)
  assert not failures and again == rows
  assert {p: os.path.getmtime(p) for p in evals} == before


def test_plan_errors():
  with pytest.raises(errors.ConfigError, match='unknown data set'):
    reproduce_cyan.make_plan('/tmp/x', datasets=['weibo'])
  with pytest.raises(errors.ConfigError, match='unknown model'):
    reproduce_cyan.make_plan('/tmp/x', models=['lstm'])
  with pytest.raises(errors.ConfigError, match='mode'):
    reproduce_cyan.make_plan('/tmp/x', 'huge')
  plan = reproduce_cyan.make_plan('/tmp/x')
  assert plan.seeds == (0, 1, 2) and plan.datasets == reproduce_cyan.DATASETS
