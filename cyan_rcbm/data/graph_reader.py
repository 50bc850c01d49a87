"""Reader for social-graph files: one directed edge per line (equations.md A1).

Every cascade format uses the same edge list: `a b` or `a,b` per line (comma
if the line has one, else whitespace). Edge `(src, dst)`: dst can be
influenced by src. Problems raise a `DataError` naming file and line (or,
with `ReadOptions.lenient`, are listed in the `ReadReport`).
"""

from __future__ import annotations

import numpy as np

from cyan_rcbm.data.read_options import (LineReader, ReadOptions, ReadReport,
                                         check_format)
from cyan_rcbm.errors import DataError


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
  check_format(format)
  report = ReadReport(path=path, format=format) if report is None else report
  report.graph_path = path
  rd = LineReader(path, options, ReadReport())  # line bookkeeping of the graph
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
