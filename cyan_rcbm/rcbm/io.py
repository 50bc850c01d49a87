"""Saving and loading a trained RCBM (`model.npz`: arrays plus JSON meta).

The file holds, per level l (1-based), `level<l>_w` [K, D, Tw] and
`level<l>_strength` [K]; `scale` [D]; and `meta`, a JSON string with the
feature names, each level's sigma, beta, lam and pooling factor, the
inference settings and the training config. `load_model` checks all of it
and raises `DataError` naming the file and the problem.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile

import numpy as np

from cyan_rcbm.data import dynamics as dynamics_lib
from cyan_rcbm.errors import DataError
from cyan_rcbm.rcbm import rcbm as rcbm_lib

MODEL_FILE = 'model.npz'
_FORMAT = 'cyan_rcbm.rcbm/1'


def _meta(model: rcbm_lib.RCBM) -> dict:
  return {
      'format': _FORMAT,
      'feature_names': list(model.feature_names),
      'levels': [{'sigma': lv.sigma, 'beta': lv.beta, 'lam': lv.lam,
                  'pool': lv.pool} for lv in model.levels],
      'inference': dataclasses.asdict(model.inference),
      'config': model.config,
  }


def save_model(model: rcbm_lib.RCBM, path: str) -> str:
  """Writes the model to `path` (a file, or a directory to hold `model.npz`).

  Returns:
    The file written.
  """
  if os.path.isdir(path):
    path = os.path.join(path, MODEL_FILE)
  arrays = {'scale': np.asarray(model.scale, np.float64),
            'meta': np.asarray(json.dumps(_meta(model), default=_jsonable))}
  for i, lv in enumerate(model.levels):
    arrays[f'level{i + 1}_w'] = np.asarray(lv.w)
    arrays[f'level{i + 1}_strength'] = np.asarray(lv.strength)
  dynamics_lib.write_npz_atomic(path, arrays, compressed=False)
  return path


def _jsonable(value):
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  raise TypeError(f'not JSON serialisable: {type(value).__name__}')


def load_model(path: str) -> rcbm_lib.RCBM:
  """Reads a model written by `save_model` (a file or its directory).

  Raises:
    DataError: missing or unreadable file, or inconsistent contents.
  """
  if os.path.isdir(path):
    path = os.path.join(path, MODEL_FILE)
  if not os.path.isfile(path):
    raise DataError('no such model file', path=path)
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays['meta']))
  except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as e:
    raise DataError(f'cannot read as an RCBM model ({e})', path=path) from None
  if meta.get('format') != _FORMAT:
    raise DataError(f'unknown model format {meta.get("format")!r}; expected '
                    f'{_FORMAT!r}', path=path)
  levels = []
  for i, lm in enumerate(meta['levels']):
    try:
      w = arrays[f'level{i + 1}_w']
      strength = arrays[f'level{i + 1}_strength']
    except KeyError:
      raise DataError(f'missing arrays of level {i + 1}', path=path) from None
    if w.ndim != 3 or not np.all(np.isfinite(w)):
      raise DataError(f'level {i + 1} filters are not a finite [K, D, Tw] '
                      f'array (shape {w.shape})', path=path)
    if i > 0 and w.shape[1] != levels[-1].num_filters:
      raise DataError(f'level {i + 1} filters have {w.shape[1]} rows; level '
                      f'{i} has {levels[-1].num_filters} filters', path=path)
    levels.append(rcbm_lib.Level(
        w=w, sigma=float(lm['sigma']), beta=float(lm['beta']),
        lam=float(lm['lam']), pool=int(lm['pool']), strength=strength))
  names = tuple(meta['feature_names'])
  scale = arrays['scale']
  if not levels or len(names) != levels[0].num_features or (
      scale.shape != (len(names),)):
    raise DataError('feature names, scale and level-1 filters disagree on '
                    'the number of features', path=path)
  return rcbm_lib.RCBM(
      levels=tuple(levels), feature_names=names, scale=scale,
      inference=rcbm_lib.InferenceSettings(**meta['inference']),
      config=meta.get('config', {}))
