"""Tests for cyan_rcbm.data.readers: shipped files and every malformed case."""

import os
import time

import numpy as np
import pytest

from cyan_rcbm.data import readers
from cyan_rcbm.data import registry
from cyan_rcbm.data.readers import ReadOptions, read_cascades, read_graph
from cyan_rcbm.errors import ConfigError, DataError

LENIENT = ReadOptions(lenient=True)


def _data(*parts):
  # The shipped data are required: a missing folder fails with
  # data_root()'s message (set $CYAN_RCBM_DATA), it is not skipped.
  return os.path.join(registry.data_root(), *parts)


def _write(tmp_path, text, name='c.txt'):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def _tokens(ds, c):
  return [ds.vocab[u] for u in c.users]


# --- shipped files ----------------------------------------------------------

@pytest.fixture(scope='module')
def twitter():
  start = time.perf_counter()
  ds, report = read_cascades(_data('twitter', 'cascades.txt'), 'forest',
                             options=LENIENT)
  return ds, report, time.perf_counter() - start


def test_twitter_strict_names_the_truncated_chunk():
  path = _data('twitter', 'cascades.txt')
  with pytest.raises(DataError) as e:
    read_cascades(path, 'forest')
  msg = str(e.value)
  assert msg.startswith(f'{path}:3454: cascade \'3454\'')
  assert "'17892'" in msg and 'truncated' in msg
  assert e.value.line == 3454


def test_twitter_lenient_counts(twitter):
  ds, report, seconds = twitter
  assert len(ds) == 3454
  assert ds.num_events == 135472
  assert max(len(c) for c in ds.cascades) == 2368
  # The data set's README counts 12,628 users: with the truncated chunk's
  # user, who occurs nowhere else and is dropped with its chunk.
  assert ds.num_users == 12627 and '17892' not in ds.vocab
  assert report.malformed == [
      (3454, "cascade '3454': chunk 4 '17892': truncated (a user without a "
       'time)')]
  assert report.malformed_events == 1
  assert report.duplicate_events == 0 and report.short_cascades == 0
  # Not turned into a repeat of the previous user.
  last = ds.cascades[-1]
  assert len(last) == 3 and len(set(last.users.tolist())) == 3
  assert ds.time_unit == 'seconds'
  assert all(np.array_equal(c.timestamps, c.times) for c in ds.cascades)
  assert ds.cascades[0].times[0] == 1284967588.0
  assert seconds < 2.0, f'reading twitter took {seconds:.2f} s'


def test_twitter_raw_counts_equal_default_counts():
  ds, report = read_cascades(
      _data('twitter', 'cascades.txt'), 'forest',
      options=ReadOptions(lenient=True, duplicate_users='keep', min_length=1))
  assert (len(ds), ds.num_events, ds.num_users) == (3454, 135472, 12627)
  assert report.events_read == 135472


@pytest.mark.parametrize('name,cascades,events,edges,graph_only', [
    ('android', 679, 29022, 48573, 7026),
    ('christianity', 589, 15327, 35624, 1246)])
def test_stack_exchange_sets(name, cascades, events, edges, graph_only):
  ds, report = read_cascades(_data(name, 'cascades.txt'), 'forest',
                             graph_path=_data(name, 'edges.txt'))
  assert (len(ds), ds.num_events, len(ds.edges)) == (cascades, events, edges)
  assert report.graph_users_added == graph_only
  assert ds.num_users == report.new_users + graph_only
  assert ds.cascades[0].timestamps is None  # relative seconds
  # First chunk `root user time`: two events at the same time.
  c = ds.cascades[0]
  assert c.times[0] == c.times[1] and c.users[0] != c.users[1]
  assert ds.edges.dtype == np.int32 and ds.edges.max() < ds.num_users


