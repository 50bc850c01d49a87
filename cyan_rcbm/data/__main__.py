"""Validate a cascade file, print its statistics, optionally convert it.

python -m cyan_rcbm.data --path=../shared/data/android/cascades.txt \
    --format=forest --graph=../shared/data/android/edges.txt \
    --convert_to=/tmp/android.jsonl

Prints one JSON object on stdout (counts and what was dropped). A bad file
prints `error: FILE:LINE: cascade 'ID': problem` on stderr and exits 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from absl import app
from absl import flags

from cyan_rcbm.data import readers
from cyan_rcbm.data import stats
from cyan_rcbm.data import writers
from cyan_rcbm.errors import InputError

_PATH = flags.DEFINE_string('path', None, 'Cascade file to read.')
_FORMAT = flags.DEFINE_enum('format', None, list(readers.FORMATS),
                            'Format of --path.')
_GRAPH = flags.DEFINE_string('graph', None, 'Optional edge-list file.')
_CONVERT_TO = flags.DEFINE_string('convert_to', None,
                                  'Write the cascades here (canonical jsonl '
                                  'unless --convert_format says otherwise).')
_CONVERT_FORMAT = flags.DEFINE_enum('convert_format', 'jsonl',
                                    list(readers.FORMATS),
                                    'Format of --convert_to.')
_CONVERT_GRAPH_TO = flags.DEFINE_string('convert_graph_to', None,
                                        'Write the graph here (edge list).')
_LENIENT = flags.DEFINE_bool('lenient', False,
                             'Drop malformed chunks/lines (reported) instead '
                             'of failing.')
_MIN_LENGTH = flags.DEFINE_integer('min_length', 2,
                                   'Drop (and count) shorter cascades.')
_DUPLICATE_USERS = flags.DEFINE_enum('duplicate_users', 'first',
                                     list(readers.DUPLICATE_USERS),
                                     'Repeated activations of a user.')
_TIMESTAMPS = flags.DEFINE_enum('timestamps', 'auto', list(readers.TIMESTAMPS),
                                'Whether times are Unix seconds.')
_DIRECTION = flags.DEFINE_enum('graph_direction', 'forward',
                               list(readers.GRAPH_DIRECTIONS),
                               'How to read an edge "a b".')
_UNKNOWN = flags.DEFINE_enum('unknown_graph_users', 'add',
                             list(readers.UNKNOWN_GRAPH_USERS),
                             'Graph users that occur in no cascade.')


def _run() -> dict:
  options = readers.ReadOptions(
      min_length=_MIN_LENGTH.value, duplicate_users=_DUPLICATE_USERS.value,
      lenient=_LENIENT.value, timestamps=_TIMESTAMPS.value,
      graph_direction=_DIRECTION.value,
      unknown_graph_users=_UNKNOWN.value)
  dataset, report = readers.read_cascades(
      _PATH.value, _FORMAT.value, graph_path=_GRAPH.value, options=options)
  out = stats.dataset_stats(dataset)
  dropped = dataclasses.asdict(report)
  for key in ('path', 'format', 'cascades', 'events', 'edges', 'time_unit',
              'timestamps', 'graph_path'):
    dropped.pop(key)
  dropped['malformed'] = [f'{line}: {what}' for line, what in report.malformed]
  out['report'] = dropped
  out['summary'] = report.summary()
  if _CONVERT_TO.value:
    writers.write_cascades(dataset, _CONVERT_TO.value, _CONVERT_FORMAT.value)
    out['converted_to'] = _CONVERT_TO.value
  if _CONVERT_GRAPH_TO.value:
    writers.write_graph(dataset, _CONVERT_GRAPH_TO.value,
                        _CONVERT_FORMAT.value)
    out['graph_converted_to'] = _CONVERT_GRAPH_TO.value
  return out


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    out = _run()
  except InputError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print(json.dumps(out))


if __name__ == '__main__':
  flags.mark_flags_as_required(['path', 'format'])
  app.run(main)
