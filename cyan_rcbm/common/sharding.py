"""Data parallelism over a 1-D device mesh, with JAX's own SPMD machinery.

`config.mesh_devices` (CYAN and RCBM configs) selects the devices: 1 (the
default) runs on one device with no sharding at all; 0 takes every device
JAX sees (`jax.devices()`); N takes the first N. The mesh has one axis,
`'data'` (`AXIS`):

* batch / sample axes are split over it (`NamedSharding(mesh, P('data'))`,
  or `P(None, 'data')` for RCBM's `[chunks, batch, ...]` layout);
* parameters and optimizer state are replicated (`P()`).

The training steps are ordinary `jax.jit` functions of such arrays: XLA's
SPMD partitioner runs each device on its slice of the batch and inserts the
all-reduce of every reduction over the sharded axis (CYAN's gradient, RCBM's
Gram matrix and sums), so a sharded run computes the same numbers as the
single-device run up to the order of floating-point sums.

Multi-host runs: set `config.distributed = True` and start the same command
on every host (`initialize_distributed` says where the coordinator's address
comes from); `jax.distributed.initialize()` runs before any other JAX call,
after which `jax.devices()` lists every host's devices.
Every host loads the same data and draws the same batches (a pure function
of the seed and epoch); `put` hands each device only its slice
(`jax.make_array_from_callback`), and `to_host` gathers sharded results
(`multihost_utils.process_allgather`). The workdir must be shared by all
hosts (orbax writes one checkpoint from all of them); process 0 writes the
run files (`metrics.jsonl`, results, figures), the others their own
`metrics.process<i>.jsonl`. Tested with 2 processes x 2 CPU devices on one
machine (same numbers as one process); not on a real cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from cyan_rcbm import errors
from cyan_rcbm.common import workdir as workdir_lib

AXIS = 'data'


def initialize_distributed(distributed: bool) -> None:
  """Calls `jax.distributed.initialize()` once when `distributed` is set.

  Must run before anything else touches JAX devices (the training entry
  points call it first). JAX finds the coordinator and the process count and
  index itself on the clusters it knows (SLURM, Open MPI, Kubernetes, Cloud
  TPU, ...); elsewhere set `JAX_COORDINATOR_ADDRESS=host:port` (read by JAX)
  and `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID` (read here) on every process.
  """
  if not distributed or jax.distributed.is_initialized():
    return
  kwargs = {}
  for arg, name in (('num_processes', 'JAX_NUM_PROCESSES'),
                    ('process_id', 'JAX_PROCESS_ID')):
    if os.environ.get(name):
      kwargs[arg] = int(os.environ[name])
  jax.distributed.initialize(**kwargs)


def is_primary() -> bool:
  """True on the process that writes run files (process 0)."""
  return jax.process_index() == 0


def prepare_workdir(config: Any, workdir: str) -> bool:
  """`workdir.prepare_workdir` on process 0 first, then on the others
  (multi-host: one shared workdir); every process gets process 0's answer
  (resuming or not)."""
  if jax.process_count() == 1:
    return workdir_lib.prepare_workdir(config, workdir)
  resuming = is_primary() and workdir_lib.prepare_workdir(config, workdir)
  resuming = bool(multihost_utils.broadcast_one_to_all(np.int32(resuming)))
  if not is_primary():
    workdir_lib.prepare_workdir(config, workdir)  # checks config.json
  return resuming


def metrics_file() -> str:
  """`metrics.jsonl` on process 0, `metrics.process<i>.jsonl` elsewhere."""
  if is_primary():
    return workdir_lib.METRICS_FILE
  return f'metrics.process{jax.process_index()}.jsonl'


def create_mesh(mesh_devices: int) -> Mesh | None:
  """A 1-D mesh over axis `'data'`, or None for a single device (no sharding).

  Args:
    mesh_devices: 1 = one device, no mesh; 0 = every device of
      `jax.devices()`; N > 1 = the first N devices.

  Raises:
    ConfigError: negative, or more devices than JAX sees.
  """
  mesh_devices = int(mesh_devices)
  available = jax.devices()
  if mesh_devices < 0:
    raise errors.ConfigError(
        f'mesh_devices must be 0 (all devices), 1 (no sharding) or a device '
        f'count; got {mesh_devices}.')
  if mesh_devices > len(available):
    raise errors.ConfigError(
        f'mesh_devices={mesh_devices} but JAX sees {len(available)} '
        f'{available[0].platform} device(s). Use a count <= '
        f'{len(available)}, 0 for all, or for CPU runs set XLA_FLAGS='
        f'--xla_force_host_platform_device_count={mesh_devices} before '
        'starting Python.')
  count = mesh_devices or len(available)
  if count == 1:
    return None
  return Mesh(np.asarray(available[:count]), (AXIS,))


def num_devices(mesh: Mesh | None) -> int:
  """Devices of the mesh (1 without one)."""
  return 1 if mesh is None else int(mesh.size)


def describe(mesh: Mesh | None) -> str:
  """One line for the logs."""
  if mesh is None:
    return f'single device ({jax.devices()[0]})'
  devices = mesh.devices.ravel()
  return (f'data parallel over {len(devices)} {devices[0].platform} devices '
          f'({jax.process_count()} process(es)), mesh axis {AXIS!r}')


def check_divisible(size: int, mesh: Mesh | None, what: str) -> None:
  """Raises ConfigError unless `size` splits evenly over the mesh."""
  count = num_devices(mesh)
  if size % count:
    lower, upper = size // count * count, -(-size // count) * count
    raise errors.ConfigError(
        f'{what}={size} does not split over {count} devices '
        f'(mesh_devices): use a multiple of {count}, e.g. '
        f'{upper if not lower else f"{lower} or {upper}"}.')


def round_up(size: int, mesh: Mesh | None) -> int:
  """The smallest multiple of the device count >= `size`."""
  count = num_devices(mesh)
  return -(-size // count) * count


def pad_rows(x: np.ndarray, rows: int, fill: Any = 0, axis: int = 0
             ) -> np.ndarray:
  """`x` padded with `fill` along `axis` to `rows` entries (numpy)."""
  extra = rows - x.shape[axis]
  if extra <= 0:
    return x
  shape = list(x.shape)
  shape[axis] = extra
  return np.concatenate([x, np.full(shape, fill, x.dtype)], axis=axis)


def data_sharding(mesh: Mesh, axis: int = 0) -> NamedSharding:
  """Axis `axis` split over `'data'`, the others replicated."""
  return NamedSharding(mesh, P(*([None] * axis), AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array."""
  return NamedSharding(mesh, P())


