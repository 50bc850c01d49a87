"""Writers for the four cascade formats of `readers` (round-trip exact).

Times are written with `repr` (the shortest text that reads back to the same
float64), so `read_cascades(write_cascades(ds))` gives the same users, times
and (jsonl, cyanrnn) ids. The text formats store users and times only:
writing parents, or timestamps the reader would not rebuild, raises unless
`lossy=True`. `forest` and `topolstm` have no ids (lines are numbered on
reading), and `topolstm` cannot store the seed's own time (the reader gives
the seed the first listed time), so its first two times must be equal.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

import numpy as np

from cyan_rcbm.common import files
from cyan_rcbm.data import readers
from cyan_rcbm.data.types import Cascade, CascadeDataset
from cyan_rcbm.data.validate import validate_dataset
from cyan_rcbm.errors import ConfigError, DataError

_BAD_TEXT_TOKEN = re.compile(r'[,\s]')


def _atomic_write(path: str, lines) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp_',
                             suffix=os.path.basename(path))
  try:
    files.open_mode_like(fd)  # mkstemp's 0600 -> what open() gives
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      for line in lines:
        f.write(line)
        f.write('\n')
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def _text_token(tok: str, what: str, dataset: CascadeDataset,
                cid: str | None) -> str:
  if not tok or _BAD_TEXT_TOKEN.search(tok):
    raise DataError(f'{what} {tok!r} cannot be written to a text format (it '
                    'is empty or contains a comma or whitespace); write jsonl',
                    path=dataset.source or None, item_id=cid)
  return tok


def _check_lossless(dataset: CascadeDataset, c: Cascade, format: str) -> None:  # pylint: disable=redefined-builtin
  src = dataset.source or None
  if c.parents is not None:
    raise DataError(f'format {format!r} cannot store parents; write jsonl or '
                    'pass lossy=True', path=src, item_id=c.id)
  if c.timestamps is not None:
    lo, hi = readers.UNIX_RANGE
    rebuilt = (np.array_equal(c.timestamps, c.times) and len(c)
               and lo <= c.times.min() and c.times.max() <= hi)
    if not rebuilt:
      raise DataError(f'format {format!r} cannot store timestamps that differ '
                      'from the times (or lie outside the Unix range the '
                      'reader recognises); write jsonl or pass lossy=True',
                      path=src, item_id=c.id)


def _cascade_lines(dataset: CascadeDataset, format: str, lossy: bool):  # pylint: disable=redefined-builtin
  vocab = dataset.vocab
  for c in dataset.cascades:
    times = [repr(float(t)) for t in c.times]
    if format == 'jsonl':
      obj = {'id': c.id, 'users': [vocab[u] for u in c.users],
             'times': [float(t) for t in c.times]}
      if c.parents is not None:
        obj['parents'] = [int(p) for p in c.parents]
      if c.timestamps is not None:
        obj['timestamps'] = [float(t) for t in c.timestamps]
      yield json.dumps(obj, allow_nan=False)
      continue
    if not lossy:
      _check_lossless(dataset, c, format)
    users = [_text_token(vocab[u], 'user', dataset, c.id) for u in c.users]
    if format == 'cyanrnn':
      cid = _text_token(c.id, 'cascade id', dataset, c.id)
      yield ','.join([cid] + [f'{u},{t}' for u, t in zip(users, times)])
    elif format == 'forest':
      yield ''.join(f'{u} {t},' for u, t in zip(users, times))
    else:  # topolstm
      if len(c) < 2 or (c.times[0] != c.times[1] and not lossy):
        raise DataError(
            'topolstm stores the first (seed) user without a time: the reader '
            'gives it the second event\'s time, so a cascade needs >= 2 '
            'events' + ('' if len(c) < 2 else ' and equal first two times '
                        f'(got {times[0]} and {times[1]}); pass lossy=True '
                        'to drop the seed time'),
            path=dataset.source or None, item_id=c.id)
      yield ' '.join([users[0]] + [f'{u} {t}' for u, t in
                                   zip(users[1:], times[1:])])


def write_cascades(dataset: CascadeDataset, path: str, format: str, *,  # pylint: disable=redefined-builtin
                   lossy: bool = False) -> None:
  """Writes `dataset`'s cascades to `path` in `format` (atomically).

  Args:
    dataset: a valid data set (checked with `validate_dataset` first).
    path: the output file (parent directories are created).
    format: one of `readers.FORMATS`.
    lossy: allow text formats to drop parents / timestamps / the topolstm
      seed time instead of raising.

  Raises:
    DataError: the data set is invalid, or the format cannot hold it.
  """
  if format not in readers.FORMATS:
    raise ConfigError(f'unknown cascade format {format!r}; valid: '
                      f'{readers.FORMATS}')
  validate_dataset(dataset)
  _atomic_write(path, _cascade_lines(dataset, format, lossy))


def write_graph(dataset: CascadeDataset, path: str, format: str) -> None:  # pylint: disable=redefined-builtin
  """Writes `dataset.edges` as an edge list (`a b` for topolstm, else `a,b`).

  `read_graph` with `graph_direction='forward'` reads it back.
  """
  if format not in readers.FORMATS:
    raise ConfigError(f'unknown cascade format {format!r}; valid: '
                      f'{readers.FORMATS}')
  if dataset.edges is None:
    raise DataError('the data set has no graph to write',
                    path=dataset.source or None)
  validate_dataset(dataset)
  sep = ' ' if format == 'topolstm' else ','
  tok = lambda i: _text_token(dataset.vocab[i], 'user', dataset, None)
  _atomic_write(path, (f'{tok(a)}{sep}{tok(b)}'
                       for a, b in np.asarray(dataset.edges)))
