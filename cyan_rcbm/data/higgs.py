"""RCBM's seven Twitter features from the Higgs activity file (equations.md B8).

Input: SNAP's `higgs-activity_time.txt.gz` (De Domenico et al. 2013), one line
`userA userB unix_time type` per interaction, type RT (retweet), MT (mention)
or RE (reply); userA acts on userB. The whole file is one topic, so a sample
("social dynamic", paper "Dataset Description") is either

* mode='target': everything done to one target user (userB) — the dynamic
  of the target's content — for targets with at least `min_events` lines in
  the file (5,648 targets with >= 10, 682 with >= 100); or
* mode='window': everything in one time window of the week.

Per time bin (paper's features; definitions in
`cyan_rcbm.data.cascade_dynamics`):

1. `initiators`: actors acting for the first time in the sample while none of
   their friends had acted in it before;
2. `first_time_propagators` / 3. `first_time_commentators`: first action in
   the sample, after some friend acted in it; RT = propagation, RE/MT =
   commenting;
4. `recurring_propagators` / 5. `recurring_commentators`: actors who already
   acted in the sample;
6. `diameter` / 7. `lcc_size`: of the friend graph induced on the sample's
   actors so far (undirected; diameter of the LCC).

Friends. The paper's initiator test needs a follower graph, which this file
lacks. We use the whole file's undirected interaction graph (u ~ v if one
acted on the other at any time in the week, self-actions dropped: 304,691
users, 452,202 ties) as the friendship graph, for the initiator test and the
graph features alike. Like the paper's follower snapshot it is one static
graph; retweets and mentions mostly follow follower links, so it is a subset
proxy of them. Two consequences: users with no other interaction count as
initiators, and a tie may come from an interaction later in the week (the
follower snapshot has the same property). The sample's own interactions are
not used as its graph: in mode='target' they form a star around the target
(diameter <= 2, LCC = actors + 1), which carries no information beyond the
counts. For the same reason a target's actions on itself (part of the
7,588 self-action lines) are left out of its sample: the target would be a
node tied to every actor, a star again. The 7 targets with >= 10 lines that
are all self-actions have no sample (5,641 samples for >= 10 lines, 682 for
>= 100).

Actions. Lines with the same (userA, userB, second) are one tweet (a reply is
listed as RE and MT): they count once, as a propagation if any of them is RT,
else as a comment (522,618 actions from 563,069 lines). `min_events` counts
lines, to match the published target counts.

Bins and windows (measured on the targets with >= 10 / >= 100 lines; the
share is a target's actions in the window over its lines in the file).
mode='target' defaults to 10-minute bins, T = 60 (10 hours), with the
target's peak bin (most actions, earliest on ties) at bin index 10: the window
holds a median 67% / 63% of each target's lines in 7 / 33 non-empty bins.
The paper's 1-minute bins (its keywords were selected for per-minute bursts)
keep only 33% / 25% here: Higgs reactions to a user are slower than a
keyword burst; 1-hour bins keep 88% / 90% but smear the burst into 6 / 23
non-empty bins. Actions before the window are history (they make later actions
recurring and are graph nodes from bin 0); later ones are only counted in
`later_events`. mode='window' defaults to the paper's 1-minute bins and
1-hour windows (T = 60) aligned to UTC hours, one per hour of the week (168;
`stride_bins` for overlapping windows), windows with fewer than `min_events`
actions skipped; no history.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import os

import numpy as np

from cyan_rcbm.data import cascade_dynamics
from cyan_rcbm.data.types import Dynamics
from cyan_rcbm.errors import ConfigError, DataError

TYPES = ('RT', 'MT', 'RE')
KINDS = ('propagators', 'commentators')  # RT; MT and RE
FEATURES = tuple(cascade_dynamics.feature_names(KINDS))
DEFAULT_FILE = os.path.join('higgs-twitter', 'higgs-activity_time.txt.gz')
DEFAULT_BIN_SECONDS = {'target': 600, 'window': 60}
_KIND_OF_TYPE = np.array([0, 1, 1], np.int8)


def default_path() -> str:
  """`<data root>/higgs-twitter/higgs-activity_time.txt.gz`."""
  try:
    from cyan_rcbm.data.registry import data_root  # pylint: disable=g-import-not-at-top
    root = data_root()
  except ImportError:
    root = os.environ.get('CYAN_RCBM_DATA') or os.path.join(
        os.path.dirname(__file__), '..', '..', '..', 'shared', 'data')
  return os.path.normpath(os.path.join(root, DEFAULT_FILE))


@dataclasses.dataclass(frozen=True)
class HiggsActivity:
  """The parsed activity file, one entry per line, in file order.

  Attributes:
    user_a: int64 [L] actor ids (as in the file).
    user_b: int64 [L] target ids.
    time: int64 [L] Unix seconds.
    type: int8 [L] index into `TYPES` ('RT', 'MT', 'RE').
    path: the file.
  """
  user_a: np.ndarray
  user_b: np.ndarray
  time: np.ndarray
  type: np.ndarray
  path: str

  def __len__(self) -> int:
    return int(self.time.shape[0])

  def type_counts(self) -> dict[str, int]:
    counts = np.bincount(self.type, minlength=len(TYPES))
    return {name: int(c) for name, c in zip(TYPES, counts)}

  def target_counts(self) -> tuple[np.ndarray, np.ndarray]:
    """(target ids, number of lines with that target), ids ascending."""
    return np.unique(self.user_b, return_counts=True)


def _first_bad_line(raw: bytes, is_bad) -> int:
  for number, line in enumerate(raw.split(b'\n'), start=1):
    if is_bad(line):
      return number
  return 0


def _bad_fields(line: bytes) -> bool:
  return len(line.split()) != 4


def _bad_values(line: bytes) -> bool:
  fields = line.split()
  try:
    int(fields[0]), int(fields[1]), int(fields[2])
  except ValueError:
    return True
  return fields[3] not in [t.encode() for t in TYPES]


def read_higgs_activity(path: str | None = None) -> HiggsActivity:
  """Parses the (gzipped or plain) activity file with numpy.

  Raises:
    DataError: missing file, a line without exactly 4 fields, a non-integer
      id or time, or an unknown type (named with its line number).
  """
  path = path or default_path()
  if not os.path.isfile(path):
    raise DataError('no such file (the Higgs activity file '
                    f'{DEFAULT_FILE}; set $CYAN_RCBM_DATA)', path=path)
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      raw = f.read()
  except (OSError, EOFError) as e:
    raise DataError(f'cannot read ({e})', path=path) from None
  tokens = raw.split()
  num_lines = sum(1 for line in raw.splitlines() if line.strip())
  if len(tokens) != 4 * num_lines:
    line = _first_bad_line(raw, lambda l: l.strip() and _bad_fields(l))
    raise DataError('expected 4 fields "userA userB unix_time type"',
                    path=path, line=line)
  if not tokens:
    raise DataError('no activity lines', path=path)
  try:
    ints = np.array(tokens[0::4] + tokens[1::4] + tokens[2::4]).astype(np.int64)
  except ValueError:
    line = _first_bad_line(raw, lambda l: l.strip() and _bad_values(l))
    raise DataError('userA, userB and unix_time must be integers', path=path,
                    line=line) from None
  types = np.array(tokens[3::4])
  type_index = np.full(types.shape[0], -1, np.int8)
  for i, name in enumerate(TYPES):
    type_index[types == name.encode()] = i
  if (type_index < 0).any():
    line = _first_bad_line(raw, lambda l: l.strip() and _bad_values(l))
    bad = types[type_index < 0][0].decode(errors='replace')
    raise DataError(f'unknown type {bad!r}; expected one of {TYPES}',
                    path=path, line=line)
  user_a, user_b, time = ints.reshape(3, -1)
  return HiggsActivity(user_a=user_a, user_b=user_b, time=time,
                       type=type_index, path=path)


@dataclasses.dataclass(frozen=True)
class HiggsSamples:
  """Higgs dynamics plus per-sample side information (not part of `x`).

  Attributes:
    dynamics: x float32 [n, 7, T] (`FEATURES`), ids = target user id
      (mode='target') or the window's UTC start (mode='window').
    window_start: int64 [n] Unix seconds at the start of bin 0.
    window_events: int64 [n] actions inside the window.
    later_events: int64 [n] actions after the window: on the target until the
      end of the file (mode='target'), or in the next window of the same
      length (mode='window') — a forecasting target (B7).
    total_lines: int64 [n] lines of the sample in the whole file (the target's
      line count for mode='target'; lines in the window for mode='window').
    bin_seconds: bin width.
  """
  dynamics: Dynamics
  window_start: np.ndarray
  window_events: np.ndarray
  later_events: np.ndarray
  total_lines: np.ndarray
  bin_seconds: int

  def extras(self) -> dict[str, np.ndarray]:
    """The side arrays, for `cyan_rcbm.data.dynamics.write_dynamics`."""
    return {'window_start': self.window_start,
            'window_events': self.window_events,
            'later_events': self.later_events,
            'total_lines': self.total_lines}


def _actions(act: HiggsActivity):
  """Merges lines with equal (userA, userB, second); sorted by time."""
  kind = _KIND_OF_TYPE[act.type]
  order = np.lexsort((kind, act.user_a, act.user_b, act.time))
  a, b, t, k = act.user_a[order], act.user_b[order], act.time[order], kind[order]
  new = np.ones(t.shape[0], bool)
  new[1:] = (np.diff(t) != 0) | (np.diff(b) != 0) | (np.diff(a) != 0)
  return a[new], b[new], t[new], k[new]  # the first of a group has min kind


def _friend_graph(act: HiggsActivity):
  users, dense = np.unique(np.concatenate([act.user_a, act.user_b]),
                           return_inverse=True)
  edges = dense.reshape(2, -1).T
  return users, cascade_dynamics.social_graph(edges, users.shape[0],
                                              symmetric=True)


def _check(mode, bin_seconds, num_bins, peak_bin, min_events, stride_bins):
  if mode not in DEFAULT_BIN_SECONDS:
    raise ConfigError(f"mode must be 'target' or 'window', got {mode!r}")
  for name, value in (('bin_seconds', bin_seconds), ('num_bins', num_bins),
                      ('stride_bins', stride_bins)):
    if int(value) != value or value < 1:
      raise ConfigError(f'{name} must be a positive integer, got {value!r}')
  if mode == 'target' and not 0 <= peak_bin < num_bins:
    raise ConfigError(f'peak_bin must be in [0, num_bins={num_bins}), got '
                      f'{peak_bin!r}')
  if min_events < 0:
    raise ConfigError(f'min_events must be >= 0, got {min_events!r}')


def _iso(seconds: int) -> str:
  return datetime.datetime.fromtimestamp(
      int(seconds), datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def higgs_samples(path: str | None = None, *, mode: str = 'target',
                  bin_seconds: int | None = None, num_bins: int = 60,
                  peak_bin: int = 10, min_events: int = 10,
                  stride_bins: int | None = None,
                  exact_diameter_limit: int = (
                      cascade_dynamics.DEFAULT_EXACT_DIAMETER_LIMIT),
                  activity: HiggsActivity | None = None) -> HiggsSamples:
  """Builds the Higgs samples (module doc) with their side information.

  Args:
    path: the activity file (default: `default_path()`).
    mode: 'target' (one sample per target user) or 'window' (per time window).
    bin_seconds: bin width (default 600 for 'target', 60 for 'window').
    num_bins: T.
    peak_bin: 'target' only: bin index of the target's peak bin.
    min_events: 'target': minimum lines on the target in the whole file;
      'window': minimum actions in the window.
    stride_bins: 'window' only: bins between window starts (default T).
    exact_diameter_limit: number of nodes with an edge up to which the
      diameter is exact (above: 4-sweep lower bound).
    activity: an already parsed file (then `path` is not read).

  Returns:
    The samples, sorted by target id ('target') or start time ('window').
  """
  bin_seconds = bin_seconds or DEFAULT_BIN_SECONDS.get(mode, 1)
  stride_bins = stride_bins or num_bins
  _check(mode, bin_seconds, num_bins, peak_bin, min_events, stride_bins)
  act = activity if activity is not None else read_higgs_activity(path)
  users, graph = _friend_graph(act)
  a, b, t, kind = _actions(act)
  actor = np.searchsorted(users, a)
  if mode == 'target':
    parts = _target_samples(act, a, b, t, bin_seconds, num_bins, peak_bin,
                            min_events)
    desc = (f'mode=target, {bin_seconds}s bins, peak at bin {peak_bin}, '
            f'targets with >= {min_events} lines')
  else:
    parts = _window_samples(act, t, bin_seconds, num_bins, stride_bins,
                            min_events)
    desc = (f'mode=window, {bin_seconds}s bins, stride {stride_bins} bins, '
            f'windows with >= {min_events} actions')
  index, starts, bins, ids, window_start, later, total = parts
  if not ids:
    raise DataError(f'no samples ({desc})', path=act.path)
  x = cascade_dynamics.event_features(
      starts, actor[index], t[index], bins, kind[index], graph,
      num_bins=num_bins, num_kinds=len(KINDS),
      exact_diameter_limit=exact_diameter_limit)
  inside = (bins >= 0) & (bins < num_bins)
  sample = np.repeat(np.arange(len(ids)), np.diff(starts))
  window_events = np.bincount(sample[inside], minlength=len(ids))
  dyn = Dynamics(x=x, feature_names=list(FEATURES), ids=ids,
                 source=f'higgs({act.path}; {desc})')
  return HiggsSamples(dynamics=dyn, window_start=window_start,
                      window_events=window_events.astype(np.int64),
                      later_events=later, total_lines=total,
                      bin_seconds=int(bin_seconds))


def _target_samples(act, a, b, t, bin_seconds, num_bins, peak_bin, min_events):
  targets, lines = act.target_counts()
  enough = lines >= min_events
  # Targets that only act on themselves have an empty sample: left out.
  enough &= np.isin(targets, b[a != b])
  chosen = targets[enough]
  keep = np.flatnonzero(np.isin(b, chosen) & (a != b))
  index = keep[np.lexsort((np.arange(keep.shape[0]), t[keep], b[keep]))]
  sample = np.searchsorted(chosen, b[index])
  starts = np.searchsorted(sample, np.arange(chosen.shape[0] + 1))
  q = t[index] // bin_seconds
  pair, counts = np.unique(np.stack([sample, q]), axis=1, return_counts=True)
  best = np.lexsort((pair[1], -counts, pair[0]))  # per sample: max, earliest
  first_of_sample = np.searchsorted(pair[0][best], np.arange(chosen.shape[0]))
  peak = pair[1][best][first_of_sample]
  origin = peak - peak_bin
  bins = q - origin[sample]
  later = np.bincount(sample[bins >= num_bins], minlength=chosen.shape[0])
  ids = [str(u) for u in chosen]
  total = lines[enough].astype(np.int64)
  return (index, starts, bins, ids, origin * bin_seconds,
          later.astype(np.int64), total)


def _window_samples(act, t, bin_seconds, num_bins, stride_bins, min_events):
  span = bin_seconds * num_bins
  origin = (act.time.min() // span) * span
  window_starts = np.arange(origin, act.time.max() + 1, stride_bins * bin_seconds)
  lo = np.searchsorted(t, window_starts)
  hi = np.searchsorted(t, window_starts + span)
  later = np.searchsorted(t, window_starts + 2 * span) - hi
  keep = (hi - lo) >= max(min_events, 1)
  lo, hi, later, window_starts = lo[keep], hi[keep], later[keep], window_starts[keep]
  sizes = hi - lo
  starts = np.concatenate([[0], np.cumsum(sizes)])
  index = np.repeat(lo - starts[:-1], sizes) + np.arange(starts[-1])
  sample = np.repeat(np.arange(sizes.shape[0]), sizes)
  bins = (t[index] - window_starts[sample]) // bin_seconds
  line_times = np.sort(act.time)
  total = (np.searchsorted(line_times, window_starts + span)
           - np.searchsorted(line_times, window_starts))
  ids = [_iso(s) for s in window_starts]
  return (index, starts, bins, ids, window_starts.astype(np.int64),
          later.astype(np.int64), total.astype(np.int64))


def higgs_dynamics(path: str | None = None, *, mode: str = 'target',
                   **kwargs) -> Dynamics:
  """`higgs_samples(path, mode=mode, **kwargs).dynamics` (interface D)."""
  return higgs_samples(path, mode=mode, **kwargs).dynamics
