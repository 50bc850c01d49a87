"""End-to-end test of cyan_rcbm.experiments.reproduce_rcbm in its --tiny mode
(planted data only, tiny models), including the resume path."""

import dataclasses
import json
import math
import os

import pytest

from cyan_rcbm.experiments import reproduce_rcbm
from cyan_rcbm.experiments.rcbm import cache
from cyan_rcbm.experiments.rcbm import cells
from cyan_rcbm.experiments.rcbm import plan as plan_lib
from cyan_rcbm.experiments.rcbm import runtime
from cyan_rcbm.rcbm import cbm


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('reproduce_rcbm'))
  plan = reproduce_rcbm.make_plan(out, 'tiny')
  return plan, reproduce_rcbm.reproduce(plan)


def test_runtime_rows(tiny_run):
  plan, results = tiny_run
  with open(os.path.join(plan.results_dir, 'results.json')) as f:
    blob = json.load(f)
  rows = blob['runtime']
  assert {r['model'] for r in rows} == set(reproduce_rcbm.MODELS)
  for r in rows:
    assert set(r) == set(reproduce_rcbm.ROW_KEYS)
    assert r['dataset'] == 'planted' and r['n_train'] == 24 and r['rep'] == 0
    assert r['seconds'] > 0 and math.isfinite(r['log_perplexity'])
    assert r['num_params'] > 0
  params = {r['model']: r['num_params'] for r in rows}
  # SC and SSM are matched to RCBM: at least as many parameters.
  assert params['rcbm_fs'] == params['rcbm_ls'] == params[
      'rcbm_ls_paper'] == 2 * (3 * 3 * 3 + 2)
  # One family for every model: the common scores are finite everywhere.
  for r in rows:
    assert math.isfinite(r['nll_per_entry']), r['model']
    assert math.isfinite(r['nll_per_sample']), r['model']
    assert r['warmup_seconds'] > 0
  assert params['sc'] >= params['rcbm_fs'] and params['ssm'] >= params[
      'rcbm_fs']
  assert blob['mode'] == 'tiny' and results['wall_seconds'] > 0


def test_other_experiments_and_files(tiny_run):
  plan, results = tiny_run
  k = results['kselect']['planted']
  for level in ('level1', 'level2'):
    f_m = k[level]['cumulative_activation']
    assert f_m[0] == 0 and f_m[-1] == pytest.approx(1.0)
    assert k[level]['bic']['num_filters'] == [2, 3]
  auc = results['anomalies']['planted']['auc']
  assert set(auc) == {'rcbm', 'cbm_level1', 'rcbm_error_only', 'sc', 'ssm',
                      'volume', 'peak'}
  assert all(0 <= v['all'] <= 1 for v in auc.values())
  assert len(results['anomalies']['real']['lowest_probability']) == 10
  rows = results['forecast']['rows']
  assert {(r['model'], r['features']) for r in rows if r['model'] != 'mean'
          } == {(m, f) for m in ('var', 'svr') for f in
                ('raw', 'h1', 'h2', 'h1+h2', 'h1^2')}
  for name in ('results.md', 'runtime_planted.png', 'fsls.png',
               'filters_level1.png', 'filters_level2.png',
               'kselect_planted_level1.png', 'anomalies_planted.png'):
    assert os.path.getsize(os.path.join(plan.results_dir, name)) > 0, name
  with open(os.path.join(plan.results_dir, 'results.md')) as f:
    md = f.read()
  assert "## The paper's claims and ours" in md and 'SSM' in md
  assert 'RCBM-LS (paper)' in md and '-log p per entry' in md
  fsls = results['fsls']['planted']
  assert set(fsls['traces']) == {'fixed', 'line_search', 'line_search_paper'}


