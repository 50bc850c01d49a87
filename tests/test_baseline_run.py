"""Every baseline runs on a user's own file through the CLI, scored on test."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cyan_rcbm.cyan import baselines

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def user_files(tmp_path_factory):
  """40 cascades over 12 users (times in seconds) and a follower graph."""
  folder = tmp_path_factory.mktemp('own')
  rng = np.random.default_rng(0)
  with open(folder / 'mine.jsonl', 'w') as f:
    for i in range(40):
      users = rng.permutation(12)[:rng.integers(3, 8)]
      times = np.cumsum(rng.exponential(600.0, users.size)) + 3600.0 * i
      f.write(json.dumps(dict(id=f'c{i}', users=[f'u{u}' for u in users],
                              times=times.round(1).tolist())) + '\n')
  with open(folder / 'graph.txt', 'w') as f:
    for a in range(12):
      for b in rng.permutation(12)[:4]:
        if a != b:
          f.write(f'u{a} u{b}\n')
  return folder


@pytest.mark.parametrize('name', baselines.NAMES)
def test_baseline_runs_on_a_user_file_from_the_cli(user_files, tmp_path, name):
  workdir = tmp_path / name
  result = subprocess.run(
      [sys.executable, '-m', 'cyan_rcbm.main', '--config=configs/cyan.py:real',
       f'--config.data.path={user_files / "mine.jsonl"}',
       f'--config.data.graph={user_files / "graph.txt"}',
       f'--config.model.variant={name}', f'--workdir={workdir}'],
      cwd=_ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  with open(workdir / 'eval_test.json') as f:
    scores = json.load(f)
  assert scores['num_events'] > 0
  if name in baselines.USER_MODELS:
    assert 0.0 < scores['mrr'] <= 1.0
    assert scores['hits@10'] >= scores['acc@1']
  else:
    assert scores['rmse'] > 0 and scores['mrr'] is None


def test_reproduce_script_runs_baselines_on_a_user_file(user_files, tmp_path):
  spec = f'mine={user_files / "mine.jsonl"}:jsonl:{user_files / "graph.txt"}'
  result = subprocess.run(
      [sys.executable, 'scripts/reproduce_cyan.py', f'--out_dir={tmp_path}',
       f'--files={spec}', '--models=popularity,mc1,ct_bern,poisson'],
      cwd=_ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  with open(tmp_path / 'results.json') as f:
    rows = json.load(f)
  rows = rows['rows'] if isinstance(rows, dict) else rows
  got = {r['model']: r for r in rows if r['dataset'] == 'mine'}
  assert set(got) == {'popularity', 'mc1', 'ct_bern', 'poisson'}
  assert 0 < got['mc1']['mrr'] <= 1 and got['poisson']['rmse'] > 0
