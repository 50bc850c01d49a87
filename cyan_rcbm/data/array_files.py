"""Arrays from `.npy` and `.npz` files, memory-mapped where the file allows.

`open_arrays(path)` reads a plain `.npy` (one array, returned as `x`) or an
`.npz` archive (its arrays by name). Large arrays are not read into memory:
a `.npy`, and an `.npz` member stored without compression (`np.savez`, not
`np.savez_compressed`), come back as read-only `np.memmap`s, so that taking
a subset of samples reads only those. Compressed members are read in full.
The kind of file is told by its first bytes, not by its name.
"""

from __future__ import annotations

import struct
import zipfile

import numpy as np

from cyan_rcbm.errors import DataError

_NPY_MAGIC = b'\x93NUMPY'
_ZIP_MAGIC = b'PK'
_LOCAL_HEADER = 30  # bytes of a zip local file header before name and extra


def _header(f):
  """(shape, fortran_order, dtype) of the .npy stream at `f`'s position."""
  version = np.lib.format.read_magic(f)
  if version == (1, 0):
    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
  else:
    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
  return shape, fortran, dtype


def _memmap(path: str, offset: int, shape, fortran: bool, dtype):
  if dtype.hasobject:
    raise ValueError('object arrays cannot be read without pickle')
  if not shape or 0 in shape:
    return np.zeros(shape, dtype)
  return np.memmap(path, dtype=dtype, mode='r', shape=shape,
                   order='F' if fortran else 'C', offset=offset)


def _npy(path: str) -> dict[str, np.ndarray]:
  with open(path, 'rb') as f:
    shape, fortran, dtype = _header(f)
    offset = f.tell()
  return {'x': _memmap(path, offset, shape, fortran, dtype)}


def _npz_member(path: str, zf: zipfile.ZipFile, name: str) -> np.ndarray:
  info = zf.getinfo(name)
  if info.compress_type != zipfile.ZIP_STORED:
    with zf.open(name) as f:
      return np.lib.format.read_array(f, allow_pickle=False)
  with open(path, 'rb') as f:
    f.seek(info.header_offset)
    local = f.read(_LOCAL_HEADER)
    name_len, extra_len = struct.unpack('<HH', local[26:30])
    f.seek(info.header_offset + _LOCAL_HEADER + name_len + extra_len)
    shape, fortran, dtype = _header(f)
    offset = f.tell()
  return _memmap(path, offset, shape, fortran, dtype)


def _npz(path: str) -> dict[str, np.ndarray]:
  with zipfile.ZipFile(path) as zf:
    return {name[:-len('.npy')]: _npz_member(path, zf, name)
            for name in zf.namelist() if name.endswith('.npy')}


def open_arrays(path: str) -> dict[str, np.ndarray]:
  """Name -> array of an `.npz`, or `{'x': array}` of a `.npy` (module doc).

  Raises:
    DataError: the file is missing, neither kind, or unreadable.
  """
  try:
    with open(path, 'rb') as f:
      magic = f.read(len(_NPY_MAGIC))
  except FileNotFoundError:
    raise DataError('no such file', path=path) from None
  except OSError as e:
    raise DataError(f'cannot open ({e.strerror})', path=path) from None
  try:
    if magic.startswith(_NPY_MAGIC):
      return _npy(path)
    if magic.startswith(_ZIP_MAGIC):
      return _npz(path)
  except (zipfile.BadZipFile, OSError, ValueError, EOFError,
          struct.error) as e:
    raise DataError(f'cannot read as .npz / .npy ({e})', path=path) from None
  raise DataError('not an .npz archive nor an .npy file (expected an .npz '
                  'with x [num_samples, num_features, length], or an .npy '
                  'holding x)', path=path)
