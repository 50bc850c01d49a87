"""Dynamics sample sets for RCBM (equations.md B1): validation and .npz files.

A sample set is `x` [n, D, T]: n samples ("social dynamics") of D features over
T time steps. On disk it is a plain `.npy` holding `x`, or an `.npz` archive
with the keys

* `x`: float [n, D, T] (required);
* `feature_names`: str [D] (optional, default `f0 .. f{D-1}`);
* `ids`: str [n] (optional, default `0 .. n-1`);
* `source`: str scalar (optional);
* `extra_<name>`: optional per-sample side arrays [n, ...] that are *not* part
  of `x` (e.g. a forecasting target); see `read_extras`.

Every problem a user can fix (missing file or key, wrong rank, empty set,
non-finite values, names that do not match the shape) raises
`cyan_rcbm.errors.DataError` naming the file, the sample and the feature.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from typing import Mapping, Sequence

import numpy as np

from cyan_rcbm.common import files
from cyan_rcbm.data import array_files
from cyan_rcbm.data.types import Dynamics
from cyan_rcbm.errors import DataError

_EXTRA_PREFIX = 'extra_'


def _path_or_none(source: str) -> str | None:
  return source or None


def validate_dynamics(x: np.ndarray | Dynamics, *, source: str = '',
                      feature_names: Sequence[str] | None = None,
                      ids: Sequence[str] | None = None) -> None:
  """Checks a dynamics array (equations.md B1) and raises `DataError` if it is
  unusable.

  Args:
    x: [n, D, T] samples, or a `Dynamics` (then its names, ids and source are
      checked too unless given here).
    source: the file or generator the data came from, used in messages.
    feature_names: optional D names, used in messages and checked for length.
    ids: optional n sample ids, used in messages and checked for length.

  Raises:
    DataError: x is not numeric, its rank is not 3, it has no samples, no
      features or zero length, it holds NaN or +-inf, or feature_names / ids
      do not match its shape.
  """
  if isinstance(x, Dynamics):
    feature_names = x.feature_names if feature_names is None else feature_names
    ids = x.ids if ids is None else ids
    source = source or x.source
    x = x.x
  path = _path_or_none(source)
  try:
    x = np.asarray(x)
  except (ValueError, TypeError) as e:
    raise DataError(f'x is not a numeric array ({e})', path=path) from None
  if not (np.issubdtype(x.dtype, np.floating)
          or np.issubdtype(x.dtype, np.integer)
          or x.dtype == np.bool_):
    raise DataError(f'x has dtype {x.dtype}, expected a numeric array',
                    path=path)
  if x.ndim != 3:
    raise DataError(
        f'x has shape {tuple(x.shape)} (rank {x.ndim}); expected rank 3 '
        '[num_samples, num_features, length]', path=path)
  n, d, t = x.shape
  if n == 0:
    raise DataError(f'empty sample set: x has shape {tuple(x.shape)}',
                    path=path)
  if d == 0:
    raise DataError(f'x has no features: shape {tuple(x.shape)}', path=path)
  if t == 0:
    raise DataError(f'samples have zero length: x has shape {tuple(x.shape)}',
                    path=path)
  if feature_names is not None and len(feature_names) != d:
    raise DataError(
        f'{len(feature_names)} feature_names for {d} features (x has shape '
        f'{tuple(x.shape)})', path=path)
  if ids is not None and len(ids) != n:
    raise DataError(
        f'{len(ids)} ids for {n} samples (x has shape {tuple(x.shape)})',
        path=path)
  if np.issubdtype(x.dtype, np.floating):
    first, count = _non_finite(x)
    if count:
      i, j, k = first
      sample = repr(str(ids[i])) if ids is not None else str(i)
      feature = repr(str(feature_names[j])) if feature_names is not None else str(j)
      more = f'; {count} non-finite values in all' if count > 1 else ''
      raise DataError(
          f'x[{i}, {j}, {k}] is {x[i, j, k]} (sample {sample}, feature '
          f'{feature}){more}', path=path)


def _non_finite(x_NxDxT: np.ndarray, block: int = 1 << 22
                ) -> tuple[tuple[int, int, int] | None, int]:
  """(index of the first, count of) non-finite entries, read in blocks of
  samples (a memory-mapped `x` is streamed, not loaded)."""
  rows = max(1, block // max(1, x_NxDxT[0].size))
  first, count = None, 0
  for start in range(0, x_NxDxT.shape[0], rows):
    bad = ~np.isfinite(x_NxDxT[start:start + rows])
    n = int(bad.sum())
    if n and first is None:
      i, j, k = (int(v) for v in np.argwhere(bad)[0])
      first = (start + i, j, k)
    count += n
  return first, count


def read_dynamics(path: str, *, dtype: np.dtype | type | None = np.float32
                  ) -> Dynamics:
  """Reads and validates a sample set: an .npz (module docstring) or an .npy.

  A plain `.npy` holds `x` alone. Arrays are memory-mapped where the file
  allows (`cyan_rcbm.data.array_files`): with `dtype=None`, `x` keeps the
  stored dtype and stays on disk until used (subsets read only their part).

  Args:
    path: the .npz or .npy file (told apart by content, not name).
    dtype: float dtype of the returned `x` (float32 by default; None: as
      stored, memory-mapped where possible).

  Returns:
    The validated `Dynamics`; `source` is the stored source, else `path`.

  Raises:
    DataError: missing or unreadable file, no key `x`, or any problem
      `validate_dynamics` finds.
  """
  arrays = array_files.open_arrays(path)
  if 'x' not in arrays:
    raise DataError(
        f'no array "x" in the archive (keys: {sorted(arrays) or "none"}); '
        'expected x [num_samples, num_features, length]', path=path)
  x = arrays['x']
  try:
    names = ([str(s) for s in arrays['feature_names']]
             if 'feature_names' in arrays else None)
    ids = [str(s) for s in arrays['ids']] if 'ids' in arrays else None
    source = str(arrays['source']) if 'source' in arrays else ''
  except TypeError as e:
    raise DataError(f'feature_names / ids / source are not arrays of text '
                    f'({e})', path=path) from None
  validate_dynamics(x, source=path, feature_names=names, ids=ids)
  if names is None:
    names = [f'f{j}' for j in range(x.shape[1])]
  if ids is None:
    ids = [str(i) for i in range(x.shape[0])]
  if dtype is not None:
    x = np.asarray(x, dtype=dtype)
  return Dynamics(x=x, feature_names=names, ids=ids, source=source or path)


def read_extras(path: str) -> dict[str, np.ndarray]:
  """Returns the per-sample side arrays (`extra_<name>` keys) of an .npz set."""
  if not os.path.isfile(path):
    raise DataError('no such file', path=path)
  with np.load(path, allow_pickle=False) as z:
    return {k[len(_EXTRA_PREFIX):]: z[k] for k in z.files
            if k.startswith(_EXTRA_PREFIX)}


def write_dynamics(d: Dynamics, path: str,
                   extras: Mapping[str, np.ndarray] | None = None) -> None:
  """Validates `d` and writes it atomically as a compressed .npz archive.

  Args:
    d: the sample set.
    path: destination file (written as given, even without `.npz`).
    extras: optional per-sample side arrays, each with leading dimension n,
      stored as `extra_<name>` (not part of `x`).

  Raises:
    DataError: `d` fails `validate_dynamics` or an extra has the wrong length.
  """
  validate_dynamics(d, source=path)
  arrays = {
      'x': np.asarray(d.x),
      'feature_names': np.asarray([str(s) for s in d.feature_names], dtype=np.str_),
      'ids': np.asarray([str(s) for s in d.ids], dtype=np.str_),
      'source': np.asarray(str(d.source), dtype=np.str_),
  }
  for name, value in (extras or {}).items():
    value = np.asarray(value)
    if value.ndim == 0 or value.shape[0] != d.num_samples:
      raise DataError(
          f'extra {name!r} has shape {value.shape}; expected leading '
          f'dimension {d.num_samples} (one entry per sample)', path=path)
    arrays[_EXTRA_PREFIX + name] = value
  write_npz_atomic(path, arrays, compressed=True)


def write_npz_atomic(path: str, arrays: Mapping[str, np.ndarray], *,
                     compressed: bool) -> None:
  """Writes `arrays` as an .npz archive at `path`, atomically.

  The archive goes to a temporary file in the destination folder (created if
  needed) and replaces `path` only when complete, so a reader never sees a
  partial file.

  Args:
    path: destination file (written as given, even without `.npz`).
    arrays: name -> array.
    compressed: `np.savez_compressed` instead of `np.savez`.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, suffix='.npz.tmp')
  save = np.savez_compressed if compressed else np.savez
  try:
    files.open_mode_like(fd)  # mkstemp's 0600 -> what open() gives
    with os.fdopen(fd, 'wb') as f:
      save(f, **arrays)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
