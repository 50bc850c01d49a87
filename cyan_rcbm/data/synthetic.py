"""Synthetic cascades on Kronecker graphs (CYAN-RNN paper section 4.2;
equations.md A2).

Network: a stochastic Kronecker graph (`cyan_rcbm.data.kronecker`) with the
core-periphery (`'cp'`) or random (`'random'`) initiator. Every edge `u -> v`
gets its own transmission-delay law: exponential with rate `r_uv` (`'exp'`,
mean `1 / r_uv`) or Rayleigh with scale `s_uv` (`'ray'`, mean
`s_uv sqrt(pi / 2)`), the parameter drawn from `[0.01, 10]`, uniformly or
log-uniformly (`param_draw`).

Cascades: continuous-time independent cascades from a root chosen uniformly
at random (`cyan_rcbm.data.cascade_simulation`), cut at `horizon` (T).
Cascades shorter than `min_length` are discarded and redrawn (a new root and
new delays), and the number redrawn is recorded.

Defaults reproduce the statistics of the authors' shipped sets
(`data/cyanrnn-synthetic`, see `docs/data.md`):

* `param_draw='uniform'`: the exponential rates of the authors' sets are
  uniform on [0.01, 10] (the rate of every root with a single out-edge can be
  read off its first gaps: all ten such rates lie in [0.7, 8]; log-uniform
  draws would put half of them below 0.32 and make cascades ~20x slower).
* `edges_per_user=3.0`: SNAP's fixed-edge-count Kronecker generator with
  96 edges at U = 32. The authors' random-network set has 95 distinct
  root -> first-child pairs (a lower bound on its edges), which equations.md
  A2's Bernoulli model (31 expected edges) cannot produce. `edges_per_user=0`
  gives the Bernoulli model.
* `transmit_prob=0.5`: in the authors' sets the roots with one out-edge start
  half as many cascades as the others, as a per-edge coin with probability
  0.5 followed by redrawing cascades of length 1 gives (SNAP NetInf's
  generator). `transmit_prob=1.0` gives equations.md A2's coin-free cascades.
* `min_length=2`: the authors' files have no cascade of length 1.

Everything is drawn from `np.random.default_rng([seed, stream])` with one
stream each for the graph, the edge parameters and the cascades, so a seed
gives byte-identical files and the graph does not depend on `num_cascades`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from cyan_rcbm.common.workdir import dump_json
from cyan_rcbm.data import cascade_simulation
from cyan_rcbm.data import kronecker
from cyan_rcbm.data import readers
from cyan_rcbm.data import writers
from cyan_rcbm.data.cascade_simulation import DELAYS, PARAM_DRAWS, PARAM_RANGE
from cyan_rcbm.data.types import Cascade, CascadeDataset
from cyan_rcbm.errors import ConfigError, DataError

NETWORKS = {'cp': kronecker.CORE_PERIPHERY, 'random': kronecker.RANDOM}
GENERATOR_VERSION = 1

CASCADES_FILE = 'cascades.jsonl'
GRAPH_FILE = 'graph.txt'
EDGE_PARAMS_FILE = 'edge_params.json'
META_FILE = 'meta.json'

# Streams of np.random.default_rng([seed, stream]).
_GRAPH, _PARAMS, _CASCADES = 0, 1, 2
_BATCH = 2048        # cascades simulated at once ([B, U, U] float64 delays).
_MAX_ROUNDS = 1000   # redraw rounds before giving up on `min_length`.


@dataclasses.dataclass(frozen=True)
class SyntheticSet:
  """A generated set: cascades (with parents), the graph and its delay laws.

  Attributes:
    dataset: the cascades, with `parents`, `edges` and vocab '0'..'U-1'
      (dense id == token); `time_unit` 'units'.
    adjacency: bool [U, U], `adjacency[u, v]`: edge u -> v.
    edge_params: float64 [U, U], the rate (exp) or scale (ray) of each edge,
      NaN where there is no edge.
    network: 'cp' or 'random'.
    delay: 'exp' or 'ray'.
    seed: the seed everything was drawn from.
    horizon: T, no activation later than this.
    param_draw: 'uniform' or 'loguniform'.
    edges_per_user: edges of the fixed-count graph per user (0: Bernoulli).
    transmit_prob: probability that an edge transmits at all in a cascade.
    min_length: shorter cascades were redrawn.
    num_redrawn: how many cascades were discarded for being shorter.
  """
  dataset: CascadeDataset
  adjacency: np.ndarray
  edge_params: np.ndarray
  network: str
  delay: str
  seed: int
  horizon: float = 100.0
  param_draw: str = 'uniform'
  edges_per_user: float = 3.0
  transmit_prob: float = 0.5
  min_length: int = 2
  num_redrawn: int = 0

  @property
  def num_users(self) -> int:
    return int(self.adjacency.shape[0])

  def meta(self) -> dict[str, Any]:
    """Everything needed to regenerate the set (written as meta.json)."""
    law, param = DELAYS[self.delay]
    return {
        'generator': 'cyan_rcbm.data.synthetic',
        'generator_version': GENERATOR_VERSION,
        'network': self.network,
        'initiator': [list(row) for row in NETWORKS[self.network]],
        'delay': self.delay,
        'law': law,
        'parameter': param,
        'num_users': self.num_users,
        'horizon': self.horizon,
        'seed': self.seed,
        'num_cascades': len(self.dataset),
        'param_draw': self.param_draw,
        'param_range': list(PARAM_RANGE),
        'edges_per_user': self.edges_per_user,
        'num_edges': int(self.adjacency.sum()),
        'transmit_prob': self.transmit_prob,
        'min_length': self.min_length,
        'num_redrawn': self.num_redrawn,
    }


def _check_args(network, delay, num_users, num_cascades, horizon, param_draw,
                edges_per_user, transmit_prob, min_length):
  if network not in NETWORKS:
    raise ConfigError(f'network must be one of {tuple(NETWORKS)}, got '
                      f'{network!r}')
  if delay not in DELAYS:
    raise ConfigError(f'delay must be one of {tuple(DELAYS)}, got {delay!r}')
  if param_draw not in PARAM_DRAWS:
    raise ConfigError(f'param_draw must be one of {PARAM_DRAWS}, got '
                      f'{param_draw!r}')
  kronecker.num_levels(num_users)
  if int(num_cascades) != num_cascades or num_cascades < 0:
    raise ConfigError(f'num_cascades must be a non-negative integer, got '
                      f'{num_cascades!r}')
  if not 0 < horizon < np.inf:
    raise ConfigError(f'horizon must be positive and finite, got {horizon!r}')
  if not 0 <= edges_per_user <= num_users - 1:
    raise ConfigError(f'edges_per_user must lie in [0, {num_users - 1}] (0: '
                      f'Bernoulli Kronecker graph), got {edges_per_user!r}')
  if not 0 < transmit_prob <= 1:
    raise ConfigError(f'transmit_prob must lie in (0, 1], got '
                      f'{transmit_prob!r}')
  if int(min_length) != min_length or not 1 <= min_length <= num_users:
    raise ConfigError(f'min_length must be an integer in [1, {num_users}], '
                      f'got {min_length!r}')


def make_synthetic(network: str = 'cp', delay: str = 'exp',
                   num_users: int = 32, num_cascades: int = 20000,
                   horizon: float = 100.0, seed: int = 0,
                   param_draw: str = 'uniform', *,
                   edges_per_user: float = 3.0, transmit_prob: float = 0.5,
                   min_length: int = 2) -> SyntheticSet:
  """Generates one synthetic set of the CYAN-RNN paper (section 4.2).

  Args:
    network: 'cp' (core-periphery initiator) or 'random'.
    delay: 'exp' (per-edge exponential rates) or 'ray' (Rayleigh scales).
    num_users: U, a power of two.
    num_cascades: cascades to return (after redrawing short ones).
    horizon: T; activations after T are cut.
    seed: everything is drawn from this seed.
    param_draw: 'uniform' or 'loguniform' draws of the per-edge parameter
      from [0.01, 10].
    edges_per_user: the graph has `round(edges_per_user * U)` edges placed
      by SNAP's fast Kronecker generator; 0 keeps each edge with its
      Kronecker probability (equations.md A2's Bernoulli model).
    transmit_prob: each edge transmits in a cascade with this probability
      (1.0: always, as equations.md A2 states).
    min_length: shorter cascades are discarded and redrawn (1: keep all).

  Returns:
    The `SyntheticSet`.
  """
  _check_args(network, delay, num_users, num_cascades, horizon, param_draw,
              edges_per_user, transmit_prob, min_length)
  num_edges = int(round(edges_per_user * num_users)) if edges_per_user else None
  adjacency = kronecker.kronecker_graph(
      NETWORKS[network], num_users, np.random.default_rng([seed, _GRAPH]),
      num_edges=num_edges)
  edge_params = cascade_simulation.draw_edge_params(
      adjacency, np.random.default_rng([seed, _PARAMS]), param_draw)
  if min_length > 1 and not adjacency.any():
    raise ConfigError(f'the {network} graph drawn with seed {seed} has no '
                      f'edges, so no cascade reaches min_length={min_length}; '
                      f'use another seed or more edges')
  rng = np.random.default_rng([seed, _CASCADES])
  kept, num_kept, num_redrawn = [], 0, 0
  for _ in range(_MAX_ROUNDS):
    need = num_cascades - num_kept
    if not need:
      break
    for start in range(0, need, _BATCH):
      users, times, parents, lengths = cascade_simulation.simulate(
          adjacency, edge_params, delay, horizon, transmit_prob,
          min(_BATCH, need - start), rng)
      ok = lengths >= min_length
      num_redrawn += int((~ok).sum())
      num_kept += int(ok.sum())
      kept.append((users[ok], times[ok], parents[ok], lengths[ok]))
  if num_kept < num_cascades:
    raise ConfigError(
        f'after {_MAX_ROUNDS} rounds only {num_kept} of {num_cascades} '
        f'cascades reached min_length={min_length} ({num_redrawn} were '
        f'shorter); lower min_length or use a denser graph')
  cascades = []
  for users, times, parents, lengths in kept:
    for u, t, p, n in zip(users, times, parents, lengths):
      cascades.append(Cascade(id=str(len(cascades)), users=u[:n].copy(),
                              times=t[:n].copy(), parents=p[:n].copy()))
  dataset = CascadeDataset(
      cascades=cascades, vocab=[str(u) for u in range(num_users)],
      edges=np.argwhere(adjacency).astype(np.int32), time_unit='units',
      source=(f'synthetic {network}-{delay} U={num_users} T={horizon:g} '
              f'seed={seed}'))
  return SyntheticSet(
      dataset=dataset, adjacency=adjacency, edge_params=edge_params,
      network=network, delay=delay, seed=seed, horizon=float(horizon),
      param_draw=param_draw, edges_per_user=float(edges_per_user),
      transmit_prob=float(transmit_prob), min_length=int(min_length),
      num_redrawn=num_redrawn)


def save_synthetic(s: SyntheticSet, out_dir: str) -> None:
  """Writes a set to `out_dir` (created if needed).

  Files: `cascades.jsonl` (canonical JSON lines, with parents), `graph.txt`
  (one `src dst` edge per line, user tokens), `edge_params.json` (the law,
  its parameter's name and `[src, dst, value]` per edge) and `meta.json`
  (everything `make_synthetic` was called with, plus counts). The same set
  always gives the same bytes.
  """
  os.makedirs(out_dir, exist_ok=True)
  writers.write_cascades(s.dataset, os.path.join(out_dir, CASCADES_FILE),
                         'jsonl')
  # 'topolstm' graphs are `src dst` lines.
  writers.write_graph(s.dataset, os.path.join(out_dir, GRAPH_FILE),
                      'topolstm')
  edges_Ex2 = np.argwhere(s.adjacency)
  law, param = DELAYS[s.delay]
  dump_json({'law': law, 'parameter': param, 'param_draw': s.param_draw,
             'param_range': list(PARAM_RANGE),
             'edges': [[int(a), int(b), float(s.edge_params[a, b])]
                       for a, b in edges_Ex2]},
            os.path.join(out_dir, EDGE_PARAMS_FILE), indent=None)
  dump_json(s.meta(), os.path.join(out_dir, META_FILE))


def _load_json(path: str) -> dict[str, Any]:
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise DataError('missing file: not a directory written by '
                    'save_synthetic', path=path) from None
  except json.JSONDecodeError as e:
    raise DataError(f'invalid JSON ({e.msg})', path=path, line=e.lineno
                    ) from None


def load_synthetic(out_dir: str) -> SyntheticSet:
  """Reads a set written by `save_synthetic` (checks that the files agree)."""
  meta_path = os.path.join(out_dir, META_FILE)
  meta = _load_json(meta_path)
  keys = ('network', 'delay', 'num_users', 'horizon', 'seed', 'param_draw',
          'edges_per_user', 'transmit_prob', 'min_length', 'num_redrawn',
          'num_cascades')
  missing = [k for k in keys if k not in meta]
  if missing:
    raise DataError(f'meta.json lacks {missing}', path=meta_path)
  if meta['network'] not in NETWORKS or meta['delay'] not in DELAYS:
    raise DataError(f'unknown network {meta["network"]!r} or delay '
                    f'{meta["delay"]!r}', path=meta_path)
  num_users = int(meta['num_users'])
  vocab = {str(u): u for u in range(num_users)}
  options = readers.ReadOptions(min_length=1, duplicate_users='error',
                                time_unit='units', timestamps='no',
                                unknown_graph_users='error')
  cascades_path = os.path.join(out_dir, CASCADES_FILE)
  dataset, _ = readers.read_cascades(
      cascades_path, 'jsonl', vocab=vocab,
      graph_path=os.path.join(out_dir, GRAPH_FILE), options=options)
  if len(vocab) != num_users:
    raise DataError(f'users outside 0..{num_users - 1}: '
                    f'{list(vocab)[num_users:][:5]}', path=cascades_path)
  if len(dataset) != meta['num_cascades']:
    raise DataError(f'{len(dataset)} cascades but meta.json says '
                    f'{meta["num_cascades"]}', path=cascades_path)
  adjacency = np.zeros((num_users, num_users), bool)
  adjacency[dataset.edges[:, 0], dataset.edges[:, 1]] = True
  params_path = os.path.join(out_dir, EDGE_PARAMS_FILE)
  edge_params = np.full((num_users, num_users), np.nan)
  try:
    for src, dst, value in _load_json(params_path)['edges']:
      edge_params[src, dst] = value
  except (KeyError, TypeError, ValueError, IndexError):
    raise DataError('expected {"edges": [[src, dst, value], ...]} with '
                    f'users in 0..{num_users - 1}', path=params_path) from None
  if not np.array_equal(np.isfinite(edge_params), adjacency):
    raise DataError(f'the edges with parameters differ from {GRAPH_FILE}',
                    path=params_path)
  dataset = dataclasses.replace(dataset, vocab=tuple(vocab),
                                source=os.path.abspath(out_dir))
  return SyntheticSet(
      dataset=dataset, adjacency=adjacency, edge_params=edge_params,
      network=meta['network'], delay=meta['delay'], seed=int(meta['seed']),
      horizon=float(meta['horizon']), param_draw=meta['param_draw'],
      edges_per_user=float(meta['edges_per_user']),
      transmit_prob=float(meta['transmit_prob']),
      min_length=int(meta['min_length']),
      num_redrawn=int(meta['num_redrawn']))