def _put_one(x, sharding: NamedSharding):
  if jax.process_count() == 1 or (isinstance(x, jax.Array)
                                  and not x.is_fully_addressable):
    return jax.device_put(x, sharding)  # a copy or a reshard of a global array
  # Multi-host, a local value: every process holds the same one; each device
  # takes its own slice of it.
  value = np.asarray(x)
  return jax.make_array_from_callback(value.shape, sharding,
                                      lambda index: value[index])


def put(tree: Any, sharding: NamedSharding | Any) -> Any:
  """Places a pytree (numpy or jax leaves; None skipped) with `sharding`
  (one sharding for every leaf, or a matching pytree of shardings)."""
  if isinstance(sharding, jax.sharding.Sharding):
    return jax.tree.map(lambda x: _put_one(x, sharding), tree)
  return jax.tree.map(_put_one, tree, sharding)


def shard(tree: Any, mesh: Mesh | None, axis: int = 0) -> Any:
  """Splits axis `axis` of every leaf over the mesh (identity without one)."""
  if mesh is None:
    return tree
  return put(tree, data_sharding(mesh, axis))


def replicate(tree: Any, mesh: Mesh | None) -> Any:
  """Copies every leaf to every device of the mesh (identity without one)."""
  if mesh is None:
    return tree
  return put(tree, replicated(mesh))


def constrain(x: jax.Array, mesh: Mesh | None, axis: int = 0) -> jax.Array:
  """Inside `jit`: asks for axis `axis` of `x` split over the mesh."""
  if mesh is None:
    return x
  return jax.lax.with_sharding_constraint(x, data_sharding(mesh, axis))


def host_device_env(count: int) -> dict[str, str]:
  """A copy of `os.environ` in which XLA's CPU backend shows `count` devices
  (for subprocesses: benchmarks and tests of sharded runs on one CPU)."""
  env = dict(os.environ)
  flag = '--xla_force_host_platform_device_count'
  kept = [f for f in env.get('XLA_FLAGS', '').split()
          if not f.startswith(flag)]
  env['XLA_FLAGS'] = ' '.join(kept + [f'{flag}={int(count)}'])
  return env


HOST_DEVICES_NOTE = (
    'Each device count ran in its own process with the data split over N '
    'devices. On a CPU-only machine the N devices are XLA host devices '
    '(--xla_force_host_platform_device_count=N) that share the same cores, '
    'each device on its own thread: a gain means work that one device ran on '
    'one thread now uses more cores, a loss is the cost of partitioning; '
    'neither is the scaling of N accelerators.')


def rerun_per_device_count(script: str, argv: Sequence[str],
                           counts: Sequence[int]) -> dict[str, Any]:
  """Runs `python script --mesh_devices=N argv...` for each N (benchmarks).

  Each run is a fresh process that sees N CPU host devices
  (`host_device_env`) and must print one JSON object as its last line.
  `--devices...` and `--mesh_devices...` arguments of `argv` are dropped.

  Returns:
    `{'devices': {str(N): that JSON}, 'note': HOST_DEVICES_NOTE}`.
  """
  args = [a for a in argv if not a.startswith(('--devices', '--mesh_devices'))]
  out = {}
  for count in counts:
    proc = subprocess.run(
        [sys.executable, script, f'--mesh_devices={count}'] + args,
        env=host_device_env(count), capture_output=True, text=True,
        check=False)
    if proc.returncode:
      raise RuntimeError(f'{script} --mesh_devices={count} failed:\n'
                         f'{proc.stderr[-3000:]}')
    out[str(count)] = json.loads(proc.stdout.strip().splitlines()[-1])
  return {'devices': out, 'note': HOST_DEVICES_NOTE}


def to_host(x: Any) -> np.ndarray:
  """A numpy copy of an array, gathering the shards of other hosts."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)
