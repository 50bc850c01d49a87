"""What a reader is told and what it reports, and its line-by-line reading.

`ReadOptions` (how to read), `ReadReport` (what was read, kept, dropped and
changed) and `LineReader` (a file's non-blank lines; every problem raises a
`DataError` naming file and line, or with `ReadOptions.lenient` is listed in
the report) are shared by the cascade reader (`cyan_rcbm.data.readers`, with
the line formats in `cyan_rcbm.data.formats`) and the graph reader
(`cyan_rcbm.data.graph_reader`).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

from cyan_rcbm.errors import ConfigError, DataError

FORMATS = ('jsonl', 'cyanrnn', 'forest', 'topolstm')
GRAPH_DIRECTIONS = ('forward', 'reverse', 'symmetric')
DUPLICATE_USERS = ('first', 'keep', 'error')
UNKNOWN_GRAPH_USERS = ('add', 'drop', 'error')
TIMESTAMPS = ('auto', 'yes', 'no')
# `timestamps='auto'`: times are Unix seconds iff all lie in this range
# (2001-09-09 .. 2099-12-03).
UNIX_RANGE = (1e9, 4.1e9)
DEFAULT_TIME_UNITS = {'jsonl': 'unspecified', 'cyanrnn': 'units',
                      'forest': 'seconds', 'topolstm': 'seconds'}



def check_format(format: str) -> None:  # pylint: disable=redefined-builtin
  """Raises `ConfigError` unless `format` is one of `FORMATS`."""
  if format not in FORMATS:
    raise ConfigError(f'unknown cascade format {format!r}; valid: {FORMATS}')


@dataclasses.dataclass(frozen=True)
class ReadOptions:
  """How to read cascades and graphs.

  Attributes:
    min_length: cascades with fewer events (after deduplication) are dropped
      and counted (>= 1).
    duplicate_users: a user active twice in one cascade: 'first' keeps its
      first activation (later ones are removed and counted), 'keep' keeps
      all, 'error' raises.
    lenient: drop malformed chunks/lines with a report instead of raising.
    timestamps: fill `Cascade.timestamps` (absolute Unix seconds): 'auto' iff
      every time of the file lies in `UNIX_RANGE` (jsonl: the file's own
      `timestamps` when present), 'yes' always (times are Unix seconds),
      'no' never.
    time_unit: unit of the times; None: the format's default
      (`DEFAULT_TIME_UNITS`).
    graph_direction: 'forward' keeps `a b` as a -> b, 'reverse' as b -> a,
      'symmetric' both.
    unknown_graph_users: a graph user in no cascade: 'add' it to the vocab,
      'drop' its edges (counted), or raise ('error').
  """
  min_length: int = 2
  duplicate_users: str = 'first'
  lenient: bool = False
  timestamps: str = 'auto'
  time_unit: str | None = None
  graph_direction: str = 'forward'
  unknown_graph_users: str = 'add'

  def __post_init__(self):
    for name, valid in (('duplicate_users', DUPLICATE_USERS),
                        ('timestamps', TIMESTAMPS),
                        ('graph_direction', GRAPH_DIRECTIONS),
                        ('unknown_graph_users', UNKNOWN_GRAPH_USERS)):
      if getattr(self, name) not in valid:
        raise ConfigError(f'{name}={getattr(self, name)!r} is not one of '
                          f'{valid}.')
    if (not isinstance(self.min_length, (int, np.integer))
        or isinstance(self.min_length, bool) or self.min_length < 1):
      raise ConfigError(f'min_length={self.min_length!r} must be an integer '
                        '>= 1.')


@dataclasses.dataclass
class ReadReport:
  """What a reader read, kept, dropped and changed (all counts)."""
  path: str = ''
  format: str = ''
  lines: int = 0
  cascades_read: int = 0       # cascades parsed (after lenient drops)
  events_read: int = 0         # their events
  cascades: int = 0            # cascades kept
  events: int = 0              # events kept
  new_users: int = 0           # tokens the cascades added to the vocab
  trailing_blank_lines: int = 0
  malformed: list[tuple[int, str]] = dataclasses.field(default_factory=list)
  malformed_events: int = 0    # events lost with malformed chunks/lines
  duplicate_events: int = 0    # repeated activations removed ('first')
  duplicate_cascades: int = 0  # cascades that had some
  short_cascades: int = 0      # dropped for having < min_length events
  short_events: int = 0
  timestamps: bool = False
  time_unit: str = ''
  graph_path: str | None = None
  edges_read: int = 0          # edge lines in the graph file
  edges: int = 0               # directed edges kept (after direction)
  duplicate_edges: int = 0     # repeated edges removed
  self_loops: int = 0          # kept, counted
  graph_users_added: int = 0   # graph users in no cascade, added to vocab
  unknown_graph_users_dropped: int = 0
  unknown_edges_dropped: int = 0

  def summary(self) -> str:
    """One line: what was kept, then everything dropped or changed."""
    head = (f'{self.path} ({self.format}): {self.cascades} cascades, '
            f'{self.events} events')
    if self.graph_path is not None:
      head += f', {self.edges} edges'
    notes = []
    if self.malformed:
      lines = ', '.join(str(ln) for ln, _ in self.malformed[:5])
      more = ', ...' if len(self.malformed) > 5 else ''
      notes.append(f'{len(self.malformed)} malformed chunk(s)/line(s) dropped '
                   f'({self.malformed_events} events; line {lines}{more})')
    if self.duplicate_events:
      notes.append(f'{self.duplicate_events} repeated activations removed in '
                   f'{self.duplicate_cascades} cascades')
    if self.short_cascades:
      notes.append(f'{self.short_cascades} short cascades dropped '
                   f'({self.short_events} events)')
    if self.duplicate_edges:
      notes.append(f'{self.duplicate_edges} duplicate edges removed')
    if self.self_loops:
      notes.append(f'{self.self_loops} self loops kept')
    if self.graph_users_added:
      notes.append(f'{self.graph_users_added} graph-only users added')
    if self.unknown_edges_dropped:
      notes.append(f'{self.unknown_edges_dropped} edges of '
                   f'{self.unknown_graph_users_dropped} unknown users dropped')
    return head + ('; ' + '; '.join(notes) if notes else '; nothing dropped')


class LineReader:
  """Per-file state: reports problems (raise, or drop when lenient)."""

  def __init__(self, path: str, options: ReadOptions, report: ReadReport):
    self.path = path
    self.options = options
    self.report = report

  def problem(self, problem: str, line: int, item_id: str | None = None,
              events_lost: int = 0) -> None:
    """Raises, or (lenient) records the dropped chunk/line."""
    if not self.options.lenient:
      raise DataError(f'{problem} (lenient mode drops it with a report)',
                      path=self.path, line=line, item_id=item_id)
    where = f'cascade {item_id!r}: ' if item_id is not None else ''
    self.report.malformed.append((line, where + problem))
    self.report.malformed_events += events_lost

  def lines(self) -> Iterator[tuple[int, str]]:
    """Yields (1-based line number, text) of non-blank lines.

    Blank lines at the end of the file are ignored (counted); a blank line
    followed by data is a problem (dropped when lenient).
    """
    text = _read_text(self.path)
    lines = text.split('\n')
    if lines and lines[-1] == '':
      lines.pop()  # the final newline
    last = len(lines)
    while last and not lines[last - 1].strip():
      last -= 1
    self.report.lines = len(lines)
    self.report.trailing_blank_lines = len(lines) - last
    for i in range(last):
      line = lines[i].rstrip('\r')
      if not line.strip():
        self.problem('empty line in the middle of the file', i + 1)
        continue
      yield i + 1, line


def _read_text(path: str) -> str:
  try:
    with open(path, encoding='utf-8-sig') as f:
      return f.read()
  except FileNotFoundError:
    raise DataError('no such file', path=path) from None
  except IsADirectoryError:
    raise DataError('is a directory, expected a file', path=path) from None
  except UnicodeDecodeError as e:
    raise DataError(f'not UTF-8 text (byte {e.start})', path=path) from None
