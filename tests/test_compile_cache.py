"""Tests for cyan_rcbm.common.compile_cache: a second process reuses the cache."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from cyan_rcbm import errors
from cyan_rcbm.common import compile_cache

# One process: enable the cache (every program cached), compile, report.
_SCRIPT = """
import sys
import jax, jax.numpy as jnp
from cyan_rcbm.common import compile_cache
compile_cache.enable(sys.argv[1], min_compile_seconds=0.0)
before = compile_cache.stats()
f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum() * 3.0 + jnp.float32(7.25))
f(jnp.ones((16, 8))).block_until_ready()
after = compile_cache.stats()
print('HITS', after.hits - before.hits, 'PROGRAMS', after.programs - before.programs)
"""


def _run(path) -> str:
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  out = subprocess.run([sys.executable, '-c', _SCRIPT, str(path)], env=env,
                       capture_output=True, text=True, timeout=120, check=True)
  return out.stdout.strip().splitlines()[-1]


def test_second_process_loads_from_the_cache(tmp_path):
  first = _run(tmp_path)
  assert os.listdir(tmp_path), 'nothing was written to the cache folder'
  second = _run(tmp_path)
  hits_first, hits_second = int(first.split()[1]), int(second.split()[1])
  assert hits_first == 0 and hits_second >= 1, (first, second)


def test_settings_map_to_folders(tmp_path, monkeypatch):
  monkeypatch.setenv(compile_cache.ENV, str(tmp_path / 'mine'))
  assert compile_cache.user_cache_dir() == str(tmp_path / 'mine' / 'jax')
  monkeypatch.delenv(compile_cache.ENV)
  monkeypatch.setenv('HOME', str(tmp_path))
  assert compile_cache.user_cache_dir() == str(
      tmp_path / '.cache' / 'cyan_rcbm' / 'jax')
  assert compile_cache.cache_dir('off') is None
  assert compile_cache.cache_dir('') is None
  assert compile_cache.cache_dir('workdir', 'runs/a') == os.path.join(
      'runs/a', compile_cache.WORKDIR_CACHE)
  assert compile_cache.cache_dir(str(tmp_path / 'x')) == str(tmp_path / 'x')
  with pytest.raises(errors.ConfigError, match='compilation_cache'):
    compile_cache.cache_dir('workdir', '')
  with pytest.raises(errors.ConfigError, match='compilation_cache'):
    compile_cache.cache_dir(3)


def test_report_line_counts_programs():
  line = compile_cache.CompileStats(2.5, 3, 1, 0.75).line('/c')
  assert line == ('[jax] compiled 3 programs in 2.5 s (1 loaded from the '
                  'cache /c, 0.8 s saved)')


def test_active_reports_the_compiles_of_its_body(capsys):
  enabled = jax.config.jax_enable_compilation_cache
  try:
    config = ml_collections.ConfigDict({'compilation_cache': 'off'})
    with compile_cache.active(config) as path:
      jax.jit(lambda x: jnp.sin(x) * 1.625)(jnp.ones(5)).block_until_ready()
  finally:
    jax.config.update('jax_enable_compilation_cache', enabled)
  assert path is None
  line = capsys.readouterr().out.strip().splitlines()[-1]
  assert line.startswith('[jax] compiled ') and 'persistent cache off' in line
  assert int(line.split()[2]) >= 1
