"""Readers for cascade files in four formats, with a social graph (SPEC A1).

Formats (one cascade per line; see docs/readme/data.md for examples):

* `jsonl`: `{"id": "c1", "users": ["a", "b"], "times": [0.0, 1.5],
  "parents": [-1, 0], "timestamps": [...]}`; `parents` and `timestamps` are
  optional; users are strings (ints are turned into their string form).
* `cyanrnn` (CYAN-RNN authors): `cascade_id,user,time,user,time,...`.
* `forest` (FOREST / MS-HGAT): `user time,user time,...,` (trailing comma
  optional). The first chunk may have three fields `root user time`: the root
  and the user both activate at that time (two events), as the MS-HGAT
  loader reads it. Cascade ids are the 1-based line numbers.
* `topolstm` (Topo-LSTM): `seed user time user time ...` (spaces). The seed
  is the cascade's first node (Topo-LSTM's loader puts it first in the
  sequence) but carries no time: it gets the first listed time, so it is an
  event at the cascade's start and times stay sorted. Ids are line numbers.

Graph files (`read_graph`): one directed edge `a b` or `a,b` per line
(comma if the line has one, else whitespace), for every format.

Every problem raises a `DataError` naming file, line, cascade and what is
wrong. With `ReadOptions.lenient`, a malformed chunk (or, for line-level
problems, the whole line) is dropped instead and listed in the `ReadReport`
with its line number. Nothing is ever dropped or reordered silently.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Callable, Iterator

import numpy as np

from cyan_rcbm.data.types import Cascade, CascadeDataset
from cyan_rcbm.data.validate import cascade_problem
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
_JSONL_KEYS = ('id', 'users', 'times', 'parents', 'timestamps')


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


# One parsed cascade before validation: line, id, tokens, times, parents,
# timestamps.
_Raw = tuple[int, str, list[str], list[float], list[int] | None,
             list[float] | None]


class _Reader:
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


def _parse_time(text: str) -> tuple[float | None, str | None]:
  """Returns (time, None) or (None, problem)."""
  try:
    t = float(text)
  except ValueError:
    return None, f'time {text!r} is not a number'
  if not math.isfinite(t):
    return None, f'time {text!r} is not finite'
  if t < 0:
    return None, f'time {text!r} is negative'
  return t, None


def _parse_pairs(rd: _Reader, ln: int, cid: str, rest: list[str],
                 after: str, sep: str) -> tuple[list[str], list[float]]:
  """Parses `user time user time ...` fields (cyanrnn, topolstm)."""
  if len(rest) % 2:
    rd.problem(f'odd number of fields after {after}: user {rest[-1]!r} has no '
               'time (truncated line?)', ln, cid, events_lost=1)
    rest = rest[:-1]
  users, times = [], []
  for j in range(0, len(rest), 2):
    user, t_text = rest[j], rest[j + 1]
    t, bad = _parse_time(t_text)
    if not user:
      bad = f'empty user in field {j + 2}'
    if bad:
      rd.problem(f'{bad} (fields {j + 2}-{j + 3}: {user!r}{sep}{t_text!r})',
                 ln, cid, events_lost=1)
      continue
    users.append(user)
    times.append(t)
  return users, times


def _parse_cyanrnn(rd: _Reader, ln: int, line: str) -> _Raw | None:
  fields = [f.strip() for f in line.split(',')]
  if len(fields) > 1 and fields[-1] == '':
    fields.pop()  # trailing comma
  cid = fields[0]
  if not cid:
    rd.problem('empty cascade id (expected "id,user,time,user,time,...")',
               ln, events_lost=len(fields) // 2)
    return None
  users, times = _parse_pairs(rd, ln, cid, fields[1:], 'the id', ',')
  return ln, cid, users, times, None, None


def _parse_forest(rd: _Reader, ln: int, line: str) -> _Raw | None:
  cid = str(ln)
  chunks = line.split(',')
  if len(chunks) > 1 and not chunks[-1].strip():
    chunks.pop()  # trailing comma
  users, times = [], []
  for j, chunk in enumerate(chunks):
    f = chunk.split()
    if len(f) == 2 or (len(f) == 3 and j == 0):
      t, bad = _parse_time(f[-1])
    elif not f:
      bad = 'empty chunk'
    elif len(f) == 1:
      bad = 'truncated (a user without a time)'
    elif len(f) == 3:
      bad = ('three fields ("root user time" is only allowed in the first '
             'chunk)')
    else:
      bad = f'{len(f)} fields, expected "user time"'
    if bad:
      rd.problem(f'chunk {j + 1} {chunk.strip()!r}: {bad}', ln, cid,
                 events_lost=max(1, len(f) - 1))
      continue
    users.extend(f[:-1])
    times.extend([t] * (len(f) - 1))
  return ln, cid, users, times, None, None


def _parse_topolstm(rd: _Reader, ln: int, line: str) -> _Raw | None:
  cid = str(ln)
  f = line.split()
  seed = f[0]
  users, times = _parse_pairs(rd, ln, cid, f[1:], 'the seed', ' ')
  if not users:
    rd.problem(f'seed user {seed!r} without any timed event (expected '
               '"seed user time user time ...")', ln, cid, events_lost=1)
    return None
  return ln, cid, [seed] + users, [times[0]] + times, None, None


def _json_token(x) -> str | None:
  if isinstance(x, str):
    return x
  if isinstance(x, int) and not isinstance(x, bool):
    return str(x)
  return None


def _json_numbers(values, name: str, integer: bool = False
                  ) -> tuple[list | None, str | None]:
  if not isinstance(values, list):
    return None, f'"{name}" must be a list, got {type(values).__name__}'
  kinds = (int,) if integer else (int, float)
  for k, v in enumerate(values):
    if not isinstance(v, kinds) or isinstance(v, bool):
      want = 'an integer' if integer else 'a number'
      return None, f'"{name}"[{k}] = {v!r} is not {want}'
  return values, None


def _parse_jsonl(rd: _Reader, ln: int, line: str) -> _Raw | None:
  try:
    obj = json.loads(line)
  except json.JSONDecodeError as e:
    rd.problem(f'malformed JSON: {e.msg} at column {e.colno}', ln)
    return None
  if not isinstance(obj, dict):
    rd.problem(f'expected a JSON object, got {type(obj).__name__}', ln)
    return None
  cid = _json_token(obj.get('id'))
  n = len(obj['users']) if isinstance(obj.get('users'), list) else 0
  bad = None
  unknown = sorted(set(obj) - set(_JSONL_KEYS))
  if unknown:
    bad = f'unknown key(s) {unknown}; valid keys: {list(_JSONL_KEYS)}'
  elif 'id' not in obj or cid is None:
    bad = f'"id" must be a string (or integer), got {obj.get("id")!r}'
  elif 'users' not in obj or 'times' not in obj:
    bad = '"users" and "times" are required'
  elif not isinstance(obj['users'], list):
    bad = f'"users" must be a list, got {type(obj["users"]).__name__}'
  if bad:
    rd.problem(bad, ln, cid, events_lost=n)
    return None
  users = []
  for k, u in enumerate(obj['users']):
    tok = _json_token(u)
    if not tok:
      rd.problem(f'"users"[{k}] = {u!r} is not a user token (a non-empty '
                 'string or an integer)', ln, cid, events_lost=n)
      return None
    users.append(tok)
  times, bad = _json_numbers(obj['times'], 'times')
  parents = timestamps = None
  if not bad and obj.get('parents') is not None:
    parents, bad = _json_numbers(obj['parents'], 'parents', integer=True)
  if not bad and obj.get('timestamps') is not None:
    timestamps, bad = _json_numbers(obj['timestamps'], 'timestamps')
  if not bad:
    for name, arr in (('times', times), ('parents', parents),
                      ('timestamps', timestamps)):
      if arr is not None and len(arr) != n:
        bad = (f'"{name}" has {len(arr)} entries but "users" has {n} '
               '(lengths must match)')
        break
  if bad:
    rd.problem(bad, ln, cid, events_lost=n)
    return None
  return ln, cid, users, [float(t) for t in times], parents, timestamps


_PARSERS: dict[str, Callable[[_Reader, int, str], _Raw | None]] = {
    'jsonl': _parse_jsonl, 'cyanrnn': _parse_cyanrnn,
    'forest': _parse_forest, 'topolstm': _parse_topolstm}


def _first_activations(users: list[str]) -> np.ndarray:
  """Indices of the first activation of each user, in order."""
  seen = set()
  keep = []
  for k, u in enumerate(users):
    if u not in seen:
      seen.add(u)
      keep.append(k)
  return np.asarray(keep, dtype=np.int64)


def _finish(rd: _Reader, raw: _Raw, vocab: dict[str, int], ids: dict[str, int]
            ) -> Cascade | None:
  """Validates, deduplicates, filters and maps one parsed cascade."""
  ln, cid, users, times_list, parents_list, ts_list = raw
  report, options = rd.report, rd.options
  n = len(users)
  times = np.asarray(times_list, dtype=np.float64)
  parents = (None if parents_list is None
             else np.asarray(parents_list, dtype=np.int64))
  timestamps = (None if ts_list is None
                else np.asarray(ts_list, dtype=np.float64))
  problem = cascade_problem(None, times, parents, timestamps)
  if problem is None and cid in ids:
    problem = f'cascade id already used on line {ids[cid]}'
  if problem:
    rd.problem(problem, ln, cid, events_lost=n)
    return None
  ids[cid] = ln
  report.cascades_read += 1
  report.events_read += n
  keep = _first_activations(users)
  if keep.size < n:
    if options.duplicate_users == 'error':
      k = int(np.flatnonzero(keep != np.arange(keep.size))[0]) if (
          keep != np.arange(keep.size)).any() else keep.size
      raise DataError(f'user {users[k]!r} activates more than once (event '
                      f'{k + 1}); set duplicate_users to "first" or "keep"',
                      path=rd.path, line=ln, item_id=cid)
    if options.duplicate_users == 'first':
      report.duplicate_events += n - keep.size
      report.duplicate_cascades += 1
      if parents is not None:
        # A removed repeat that was a parent hands its children to the same
        # user's first activation.
        first_of = {}
        for k, u in enumerate(users):
          first_of.setdefault(u, k)
        canon = np.asarray([first_of[u] for u in users], dtype=np.int64)
        new_index = np.full(n, -1, dtype=np.int64)
        new_index[keep] = np.arange(keep.size)
        p = parents[keep]
        parents = np.where(p < 0, -1, new_index[canon[np.maximum(p, 0)]])
      users = [users[k] for k in keep]
      times = times[keep]
      timestamps = None if timestamps is None else timestamps[keep]
  if len(users) < options.min_length:
    report.short_cascades += 1
    report.short_events += len(users)
    return None
  before = len(vocab)
  user_ids = np.fromiter((vocab.setdefault(u, len(vocab)) for u in users),
                         dtype=np.int32, count=len(users))
  report.new_users += len(vocab) - before
  return Cascade(id=cid, users=user_ids, times=times,
                 parents=None if parents is None else parents.astype(np.int32),
                 timestamps=timestamps)


def _unix_like(cascades: list[Cascade]) -> bool:
  lo, hi = UNIX_RANGE
  return bool(cascades) and all(
      c.times.min() >= lo and c.times.max() <= hi for c in cascades if len(c))


def _set_timestamps(rd: _Reader, cascades: list[Cascade], lines: list[int]
                    ) -> list[Cascade]:
  """Applies `options.timestamps` (see `ReadOptions`)."""
  mode = rd.options.timestamps
  given = [c.timestamps is not None for c in cascades]
  if mode == 'no':
    return [dataclasses.replace(c, timestamps=None) for c in cascades]
  if any(given):
    if not all(given):
      k = given.index(False)
      raise DataError('"timestamps" is missing here but given on other lines '
                      '(give it on every line or on none)', path=rd.path,
                      line=lines[k], item_id=cascades[k].id)
    return cascades
  if mode == 'yes' or _unix_like(cascades):
    return [dataclasses.replace(c, timestamps=c.times.copy())
            for c in cascades]
  return cascades


def vocab_tokens(vocab: dict[str, int]) -> tuple[str, ...]:
  """The tokens of a token -> dense id mapping, ordered by id."""
  tokens = [None] * len(vocab)
  for tok, i in vocab.items():
    if not 0 <= i < len(vocab) or tokens[i] is not None:
      raise ConfigError(f'vocab is not a dense mapping onto 0..{len(vocab)-1} '
                        f'(token {tok!r} -> {i})')
    tokens[i] = tok
  return tuple(tokens)


def read_cascades(path: str, format: str, *,  # pylint: disable=redefined-builtin
                  vocab: dict[str, int] | None = None,
                  graph_path: str | None = None,
                  options: ReadOptions = ReadOptions(),
                  ) -> tuple[CascadeDataset, ReadReport]:
  """Reads, validates and maps one cascade file (SPEC A1).

  Args:
    path: the cascade file.
    format: one of `FORMATS`.
    vocab: token -> dense id mapping shared across files (train/valid/test of
      one set must share ids); extended in place with new tokens (cascade
      users first, in order of appearance, then graph-only users). None: a
      fresh one.
    graph_path: optional edge-list file (see `read_graph`).
    options: see `ReadOptions`.

  Returns:
    The data set (cascades in file order, `vocab` = all tokens of the mapping
    after reading, `edges` when a graph is given) and a `ReadReport`.

  Raises:
    DataError: naming file, line, cascade and problem (unless lenient).
  """
  if format not in FORMATS:
    raise ConfigError(f'unknown cascade format {format!r}; valid: {FORMATS}')
  if vocab is None:
    vocab = {}
  vocab_tokens(vocab)  # validates a caller's mapping
  report = ReadReport(path=path, format=format)
  rd = _Reader(path, options, report)
  parse = _PARSERS[format]
  cascades, lines, ids = [], [], {}
  for ln, line in rd.lines():
    raw = parse(rd, ln, line)
    if raw is None:
      continue
    c = _finish(rd, raw, vocab, ids)
    if c is not None:
      cascades.append(c)
      lines.append(ln)
  cascades = _set_timestamps(rd, cascades, lines)
  report.cascades = len(cascades)
  report.events = int(sum(len(c) for c in cascades))
  report.timestamps = bool(cascades) and cascades[0].timestamps is not None
  report.time_unit = options.time_unit or DEFAULT_TIME_UNITS[format]
  edges = None
  if graph_path is not None:
    edges = read_graph(graph_path, format, vocab, options=options,
                       report=report)
  dataset = CascadeDataset(cascades=tuple(cascades), vocab=vocab_tokens(vocab),
                           edges=edges, time_unit=report.time_unit,
                           source=path)
  return dataset, report


def _split_edge(line: str) -> list[str]:
  if ',' in line:
    return [f.strip() for f in line.split(',')]
  return line.split()


def read_graph(path: str, format: str, vocab: dict[str, int], *,  # pylint: disable=redefined-builtin
               options: ReadOptions = ReadOptions(),
               report: ReadReport | None = None) -> np.ndarray:
  """Reads a directed edge list `a b` / `a,b` (one per line) -> int32 [E, 2].

  Edge `(src, dst)`: dst can be influenced by src. Users not in `vocab` are
  handled by `options.unknown_graph_users` ('add' extends `vocab` in place).
  Repeated edges are removed and counted; self loops are kept and counted;
  `options.graph_direction` reverses or symmetrises the edges.

  Args:
    path: the graph file.
    format: the cascades' format (every format uses the same edge list).
    vocab: token -> dense id mapping of the cascades (extended in place).
    options: see `ReadOptions`.
    report: a `ReadReport` to fill (the cascades' one), or None.
  """
  if format not in FORMATS:
    raise ConfigError(f'unknown cascade format {format!r}; valid: {FORMATS}')
  report = ReadReport(path=path, format=format) if report is None else report
  report.graph_path = path
  rd = _Reader(path, options, ReadReport())  # line bookkeeping of the graph
  unknown = options.unknown_graph_users
  pairs, seen, dropped_users, added = [], set(), set(), 0
  for ln, line in rd.lines():
    f = _split_edge(line)
    if len(f) != 2 or not all(f):
      rd.problem(f'expected one edge "a b" or "a,b", got {line.strip()!r}', ln)
      continue
    report.edges_read += 1
    ids = []
    for tok in f:
      i = vocab.get(tok)
      if i is None:
        if unknown == 'error':
          raise DataError(f'graph user {tok!r} occurs in no cascade '
                          '(unknown_graph_users="error")', path=path, line=ln)
        if unknown == 'drop':
          dropped_users.add(tok)
          continue
        i = vocab[tok] = len(vocab)
        added += 1
      ids.append(i)
    if len(ids) < 2:
      report.unknown_edges_dropped += 1
      continue
    pair = (ids[0], ids[1])
    if pair in seen:
      report.duplicate_edges += 1
      continue
    seen.add(pair)
    pairs.append(pair)
  report.malformed.extend(rd.report.malformed)
  report.graph_users_added += added
  report.unknown_graph_users_dropped = len(dropped_users)
  edges = np.asarray(pairs, dtype=np.int32).reshape(-1, 2)
  report.self_loops = int(np.sum(edges[:, 0] == edges[:, 1]))
  if options.graph_direction == 'reverse':
    edges = edges[:, ::-1].copy()
  elif options.graph_direction == 'symmetric':
    back = [(b, a) for a, b in pairs if (b, a) not in seen]
    back = list(dict.fromkeys(back))
    edges = np.concatenate(
        [edges, np.asarray(back, dtype=np.int32).reshape(-1, 2)])
  report.edges = int(edges.shape[0])
  return edges