def test_android_unknown_graph_users_drop_and_error():
  cascades, edges = _data('android', 'cascades.txt'), _data('android',
                                                             'edges.txt')
  ds, report = read_cascades(
      cascades, 'forest', graph_path=edges,
      options=ReadOptions(unknown_graph_users='drop'))
  assert report.unknown_graph_users_dropped == 7026
  assert report.unknown_edges_dropped == 19421
  assert len(ds.edges) == 48573 - 19421
  assert ds.num_users == report.new_users
  with pytest.raises(DataError) as e:
    read_cascades(cascades, 'forest', graph_path=edges,
                  options=ReadOptions(unknown_graph_users='error'))
  assert str(e.value).startswith(f'{edges}:') and 'occurs in no cascade' in (
      str(e.value))


def test_topolstm_shared_vocab_and_graph():
  vocab = {}
  train, _ = read_cascades(_data('topolstm-twitter', 'train.txt'),
                           'topolstm', vocab=vocab)
  test, _ = read_cascades(_data('topolstm-twitter', 'test.txt'), 'topolstm',
                          vocab=vocab)
  assert (len(train), len(test)) == (456, 113)
  # Each line: seed + pairs; the seed gets the first listed time.
  assert train.num_events == 7236 + 456 and test.num_events == 1892 + 113
  c = train.cascades[0]
  assert train.vocab[c.users[0]] == '476' and c.times[0] == c.times[1]
  report = readers.ReadReport()
  edges = read_graph(_data('topolstm-twitter', 'graph.txt'), 'topolstm',
                     vocab, options=ReadOptions(unknown_graph_users='error'),
                     report=report)
  assert len(edges) == 12045 and report.graph_users_added == 0
  assert len(test.vocab) == len(vocab)  # test saw train's users


@pytest.mark.parametrize('kind', ['cp', 'random'])
def test_cyanrnn_sets(kind):
  counts = []
  for part in ('train', 'val', 'test'):
    ds, report = read_cascades(
        _data('cyanrnn-synthetic', f'net32-{kind}-exp-cascades.{part}'),
        'cyanrnn')
    lengths = [len(c) for c in ds.cascades]
    assert min(lengths) >= 2 and max(lengths) <= 32
    assert report.duplicate_events == 0 and report.short_cascades == 0
    assert all(c.times[0] == 0.0 for c in ds.cascades)
    assert ds.num_users <= 32 and ds.time_unit == 'units'
    counts.append((len(ds), ds.num_events))
  n = [c for c, _ in counts]
  assert 17900 < n[0] < 18100 and all(950 < x < 1050 for x in n[1:])
  mean = sum(e for _, e in counts) / sum(n)
  assert abs(mean - 17.8) < 0.1


# --- options ----------------------------------------------------------------

def test_graph_directions(tmp_path):
  cas = _write(tmp_path, 'a 0,b 1,c 2,\n')
  graph = _write(tmp_path, 'a,b\nb c\na,b\nc,c\n', 'g.txt')
  for direction, want in (('forward', [[0, 1], [1, 2], [2, 2]]),
                          ('reverse', [[1, 0], [2, 1], [2, 2]]),
                          ('symmetric', [[0, 1], [1, 2], [2, 2], [1, 0],
                                         [2, 1]])):
    ds, report = read_cascades(
        cas, 'forest', graph_path=graph,
        options=ReadOptions(graph_direction=direction))
    assert ds.edges.tolist() == want, direction
    assert report.duplicate_edges == 1 and report.self_loops == 1
    assert report.edges_read == 4


def test_timestamps_option(tmp_path):
  unix = _write(tmp_path, 'a 1300000000,b 1300000005,\n')
  rel = _write(tmp_path, 'a 10,b 15,\n', 'r.txt')
  assert read_cascades(unix, 'forest')[0].cascades[0].timestamps is not None
  assert read_cascades(rel, 'forest')[0].cascades[0].timestamps is None
  yes = read_cascades(rel, 'forest', options=ReadOptions(timestamps='yes'))[0]
  assert yes.cascades[0].timestamps.tolist() == [10.0, 15.0]
  no = read_cascades(unix, 'forest', options=ReadOptions(timestamps='no'))[0]
  assert no.cascades[0].timestamps is None


