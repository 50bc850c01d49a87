"""Tests for scripts/plot_run.py on tiny CYAN and RCBM runs."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from cyan_rcbm import errors
from cyan_rcbm.common import config_loading
from cyan_rcbm.cyan import train as cyan_train
from cyan_rcbm.rcbm import train as rcbm_train

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SCRIPT = os.path.join(_ROOT, 'scripts', 'plot_run.py')


def _load_script():
  spec = importlib.util.spec_from_file_location('plot_run', _SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


plot_run = _load_script()


@pytest.fixture(scope='module')
def cyan_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('cyan'))
  config = config_loading.load_config('configs/cyan.py:tiny',
                                      train__num_epochs=1)
  cyan_train.train_and_evaluate(config, workdir)
  return workdir


@pytest.fixture(scope='module')
def rcbm_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('rcbm'))
  config = config_loading.load_config(
      'configs/rcbm.py:tiny', model__max_iters=4, model__num_restarts=1,
      eval__bic_num_filters=())
  rcbm_train.train_and_evaluate(config, workdir)
  return workdir


def _names(paths):
  return sorted(os.path.basename(p) for p in paths)


def _check_written(workdir, paths):
  for path in paths:
    assert os.path.dirname(path) == os.path.join(workdir, 'plots')
    assert os.path.getsize(path) > 1000  # a real PNG, not an empty file


def test_cyan_run_figures(cyan_run):
  paths = plot_run.plot_run(cyan_run)
  _check_written(cyan_run, paths)
  assert _names(paths) == ['alignments.png', 'curves.png',
                           'network_inference.png']
  # The recomputed analysis equals the one written by training.
  with open(os.path.join(cyan_run, 'network_inference.json')) as f:
    trained = json.load(f)
  with open(os.path.join(cyan_run, 'plots', 'network_inference.json')) as f:
    redrawn = json.load(f)
  assert redrawn['f1'] == pytest.approx(trained['f1'])
  assert redrawn['pr_auc'] == pytest.approx(trained['pr_auc'])


def test_cyan_run_figures_from_files_only(cyan_run):
  for name in os.listdir(os.path.join(cyan_run, 'plots')):
    os.remove(os.path.join(cyan_run, 'plots', name))
  paths = plot_run.plot_run(cyan_run, recompute=False)
  _check_written(cyan_run, paths)
  assert _names(paths) == ['alignments.png', 'curves.png']


def test_rcbm_run_figures(rcbm_run):
  paths = plot_run.plot_run(rcbm_run)
  _check_written(rcbm_run, paths)
  assert _names(paths) == [
      'curves.png', 'filters_level1.png', 'filters_level2.png',
      'fit_histograms.png', 'k_selection_level1.png',
      'k_selection_level2.png']
  quick = plot_run.plot_run(rcbm_run, recompute=False)
  assert 'fit_histograms.png' not in _names(quick)
  assert len(quick) == len(paths) - 1


def test_curves_skip_missing_metrics(tmp_path):
  rows = [{'step': 1, 'level': 1, 'objective': 3.0, 'sigma': 1.0},
          {'step': 2, 'level': 1, 'objective': 2.0, 'sigma': 0.9},
          {'step': 3, 'level': 2, 'objective': 1.5}]
  path = str(tmp_path / 'c.png')
  assert plot_run.plot_curves(rows, 'rcbm', path) == path
  assert plot_run.plot_curves([], 'rcbm', path + '2') is None
  assert not os.path.exists(path + '2')


def test_bad_workdirs_are_clear_errors(tmp_path):
  with pytest.raises(errors.InputError, match='no such directory'):
    plot_run.plot_run(str(tmp_path / 'missing'))
  with pytest.raises(errors.InputError, match='not a run directory'):
    plot_run.plot_run(str(tmp_path))
  (tmp_path / 'config.json').write_text('{"task": "other"}')
  with pytest.raises(errors.InputError, match="unknown task 'other'"):
    plot_run.plot_run(str(tmp_path))
  (tmp_path / 'config.json').write_text('{"task": ')
  with pytest.raises(errors.InputError, match='not valid JSON'):
    plot_run.plot_run(str(tmp_path))


def test_cli_error_is_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, _SCRIPT, f'--workdir={tmp_path / "missing"}'],
      capture_output=True, text=True, timeout=120, cwd=_ROOT, check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().startswith('error: --workdir=')
  assert 'Traceback' not in proc.stderr
