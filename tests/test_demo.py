"""Tests for cyan_rcbm.demo: the whole story at tiny sizes (configs/demo.py:tiny)."""

import json
import os

import pytest

from cyan_rcbm import demo
from cyan_rcbm import errors
from cyan_rcbm.common import config_loading


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  """One tiny demo run shared by the tests: (config, workdir, summary)."""
  config = config_loading.load_config('configs/demo.py:tiny')
  workdir = str(tmp_path_factory.mktemp('demo'))
  summary = demo.train_and_evaluate(config, workdir)
  return config, workdir, summary


def _json(path):
  with open(path) as f:
    return json.load(f)


def test_config_variants():
  default = config_loading.load_config('configs/demo.py')
  tiny = config_loading.load_config('configs/demo.py:tiny')
  assert default.task == tiny.task == 'demo'
  assert tuple(default.cyan_variants) == ('cyan_cov', 'rmtpp')
  assert default.cyan.data.name == 'synthetic_cp_exp'
  assert default.rcbm.data.source == tiny.rcbm.data.source == 'higgs'
  assert default.rcbm.model.num_levels == 2
  assert tiny.cyan.data.num_cascades < default.cyan.data.num_cascades
  with pytest.raises(errors.ConfigError, match='valid: default, tiny'):
    config_loading.load_config('configs/demo.py:huge')


def test_results_match_the_sub_runs(tiny_run, capsys):
  config, workdir, summary = tiny_run
  assert _json(os.path.join(workdir, demo.RESULTS_JSON)) == json.loads(
      json.dumps(summary))
  runs = summary['cyan']['runs']
  assert [r['variant'] for r in runs] == list(config.cyan_variants)
  for run in runs:
    sub_dir = os.path.join(workdir, run['workdir'])
    test = _json(os.path.join(sub_dir, 'eval_test.json'))
    for key, _ in demo.CYAN_COLUMNS:
      assert run['test'][key] == pytest.approx(test[key])
    assert _json(os.path.join(sub_dir, 'config.json'))['model']['variant'] \
        == run['variant']
  assert runs[0]['network']['f1'] > 0           # cyan_cov: attention analyses
  assert runs[1]['network'] is None             # rmtpp has no attention
  evaluation = _json(os.path.join(workdir, demo.RCBM_DIR, 'eval.json'))
  rcbm = summary['rcbm']
  assert rcbm['perplexity_test'] == pytest.approx(
      evaluation['perplexity_test'])
  assert [lv['num_filters'] for lv in rcbm['levels']] == [3, 3]
  assert all(lv['seconds'] > 0 for lv in rcbm['levels'])
  # Every listed figure exists; the key figures are there.
  for path in summary['figures']:
    assert os.path.getsize(os.path.join(workdir, path)) > 0
  names = {os.path.basename(p) for p in summary['figures']}
  assert {'alignments.png', 'network_inference.png', 'filters_level1.png',
          'filters_level2.png', 'k_selection_level1.png'} <= names
  # results.md holds the printed table with the real numbers.
  with open(os.path.join(workdir, demo.RESULTS_MD)) as f:
    text = f.read()
  assert f'{runs[0]["test"]["mrr"]:.4f}' in text
  assert 'CYAN-RNN(cov)' in text and 'RMTPP' in text
  assert '| RCBM level |' in text and 'Test perplexity' in text


def test_rerun_skips_finished_parts(tiny_run, capsys):
  config, workdir, summary = tiny_run
  capsys.readouterr()
  again = demo.train_and_evaluate(config, workdir)
  out = capsys.readouterr().out
  assert out.count('skipped (') == 3
  assert '[cyan] step' not in out and '[rcbm L1]' not in out
  assert again['cyan'] == summary['cyan']
  assert again['rcbm'] == summary['rcbm']
  assert '| CYAN-RNN(cov) |' in out and '\r' not in out
  assert again['skipped'] == 3 and summary['skipped'] == 0
  assert again['parts_seconds'] == pytest.approx(summary['parts_seconds'])
  assert '3 finished parts skipped' in out


def test_rerun_with_other_sizes_is_refused(tiny_run):
  config, workdir, _ = tiny_run
  other = config_loading.load_config('configs/demo.py:tiny',
                                     cyan__train__num_epochs=5)
  with pytest.raises(errors.ConfigError, match='cyan.train.num_epochs'):
    demo.train_and_evaluate(other, workdir)


def test_results_markdown_formats_missing_values():
  summary = {
      'cyan': {'data': 'x', 'runs': [{
          'variant': 'rmtpp', 'seconds': 3.0, 'network': None,
          'test': {'acc@1': 0.5, 'acc@5': 1.0, 'mrr': 0.75, 'rmse': None,
                   'nll_per_event': 1.25, 'epochs': 2}}]},
      'rcbm': None, 'figures': ['a/b.png'], 'seconds': 4.0}
  text = demo.results_markdown(summary)
  row = [ln for ln in text.splitlines() if ln.startswith('| RMTPP')][0]
  cells = [c.strip() for c in row.strip('|').split('|')]
  assert cells == ['RMTPP', '0.5000', '1.0000', '0.7500', '-', '1.2500',
                   '-', '-', '2', '3s']
  assert '* `a/b.png`' in text and 'RCBM' not in text


def test_missing_shipped_data_fails_before_any_part(tmp_path, monkeypatch):
  monkeypatch.setenv('CYAN_RCBM_DATA', str(tmp_path / 'nowhere'))
  config = config_loading.load_config('configs/demo.py:tiny')
  workdir = tmp_path / 'demo'
  with pytest.raises(errors.DataError, match='CYAN_RCBM_DATA'):
    demo.train_and_evaluate(config, str(workdir))
  assert not workdir.exists()