def test_duplicate_users_modes(tmp_path):
  path = _write(tmp_path, '{"id": "c", "users": ["a", "b", "a", "c"], '
                '"times": [0, 1, 2, 3], "parents": [-1, 0, 1, 2]}\n')
  ds, report = read_cascades(path, 'jsonl')
  c = ds.cascades[0]
  assert _tokens(ds, c) == ['a', 'b', 'c'] and c.times.tolist() == [0, 1, 3]
  # c's parent (the removed repeat of a) becomes a's first activation.
  assert c.parents.tolist() == [-1, 0, 0]
  assert (report.duplicate_events, report.duplicate_cascades) == (1, 1)
  keep, report = read_cascades(path, 'jsonl',
                               options=ReadOptions(duplicate_users='keep'))
  assert len(keep.cascades[0]) == 4 and report.duplicate_events == 0
  with pytest.raises(DataError) as e:
    read_cascades(path, 'jsonl', options=ReadOptions(duplicate_users='error'))
  assert str(e.value).startswith(f"{path}:1: cascade 'c': user 'a' activates "
                                 'more than once (event 3)')


def test_min_length_and_options_checks(tmp_path):
  path = _write(tmp_path, '1,a,0\n2,a,0,b,1\n3,a,0,b,1,c,2\n')
  ds, report = read_cascades(path, 'cyanrnn')
  assert [c.id for c in ds.cascades] == ['2', '3']
  assert (report.short_cascades, report.short_events) == (1, 1)
  ds, report = read_cascades(path, 'cyanrnn',
                             options=ReadOptions(min_length=3))
  assert [c.id for c in ds.cascades] == ['3'] and report.short_cascades == 2
  assert 'short cascades dropped' in report.summary()
  for bad in (dict(min_length=0), dict(duplicate_users='last'),
              dict(graph_direction='up'), dict(timestamps='maybe'),
              dict(unknown_graph_users='ignore')):
    with pytest.raises(ConfigError):
      ReadOptions(**bad)
  with pytest.raises(ConfigError, match='unknown cascade format'):
    read_cascades(path, 'csv')


def test_vocab_is_shared_and_extended_in_place(tmp_path):
  vocab = {'b': 0}
  ds, report = read_cascades(_write(tmp_path, '{"id": "x", "users": [7, "b"]'
                                    ', "times": [0, 1]}\n'), 'jsonl',
                             vocab=vocab)
  assert vocab == {'b': 0, '7': 1} and ds.vocab == ('b', '7')
  assert ds.cascades[0].users.tolist() == [1, 0] and report.new_users == 1
  with pytest.raises(ConfigError, match='dense'):
    read_cascades(_write(tmp_path, '1,a,0,b,1\n', 'd.txt'), 'cyanrnn',
                  vocab={'a': 3})


def test_blank_lines_and_crlf(tmp_path):
  ok = _write(tmp_path, '1,a,0,b,1\r\n2,a,0,c,2\r\n\n\n')
  ds, report = read_cascades(ok, 'cyanrnn')
  assert len(ds) == 2 and report.trailing_blank_lines == 2
  mid = _write(tmp_path, '1,a,0,b,1\n\n2,a,0,c,2\n', 'm.txt')
  with pytest.raises(DataError, match=r'm\.txt:2: empty line'):
    read_cascades(mid, 'cyanrnn')
  ds, report = read_cascades(mid, 'cyanrnn', options=LENIENT)
  assert len(ds) == 2 and report.malformed[0][0] == 2


