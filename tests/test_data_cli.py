"""Tests for `python -m cyan_rcbm.data` (two subprocesses)."""

import json
import os
import subprocess
import sys

from cyan_rcbm.data.readers import read_cascades


def _run(*args):
  return subprocess.run([sys.executable, '-m', 'cyan_rcbm.data', *args],
                        capture_output=True, text=True, timeout=60,
                        check=False)


def test_cli_prints_stats_and_converts(tmp_path):
  src = tmp_path / 'c.txt'
  src.write_text('r a 5,b 7,c 9,\nd 1,d 2,e 3,\nf 4,\n')
  graph = tmp_path / 'g.txt'
  graph.write_text('a,b\nb,zed\n')
  out = tmp_path / 'c.jsonl'
  proc = _run(f'--path={src}', '--format=forest', f'--graph={graph}',
              f'--convert_to={out}')
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 1
  stats = json.loads(lines[0])
  assert (stats['cascades'], stats['events'], stats['edges']) == (2, 6, 2)
  assert stats['max_length'] == 4 and stats['mean_length'] == 3.0
  assert stats['users'] == 7  # r a b c d e + graph-only zed ('f' dropped)
  report = stats['report']
  assert report['duplicate_events'] == 1 and report['short_cascades'] == 1
  assert report['graph_users_added'] == 1
  assert stats['converted_to'] == str(out)
  ds, _ = read_cascades(str(out), 'jsonl')
  assert [ds.vocab[u] for u in ds.cascades[0].users] == ['r', 'a', 'b', 'c']


def test_cli_bad_file_exits_2_with_one_line(tmp_path):
  src = tmp_path / 'bad.txt'
  src.write_text('1,a,0,b,1\n2,a,0,b,zzz\n')
  proc = _run(f'--path={src}', '--format=cyanrnn')
  assert proc.returncode == 2
  assert proc.stdout == ''
  err = proc.stderr.strip().splitlines()
  assert len(err) == 1 and 'Traceback' not in proc.stderr
  assert err[0].startswith(f"error: {src}:2: cascade '2': time 'zzz' is not "
                           'a number')
  assert os.path.exists(src)
