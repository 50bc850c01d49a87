"""Readers for cascade files in four formats, with a social graph (equations.md
A1).

Formats (one cascade per line; see docs/data.md for examples):

* `jsonl`: `{"id": "c1", "users": ["a", "b"], "times": [0.0, 1.5],
  "parents": [-1, 0], "timestamps": [...]}`; `id`, `parents` and
  `timestamps` are optional (a missing `id` is the 1-based line number);
  users are strings (ints are turned into their string form).
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

Where the pieces are: this module validates, deduplicates and maps parsed
cascades (`read_cascades`); `cyan_rcbm.data.formats` parses one line of each
format; `cyan_rcbm.data.graph_reader` reads graph files;
`cyan_rcbm.data.read_options` holds `ReadOptions`, `ReadReport` and the
line-by-line reading they share.

Every problem raises a `DataError` naming file, line, cascade and what is
wrong. With `ReadOptions.lenient`, a malformed chunk (or, for line-level
problems, the whole line) is dropped instead and listed in the `ReadReport`
with its line number. Nothing is ever dropped or reordered silently.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cyan_rcbm.data.formats import PARSERS, RawCascade
from cyan_rcbm.data.graph_reader import read_graph
# The reading API: options, report and their choices live with the line
# reader; they are imported here so that `readers.X` names all of it.
from cyan_rcbm.data.read_options import (  # pylint: disable=unused-import
    DEFAULT_TIME_UNITS, DUPLICATE_USERS, FORMATS, GRAPH_DIRECTIONS,
    TIMESTAMPS, UNIX_RANGE, UNKNOWN_GRAPH_USERS, LineReader, ReadOptions,
    ReadReport, check_format)
from cyan_rcbm.data.types import Cascade, CascadeDataset
from cyan_rcbm.data.validate import cascade_problem
from cyan_rcbm.errors import ConfigError, DataError


def _first_activations(users: list[str]) -> np.ndarray:
  """Indices of the first activation of each user, in order."""
  seen = set()
  keep = []
  for k, u in enumerate(users):
    if u not in seen:
      seen.add(u)
      keep.append(k)
  return np.asarray(keep, dtype=np.int64)


def _finish(rd: LineReader, raw: RawCascade, vocab: dict[str, int],
            ids: dict[str, int]) -> Cascade | None:
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


def _set_timestamps(rd: LineReader, cascades: list[Cascade], lines: list[int]
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
  """Reads, validates and maps one cascade file (equations.md A1).

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
  check_format(format)
  if vocab is None:
    vocab = {}
  vocab_tokens(vocab)  # validates a caller's mapping
  report = ReadReport(path=path, format=format)
  rd = LineReader(path, options, report)
  parse = PARSERS[format]
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
