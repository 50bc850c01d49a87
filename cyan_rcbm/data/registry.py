"""Built-in data sets and `load_splits(config.data) -> Splits`.

`config.data.name` picks a built-in set (`BUILTIN`: the shipped files under
`data_root()`, or a synthetic set generated on first use and cached), or
'' for a user's own file (`config.data.path` / `format` / `graph`). The
fields of `config.data` are documented in `configs/cyan.py` and
docs/data.md; `DEFAULTS` holds their default values (a field missing
from the config takes its default).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from typing import Any, Mapping

import ml_collections
import numpy as np

from cyan_rcbm.data import readers
from cyan_rcbm.data import splits as splits_lib
from cyan_rcbm.data.types import CascadeDataset
from cyan_rcbm.errors import ConfigError, DataError

SPLITS = ('random', 'chronological', 'given')
DEFAULTS: dict[str, Any] = dict(
    name='cyanrnn_cp_exp', path='', format='', graph='',
    graph_direction='forward', split='random',
    split_fractions=(0.8, 0.1, 0.1), split_seed=0, min_length=2,
    duplicate_users='first', lenient=False, time_scale=1.0, max_events=0,
    num_cascades=0, subsample=0)
# time_scale -> name of the unit the times are then in.
_SCALED_UNITS = {('seconds', 60.0): 'minutes', ('seconds', 3600.0): 'hours',
                 ('seconds', 86400.0): 'days'}


@dataclasses.dataclass(frozen=True)
class Builtin:
  """A shipped data set (paths relative to `data_root()`).

  Attributes:
    files: split name ('train', 'valid', 'test', or 'all' for one file) ->
      cascade file.
    format: one of `readers.FORMATS`.
    graph: the edge-list file, or None.
    time_unit: unit of the file's times.
    natural_split: the split the set is used with in its papers.
    lenient: read leniently because the shipped file has a known defect
      (logged with its line).
    num_users: > 0: tokens '0'..'num_users-1' get dense ids equal to their
      value (the authors' synthetic users are already 0..31).
    synthetic: (network, delay) of a generated set, else None.
    note: where it comes from.
  """
  files: Mapping[str, str]
  format: str
  graph: str | None
  time_unit: str
  natural_split: str
  lenient: bool = False
  num_users: int = 0
  synthetic: tuple[str, str] | None = None
  note: str = ''


def _cyanrnn(kind: str) -> Builtin:
  stem = f'cyanrnn-synthetic/net32-{kind}-exp-cascades'
  return Builtin(
      files={'train': f'{stem}.train', 'valid': f'{stem}.val',
             'test': f'{stem}.test'},
      format='cyanrnn', graph=None, time_unit='units', natural_split='given',
      num_users=32, note=f'CYAN-RNN authors\' {kind}-exp synthetic cascades')


def _synthetic(network: str, delay: str) -> Builtin:
  return Builtin(files={}, format='jsonl', graph=None, time_unit='units',
                 natural_split='random', synthetic=(network, delay),
                 note=f'generated: {network} network, {delay} delays')


BUILTIN: dict[str, Builtin] = {
    'cyanrnn_cp_exp': _cyanrnn('cp'),
    'cyanrnn_random_exp': _cyanrnn('random'),
    'twitter': Builtin(
        files={'all': 'twitter/cascades.txt'}, format='forest', graph=None,
        time_unit='seconds', natural_split='random', lenient=True,
        note='MS-HGAT Twitter URL cascades, Unix times; the last line ends in '
        'a truncated chunk (user 17892 without a time), dropped and logged'),
    'android': Builtin(
        files={'all': 'android/cascades.txt'}, format='forest',
        graph='android/edges.txt', time_unit='seconds',
        natural_split='random', note='MS-HGAT Stack Exchange android'),
    'christianity': Builtin(
        files={'all': 'christianity/cascades.txt'}, format='forest',
        graph='christianity/edges.txt', time_unit='seconds',
        natural_split='random', note='MS-HGAT Stack Exchange christianity'),
    'topolstm_twitter': Builtin(
        files={'train': 'topolstm-twitter/train.txt',
               'test': 'topolstm-twitter/test.txt'},
        format='topolstm', graph='topolstm-twitter/graph.txt',
        time_unit='seconds', natural_split='given',
        note='Topo-LSTM Twitter with follower graph (train/test only: valid '
        'is carved from train)'),
    'synthetic_cp_exp': _synthetic('cp', 'exp'),
    'synthetic_cp_ray': _synthetic('cp', 'ray'),
    'synthetic_random_exp': _synthetic('random', 'exp'),
    'synthetic_random_ray': _synthetic('random', 'ray'),
    'synthetic_weibo': Builtin(
        files={}, format='jsonl', graph=None, time_unit='units',
        natural_split='random', synthetic=('weibo', 'exp'),
        note='generated at the paper\'s Weibo scale (596,088 cascades, '
        '2,964 users, lengths up to 1,000; cyan_rcbm/data/weibo_scale.py)'),
    'synthetic_large': Builtin(
        files={}, format='jsonl', graph=None, time_unit='units',
        natural_split='random', synthetic=('large', 'exp'),
        note='generated like synthetic_weibo with 12,000 users and lengths '
        'up to 2,000 (20,000 cascades by default): a large-vocabulary '
        'benchmark set'),
}


def data_root() -> str:
  """$CYAN_RCBM_DATA, else `<repo>/../shared/data`."""
  root = os.environ.get('CYAN_RCBM_DATA')
  if not root:
    repo = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    root = os.path.join(os.path.dirname(repo), 'shared', 'data')
  if not os.path.isdir(root):
    raise DataError('data directory not found: set $CYAN_RCBM_DATA to the '
                    'folder holding the shipped data sets', path=root)
  return root


def cache_dir() -> str:
  """$CYAN_RCBM_CACHE, else ~/.cache/cyan_rcbm (generated data sets)."""
  return os.environ.get('CYAN_RCBM_CACHE') or os.path.join(
      os.path.expanduser('~'), '.cache', 'cyan_rcbm')


def _log(message: str, *args) -> None:
  """One readable line on stdout (what was read, split and dropped)."""
  print('[data] ' + (message % args if args else message), flush=True)


def _field(cfg, key: str):
  return cfg[key] if key in cfg else DEFAULTS[key]


def check_data_config(cfg) -> dict[str, Any]:
  """Reads and checks every field of `config.data`; returns their values."""
  s = {k: _field(cfg, k) for k in DEFAULTS}
  if s['split'] not in SPLITS:
    raise ConfigError(f'data.split={s["split"]!r} is not one of {SPLITS}.')
  s['split_fractions'] = splits_lib.check_fractions(s['split_fractions'])
  for key in ('split_seed', 'max_events', 'num_cascades', 'subsample'):
    v = s[key]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
      raise ConfigError(f'data.{key}={v!r} must be an integer >= 0.')
  scale = s['time_scale']
  if (isinstance(scale, bool) or not isinstance(scale, (int, float))
      or not np.isfinite(scale) or scale <= 0):
    raise ConfigError(f'data.time_scale={scale!r} must be a number > 0.')
  if s['name'] and s['name'] not in BUILTIN:
    raise ConfigError(f'data.name={s["name"]!r} is not a built-in set; valid: '
                      f'{sorted(BUILTIN)} (or \'\' with data.path/format).')
  if not s['name'] and (not s['path'] or not s['format']):
    raise ConfigError('data.name is \'\', so data.path and data.format must '
                      'name your cascade file and its format '
                      f'{readers.FORMATS}.')
  readers.ReadOptions(min_length=s['min_length'],  # checks these fields
                      duplicate_users=s['duplicate_users'],
                      graph_direction=s['graph_direction'])
  synthetic = s['name'] and BUILTIN[s['name']].synthetic
  if s['num_cascades'] and not synthetic:
    raise ConfigError(f'data.num_cascades={s["num_cascades"]} applies only to '
                      'the synthetic_* sets; use data.subsample to shorten '
                      'training data.')
  return s


def _options(s: Mapping[str, Any], builtin: Builtin | None
             ) -> readers.ReadOptions:
  return readers.ReadOptions(
      min_length=s['min_length'], duplicate_users=s['duplicate_users'],
      lenient=bool(s['lenient'] or (builtin is not None and builtin.lenient)),
      time_unit=builtin.time_unit if builtin else None,
      graph_direction=s['graph_direction'])


def _read_files(files: Mapping[str, str], fmt: str, graph: str | None,
                options: readers.ReadOptions, vocab: dict[str, int]
                ) -> tuple[dict[str, CascadeDataset], np.ndarray | None]:
  """Reads every file with one vocab, then the graph; logs each report."""
  out = {}
  for part, path in files.items():
    ds, report = readers.read_cascades(path, fmt, vocab=vocab,
                                       options=options)
    _log('read %s', report.summary())
    for line, what in report.malformed:
      _log('%s:%d: dropped (lenient): %s', path, line, what)
    out[part] = ds
  edges = None
  if graph:
    report = readers.ReadReport(path=graph, format=fmt)
    edges = readers.read_graph(graph, fmt, vocab, options=options,
                               report=report)
    _log('read graph %s: %d edge lines, %d edges (%s); %d '
                 'graph-only users added, %d duplicate edges removed, %d self '
                 'loops', graph, report.edges_read, report.edges,
                 options.graph_direction, report.graph_users_added,
                 report.duplicate_edges, report.self_loops)
  return out, edges


def _synthetic_dataset(s: Mapping[str, Any], builtin: Builtin
                       ) -> CascadeDataset:
  """Generates (or loads from the cache) a synthetic set (equations.md A2)."""
  from cyan_rcbm.data import synthetic  # pylint: disable=g-import-not-at-top
  network, delay = builtin.synthetic
  if network in weibo_scale_sizes():
    return _weibo_scale_dataset(s, network)
  num = s['num_cascades'] or 20000
  seed = int(s['split_seed'])
  version = getattr(synthetic, 'GENERATOR_VERSION', 0)
  key = f'{network}-{delay}-n{num}-seed{seed}-v{version}'
  out_dir = os.path.join(cache_dir(), f'synthetic-{key}')
  if not os.path.isdir(out_dir):
    _log('generating synthetic %s (cached in %s)', key, out_dir)
    made = synthetic.make_synthetic(network, delay, num_cascades=num,
                                    seed=seed)
    os.makedirs(cache_dir(), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=cache_dir(), prefix='.tmp-')
    try:
      synthetic.save_synthetic(made, tmp)
      try:
        os.rename(tmp, out_dir)
      except OSError:  # another process cached it first
        if not os.path.isdir(out_dir):
          raise
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
  try:
    return synthetic.load_synthetic(out_dir).dataset
  except DataError as e:
    raise DataError(f'cached synthetic set is unreadable ({e}); delete the '
                    'folder to regenerate it', path=out_dir) from None


def weibo_scale_sizes() -> dict[str, dict[str, int]]:
  """Generated sets of `cyan_rcbm.data.weibo_scale`: their default sizes."""
  return {'weibo': dict(num_cascades=596_088, num_users=2_964,
                        max_length=1_000),
          'large': dict(num_cascades=20_000, num_users=12_000,
                        max_length=2_000)}


def _weibo_scale_dataset(s: Mapping[str, Any], kind: str) -> CascadeDataset:
  """Generates (or loads from the cache) a `weibo_scale` set."""
  from cyan_rcbm.data import weibo_scale  # pylint: disable=g-import-not-at-top
  sizes = dict(weibo_scale_sizes()[kind])
  num = s['num_cascades'] or sizes['num_cascades']
  del sizes['num_cascades']
  seed = int(s['split_seed'])
  path = os.path.join(cache_dir(), f'{kind}-scale-n{num}-seed{seed}-v'
                      f'{weibo_scale.GENERATOR_VERSION}.npz')
  if not os.path.exists(path):
    _log('generating the Weibo-scale set (%d cascades; cached in %s)', num,
         path)
    os.makedirs(cache_dir(), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir(), prefix='.tmp-', suffix='.npz')
    os.close(fd)
    try:
      weibo_scale.save(weibo_scale.generate(num, seed=seed, **sizes), tmp)
      os.replace(tmp, path)
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)
  return weibo_scale.load(path)


def _filter_short(ds: CascadeDataset, min_length: int) -> CascadeDataset:
  kept = tuple(c for c in ds.cascades if len(c) >= min_length)
  if len(kept) < len(ds):
    _log('dropped %d cascades shorter than min_length=%d',
                 len(ds) - len(kept), min_length)
  return dataclasses.replace(ds, cascades=kept)


def _prefixed(ds: CascadeDataset, prefix: str) -> CascadeDataset:
  cascades = tuple(dataclasses.replace(c, id=f'{prefix}:{c.id}')
                   for c in ds.cascades)
  return dataclasses.replace(ds, cascades=cascades)


def _scale_times(ds: CascadeDataset, scale: float) -> CascadeDataset:
  cascades = tuple(dataclasses.replace(c, times=c.times / scale)
                   for c in ds.cascades)
  unit = _SCALED_UNITS.get((ds.time_unit, float(scale)),
                           f'{ds.time_unit} / {scale:g}')
  return dataclasses.replace(ds, cascades=cascades, time_unit=unit)


def _given_files(s: Mapping[str, Any], builtin: Builtin | None
                 ) -> dict[str, str]:
  if builtin is not None:
    root = data_root()
    return {k: os.path.join(root, v) for k, v in builtin.files.items()}
  path = s['path']
  if '{split}' in path:
    files = {k: path.format(split=k) for k in ('train', 'valid', 'test')}
    if not os.path.exists(files['valid']):
      del files['valid']
    return files
  return {'all': path}


def load_splits(data_config: ml_collections.ConfigDict) -> splits_lib.Splits:
  """Reads the data set `config.data` names and splits it.

  * built-in sets (`BUILTIN`) or a user's file (`name=''`, `path`, `format`,
    optional `graph`; a `path` containing '{split}' names train/valid/test
    files for `split='given'`);
  * `split`: 'random' (seeded by `split_seed`), 'chronological' (by first
    event) or 'given' (the set's own files; when there is no valid file, it
    is carved at random from train with `split_seed`, its size
    `f_valid / (f_train + f_valid)` of train);
  * `min_length`, `duplicate_users`, `lenient`, `graph_direction`: see
    `readers.ReadOptions`; `time_scale` divides every time; `subsample > 0`
    keeps the first N train cascades; `num_cascades` sizes synthetic sets
    (0: 20,000); `max_events` is applied by batching, not here.

  All three splits share one vocab and the same edges. One log line per
  split, plus what was dropped.
  """
  s = check_data_config(data_config)
  builtin = BUILTIN[s['name']] if s['name'] else None
  label = s['name'] or s['path']
  if builtin is not None and builtin.synthetic:
    if s['split'] == 'given':
      raise ConfigError(f'data.split=\'given\': {s["name"]} has no given '
                        'split; use \'random\' (equations.md A2) or \'chronological\'.')
    full = _filter_short(_synthetic_dataset(s, builtin), s['min_length'])
    parts, edges = {'all': full}, full.edges
  else:
    files = _given_files(s, builtin)
    if s['split'] == 'given' and 'train' not in files:
      raise ConfigError(
          f'data.split=\'given\': {label} is a single file with no given '
          'split; use \'random\' or \'chronological\', or (a file of your '
          'own) put {split} in data.path for train/valid/test files.')
    vocab = ({str(i): i for i in range(builtin.num_users)}
             if builtin is not None else {})
    fmt = builtin.format if builtin is not None else s['format']
    graph = (os.path.join(data_root(), builtin.graph)
             if builtin is not None and builtin.graph else s['graph'] or None)
    parts, edges = _read_files(files, fmt, graph, _options(s, builtin), vocab)
    tokens = readers.vocab_tokens(vocab)
    parts = {k: dataclasses.replace(v, vocab=tokens, edges=edges)
             for k, v in parts.items()}
  if s['split'] == 'given':
    f_train, f_valid, _ = s['split_fractions']
    train = parts['train']
    valid = parts.get('valid')
    if valid is None:
      carve = f_valid / (f_train + f_valid) if f_train + f_valid else 0.0
      carved = splits_lib.random_split(train, (1 - carve, carve, 0.0),
                                       seed=s['split_seed'])
      train, valid = carved.train, carved.valid
      _log('%s has no valid file: %d of its train cascades '
                   'become valid (fraction %.3f, split_seed=%d)', label,
                   len(valid), carve, s['split_seed'])
    result = splits_lib.Splits(train, valid, parts['test'])
  else:
    if len(parts) == 1:
      full = next(iter(parts.values()))
    else:  # pool the given files (ids prefixed by file: they may collide)
      pooled = [_prefixed(p, k) for k, p in parts.items()]
      full = dataclasses.replace(
          pooled[0], cascades=tuple(c for p in pooled for c in p.cascades),
          source=label)
    if s['split'] == 'random':
      result = splits_lib.random_split(full, s['split_fractions'],
                                       seed=s['split_seed'])
    else:
      result = splits_lib.chronological_split(full, s['split_fractions'])
  if s['time_scale'] != 1.0:
    result = splits_lib.Splits(*(_scale_times(d, s['time_scale'])
                                 for _, d in result.items()))
  if s['subsample'] and s['subsample'] < len(result.train):
    _log('subsample=%d keeps the first %d of %d train cascades',
                 s['subsample'], s['subsample'], len(result.train))
    result = dataclasses.replace(result, train=splits_lib.subset(
        result.train, range(s['subsample'])))
  if not len(result.train):
    raise DataError('no training cascades left (see the [data] lines above '
                    'for what was read and dropped)', path=label)
  for part, ds in result.items():
    _log('%s %s: %d cascades, %d events, %d users in vocab, '
                 '%s edges, times in %s', label, part, len(ds), ds.num_events,
                 ds.num_users, 'no' if ds.edges is None else len(ds.edges),
                 ds.time_unit)
  _check_split_sizes(s, result, label)
  return result


def _check_split_sizes(s: Mapping[str, Any], result: splits_lib.Splits,
                       label: str) -> None:
  """Every split the run uses can be scored (`splits.check_sizes`)."""
  f_train, f_valid, f_test = s['split_fractions']
  total = sum(len(d) for _, d in result.items())
  if s['split'] == 'given':
    needed = {'train': True, 'valid': f_valid > 0, 'test': True}
    how = f"data.split='given' ({total} cascades in the given files)"
  else:
    needed = {'train': True, 'valid': f_valid > 0, 'test': f_test > 0}
    how = (f'data.split={s["split"]!r}, data.split_fractions='
           f'{tuple(s["split_fractions"])} on {total} cascades')
  for warning in splits_lib.check_sizes(result, needed, how, label):
    _log('%s', warning)
