"""Results and models cached under `--out_dir`, keyed by the mode's settings.

`<name>.json` holds `{'settings': <settings key>, 'value': ...}`;
`models/<name>.npz` a fitted RCBM with its key in `<name>.npz.settings`. A
cache made with other settings is ignored (and recomputed).
"""

from __future__ import annotations

import dataclasses
import json
import os

from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.experiments.rcbm.plan import Plan, log
from cyan_rcbm.rcbm import io as io_lib
from cyan_rcbm.rcbm import rcbm as rcbm_lib


def settings_key(plan: Plan) -> str:
  """The JSON of the plan's settings: the key of every cache."""
  return json.dumps(dataclasses.asdict(plan.settings), sort_keys=True,
                    default=str)


def _same_settings(key_a: str, key_b: str, ignore: tuple[str, ...]) -> bool:
  """Two settings keys agree on every field outside `ignore`."""
  if not ignore:
    return key_a == key_b
  a, b = json.loads(key_a), json.loads(key_b)
  return ({k: v for k, v in a.items() if k not in ignore}
          == {k: v for k, v in b.items() if k not in ignore})


def load_cache(plan: Plan, name: str, ignore: tuple[str, ...] = ()):
  """The value cached as `<name>.json` with this plan's settings (up to the
  fields in `ignore`), else None."""
  path = os.path.join(plan.out_dir, f'{name}.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    blob = json.load(f)
  if not _same_settings(str(blob.get('settings')), settings_key(plan),
                        ignore):
    log(f'{path} was made with other settings: ignored')
    return None
  return blob['value']


def save_cache(plan: Plan, name: str, value) -> None:
  """Caches `value` as `<name>.json` under the plan's settings key."""
  os.makedirs(plan.out_dir, exist_ok=True)
  workdir_lib.dump_json({'settings': settings_key(plan), 'value': value},
                        os.path.join(plan.out_dir, f'{name}.json'))


def _model_path(plan: Plan, name: str) -> str:
  return os.path.join(plan.out_dir, 'models', f'{name}.npz')


def cached_model(plan: Plan, name: str, train_fn) -> rcbm_lib.RCBM:
  """The model cached as `models/<name>.npz`, else `train_fn()`, cached."""
  path = _model_path(plan, name)
  key_path = path + '.settings'
  key = settings_key(plan)
  if os.path.exists(path) and os.path.exists(key_path):
    with open(key_path) as f:
      if f.read() == key:
        return io_lib.load_model(path)
  model = train_fn()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  io_lib.save_model(model, path)
  with open(key_path, 'w') as f:
    f.write(key)
  return model
