"""Line parsers of the four cascade formats (equations.md A1).

Each parser turns one line of its format into a `RawCascade` (line, id,
tokens, times, parents, timestamps), before validation, deduplication and
vocab mapping (`cyan_rcbm.data.readers.read_cascades`); a problem goes to the
`LineReader` (raise, or drop with a report when lenient). The formats are
described in `cyan_rcbm.data.readers`.
"""

from __future__ import annotations

import json
import math
from typing import Callable

from cyan_rcbm.data.read_options import LineReader

_JSONL_KEYS = ('id', 'users', 'times', 'parents', 'timestamps')

# One parsed cascade before validation: line, id, tokens, times, parents,
# timestamps.
RawCascade = tuple[int, str, list[str], list[float], list[int] | None,
                   list[float] | None]


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


def _parse_pairs(rd: LineReader, ln: int, cid: str, rest: list[str],
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


def _parse_cyanrnn(rd: LineReader, ln: int, line: str) -> RawCascade | None:
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


def _parse_forest(rd: LineReader, ln: int, line: str) -> RawCascade | None:
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


def _parse_topolstm(rd: LineReader, ln: int, line: str) -> RawCascade | None:
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


def _parse_jsonl(rd: LineReader, ln: int, line: str) -> RawCascade | None:
  try:
    obj = json.loads(line)
  except json.JSONDecodeError as e:
    rd.problem(f'malformed JSON: {e.msg} at column {e.colno}', ln)
    return None
  if not isinstance(obj, dict):
    rd.problem(f'expected a JSON object, got {type(obj).__name__}', ln)
    return None
  # "id" is optional: the line number, as the text formats without ids.
  cid = _json_token(obj['id']) if 'id' in obj else str(ln)
  n = len(obj['users']) if isinstance(obj.get('users'), list) else 0
  bad = None
  unknown = sorted(set(obj) - set(_JSONL_KEYS))
  if unknown:
    bad = f'unknown key(s) {unknown}; valid keys: {list(_JSONL_KEYS)}'
  elif cid is None:
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


PARSERS: dict[str, Callable[[LineReader, int, str], RawCascade | None]] = {
    'jsonl': _parse_jsonl, 'cyanrnn': _parse_cyanrnn,
    'forest': _parse_forest, 'topolstm': _parse_topolstm}