def test_rerun_reuses_every_cached_cell(tiny_run, monkeypatch):
  plan, results = tiny_run

  def fail(*args, **kwargs):
    raise AssertionError('a finished cell was recomputed')

  monkeypatch.setattr(cells, 'CELL_FITS',
                      {m: fail for m in reproduce_rcbm.MODELS})
  monkeypatch.setattr(cbm, 'fit_cbm', fail)
  again = reproduce_rcbm.reproduce(
      reproduce_rcbm.make_plan(plan.out_dir, 'tiny',
                               experiments=('runtime', 'fsls', 'kselect',
                                            'forecast')))
  assert again['runtime']['rows'] == results['runtime']['rows']
  assert again['forecast']['rows'] == results['forecast']['rows']


def test_plan_errors():
  with pytest.raises(ValueError, match='mode'):
    reproduce_rcbm.make_plan('/tmp/x', 'huge')
  with pytest.raises(ValueError, match='unknown experiments'):
    reproduce_rcbm.make_plan('/tmp/x', 'tiny', experiments=('nope',))


def test_runtime_max_n_skips_larger_cells(tmp_path):
  capped = reproduce_rcbm.make_plan(str(tmp_path), 'tiny',
                                    experiments=('runtime',), runtime_max_n=10)
  out = runtime.run_runtime(capped)
  assert out['rows'] == []
  assert {(s['n_train'], s['model']) for s in out['skipped']} == {
      (24, m) for m in reproduce_rcbm.MODELS}
  assert 'runtime_max_n=10' in out['skipped'][0]['reason']
  listed = runtime.run_runtime(reproduce_rcbm.make_plan(
      str(tmp_path), 'tiny', experiments=('runtime',), report_only=True))
  assert listed['rows'] == [] and len(listed['skipped']) == len(
      reproduce_rcbm.MODELS)
  assert 'time budget' in listed['skipped'][0]['reason']


def test_carried_results_need_the_same_settings(tiny_run, tmp_path):
  plan, results = tiny_run
  path = os.path.join(plan.results_dir, 'results.json')
  carried = reproduce_rcbm.carried_results(reproduce_rcbm.make_plan(
      str(tmp_path), 'tiny', experiments=('runtime',), carry_from=path))
  assert carried['kselect'] == results['kselect']
  # (an earlier test may have rewritten results.json with fewer parts)
  assert 'kselect' in carried['carried']['experiments']
  assert set(carried['carried']['experiments']) <= set(reproduce_rcbm.CARRIED)
  assert 'runtime' not in carried and 'fsls' not in carried
  with open(path) as f:
    blob = json.load(f)
  blob['settings']['lam'] = 0.5           # a setting kselect depends on
  blob['settings']['n_grid'] = {}         # one only the runtime study reads
  other = str(tmp_path / 'other.json')
  with open(other, 'w') as f:
    json.dump(blob, f)
  with pytest.raises(ValueError, match=r"other.json.*\['lam'\]"):
    reproduce_rcbm.carried_results(reproduce_rcbm.make_plan(
        str(tmp_path), 'tiny', experiments=('runtime',), carry_from=other))
  with pytest.raises(ValueError, match='unknown runtime models'):
    reproduce_rcbm.make_plan(str(tmp_path), 'tiny', runtime_models=['x'])


def test_more_repetitions_reuse_the_finished_rows(tmp_path, monkeypatch):
  plan = reproduce_rcbm.make_plan(str(tmp_path), 'tiny')
  cache.save_cache(plan, 'runtime_rows', [{'rep': 0}])
  monkeypatch.setattr(plan_lib, 'TINY',
                      dataclasses.replace(plan_lib.TINY, reps=5))
  assert plan.settings.reps == 5
  assert cache.load_cache(plan, 'runtime_rows') is None
  assert cache.load_cache(plan, 'runtime_rows',
                          ignore=runtime.REPETITIONS) == [{'rep': 0}]
  monkeypatch.setattr(plan_lib, 'TINY',
                      dataclasses.replace(plan_lib.TINY, lam=0.5))
  assert cache.load_cache(plan, 'runtime_rows',
                          ignore=runtime.REPETITIONS) is None
