"""The absl entry point reports bad configs in one line, without a traceback."""

import os
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
  return subprocess.run(
      [sys.executable, '-m', 'cyan_rcbm.main', *args],
      cwd=_ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('args, message', [
    (['--config=configs/demo.py:nope'], "unknown variant 'nope'"),
    (['--config=configs/demo.py', '--config.nope=1'], "no field 'nope'"),
    (['--config=configs/demo.py', '--config.seed=abc'], 'invalid literal'),
    (['--config=configs/missing.py'], 'does not exist'),
])
def test_bad_config_is_one_clear_line(tmp_path, args, message):
  result = _run(*args, f'--workdir={tmp_path}')
  assert result.returncode == 2, result.stderr
  assert message in result.stderr
  assert 'Traceback' not in result.stderr
