"""The absl scripts under scripts/ parse their flags and refuse bad ones.

Each runs in its own process (flag names such as --out_dir repeat across
scripts); the work itself is tested through the library modules.
"""

import os
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(script, *args):
  return subprocess.run(
      [sys.executable, os.path.join(_ROOT, 'scripts', script), *args],
      capture_output=True, text=True, timeout=300, cwd=_ROOT, check=False)


@pytest.mark.parametrize('script', ['reproduce_cyan.py', 'reproduce_rcbm.py'])
def test_reproduce_scripts_need_out_dir(script):
  proc = _run(script)
  assert proc.returncode != 0
  assert '--out_dir is required' in proc.stderr


@pytest.mark.parametrize('script', ['reproduce_cyan.py', 'reproduce_rcbm.py'])
def test_reproduce_scripts_reject_quick_and_tiny(script, tmp_path):
  proc = _run(script, f'--out_dir={tmp_path}', '--quick', '--tiny')
  assert proc.returncode != 0
  assert 'exclusive' in proc.stderr