def test_lenient_drops_are_reported_with_lines(tmp_path):
  path = _write(tmp_path, 'a 0,b x,c 2,\nd 0,e,\nf 3,g 1,\nh 0,i 1,\n')
  ds, report = read_cascades(path, 'forest', options=LENIENT)
  assert [c.id for c in ds.cascades] == ['1', '4']
  assert _tokens(ds, ds.cascades[0]) == ['a', 'c']
  lines = [line for line, _ in report.malformed]
  assert lines == [1, 2, 3]
  assert report.short_cascades == 1  # line 2 kept one event
  assert report.malformed_events == 1 + 1 + 2
  assert 'line 1, 2, 3' in report.summary()


def test_missing_and_binary_files(tmp_path):
  with pytest.raises(DataError, match='no such file'):
    read_cascades(str(tmp_path / 'nope.txt'), 'forest')
  path = tmp_path / 'bin.txt'
  path.write_bytes(b'a 0,\xff\xfe 1,\n')
  with pytest.raises(DataError, match='not UTF-8'):
    read_cascades(str(path), 'forest')


# --- malformed input: (format, text, line, problem) --------------------------

_MALFORMED = [
    # forest
    ('forest', 'a 0,b 1,\nc 0,d,\n', 2, "chunk 2 'd': truncated"),
    ('forest', 'a 0,b one,\n', 1, "time 'one' is not a number"),
    ('forest', 'a 0,b nan,\n', 1, "time 'nan' is not finite"),
    ('forest', 'a 0,b inf,\n', 1, "time 'inf' is not finite"),
    ('forest', 'a -1,b 1,\n', 1, "time '-1' is negative"),
    ('forest', 'a 0,b 5,c 2,\n', 1, 'times are not sorted: event 3 (t=2.0)'),
    ('forest', 'a 0,,b 1,\n', 1, "chunk 2 '': empty chunk"),
    ('forest', 'a 0,b c 1 2,\n', 1, '4 fields, expected "user time"'),
    ('forest', 'r a 0,b c 1,\n', 1, 'three fields ("root user time" is only'),
    ('forest', 'a 0,b 1,\n\nc 0,d 1,\n', 2, 'empty line'),
    # cyanrnn
    ('cyanrnn', '7,a,0,b,1,c\n', 1, "user 'c' has no time"),
    ('cyanrnn', '7,a,0,,1\n', 1, 'empty user in field 4'),
    ('cyanrnn', '7,a,0,b,soon\n', 1, "time 'soon' is not a number"),
    ('cyanrnn', '7,a,1,b,0.5\n', 1, 'times are not sorted'),
    ('cyanrnn', '7,a,0,b,1\n7,a,0,c,1\n', 2, 'cascade id already used on '
     'line 1'),
    ('cyanrnn', ',a,0,b,1\n', 1, 'empty cascade id'),
    # topolstm
    ('topolstm', 's a 10 b\n', 1, "user 'b' has no time"),
    ('topolstm', 's\n', 1, "seed user 's' without any timed event"),
    ('topolstm', 's a 10 b ten\n', 1, "time 'ten' is not a number"),
    # jsonl
    ('jsonl', '{"id": "1", "users": ["a"], "times": [0]\n', 1,
     'malformed JSON'),
    ('jsonl', '["a", "b"]\n', 1, 'expected a JSON object, got list'),
    ('jsonl', '{"id": "1", "users": [], "times": [], "time": []}\n', 1,
     "unknown key(s) ['time']"),
    ('jsonl', '{"id": 1.5, "users": ["a"], "times": [0]}\n', 1,
     '"id" must be a string'),
    ('jsonl', '{"id": null, "users": ["a"], "times": [0]}\n', 1,
     '"id" must be a string'),
    ('jsonl', '{"id": "2", "users": ["a", "b"], "times": [0, 1]}\n'
     '{"users": ["a", "b"], "times": [0, 1]}\n', 2,
     'cascade id already used on line 1'),
    ('jsonl', '{"id": "1", "users": ["a"]}\n', 1,
     '"users" and "times" are required'),
    ('jsonl', '{"id": "1", "users": "ab", "times": [0]}\n', 1,
     '"users" must be a list'),
    ('jsonl', '{"id": "1", "users": ["a", 2.0], "times": [0, 1]}\n', 1,
     '"users"[1] = 2.0 is not a user token'),
    ('jsonl', '{"id": "1", "users": ["a", ""], "times": [0, 1]}\n', 1,
     '"users"[1] = \'\' is not a user token'),
    ('jsonl', '{"id": "1", "users": ["a", true], "times": [0, 1]}\n', 1,
     '"users"[1] = True is not a user token'),
    ('jsonl', '{"id": "1", "users": ["a", "b"], "times": [0, "1"]}\n', 1,
     '"times"[1] = \'1\' is not a number'),
    ('jsonl', '{"id": "1", "users": ["a", "b"], "times": [0, NaN]}\n', 1,
     'event 2 has a non-finite time nan'),
    ('jsonl', '{"id": "1", "users": ["a", "b"], "times": [0, -1]}\n', 1,
     'event 2 has a negative time'),
    ('jsonl', '{"id": "1", "users": ["a", "b"], "times": [0]}\n', 1,
     '"times" has 1 entries but "users" has 2'),
    ('jsonl', '{"id": "1", "users": ["a", "b"], "times": [0, 1], '
     '"parents": [-1, 1]}\n', 1, 'event 2 has parent index 1, out of range'),
    ('jsonl', '{"id": "1", "users": ["a", "b"], "times": [0, 1], '
     '"parents": [-2, 0]}\n', 1, 'event 1 has parent index -2'),
    ('jsonl', '{"id": "1", "users": ["a", "b"], "times": [0, 1], '
     '"parents": [-1, 0.0]}\n', 1, '"parents"[1] = 0.0 is not an integer'),
    ('jsonl', '{"id": "1", "users": ["a", "b"], "times": [0, 1], '
     '"timestamps": [5]}\n', 1, '"timestamps" has 1 entries'),
    ('jsonl', '{"id": "1", "users": ["a", "b"], "times": [0, 1], '
     '"timestamps": [5, 6]}\n{"id": "2", "users": ["a", "b"], '
     '"times": [0, 1]}\n', 2, '"timestamps" is missing here'),
]


@pytest.mark.parametrize('fmt,text,line,problem', _MALFORMED)
def test_malformed_input_names_file_line_and_problem(tmp_path, fmt, text,
                                                     line, problem):
  path = _write(tmp_path, text, f'bad.{fmt}')
  with pytest.raises(DataError) as e:
    read_cascades(path, fmt)
  msg = str(e.value)
  assert msg.startswith(f'{path}:{line}: '), msg
  assert problem in msg, msg
  assert e.value.line == line and e.value.path == path


def test_malformed_graph_lines(tmp_path):
  cas = _write(tmp_path, 'a 0,b 1,\n')
  graph = _write(tmp_path, 'a,b\na b c\n', 'g.txt')
  with pytest.raises(DataError) as e:
    read_cascades(cas, 'forest', graph_path=graph)
  assert str(e.value).startswith(f'{graph}:2: expected one edge')
  ds, report = read_cascades(cas, 'forest', graph_path=graph, options=LENIENT)
  assert ds.edges.tolist() == [[0, 1]] and report.malformed[0][0] == 2


def test_jsonl_id_is_optional_and_defaults_to_the_line_number(tmp_path):
  path = _write(tmp_path, '{"users": ["a", "b"], "times": [0, 1]}\n'
                '{"id": "x", "users": ["b", "c"], "times": [0, 2]}\n'
                '{"users": ["c", "a"], "times": [1, 3]}\n', 'c.jsonl')
  ds, _ = read_cascades(path, 'jsonl')
  assert [c.id for c in ds.cascades] == ['1', 'x', '3']
