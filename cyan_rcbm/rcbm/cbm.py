"""CBM learning: Algorithms 1 and 2 of the paper (equations.md B3, B4; Eqs.
6-9).

`fit_cbm` learns one CBM from n samples: random initialisations (restarts),
outer iterations (`cbm_step.outer_step`: h-step, W-step, MLE of sigma and
beta) until convergence, and the trained filters. The pieces live in:

* `cbm_layout`: the solver's sample layout (`to_solver_layout`: chunks C x
  batch B, time-major) and the filter initialisation (`init_filters`);
* `cbm_step`: `SolverConfig`, `CBMState`, one outer iteration
  (`outer_step`, `solve_h`), step-size bounds and monotonicity;
* `cbm_filters`: Task 2, the exact Gram-based W-step.

Their public names are re-exported here, so `cbm.SolverConfig`,
`cbm.outer_step`, `cbm.to_solver_layout`... keep working.

Penalty. The paper sets `lam = sigma^2 / beta` from Task 3 at every outer
iteration (`penalty='mle'`). On planted data that update has no fixed point
with activations: the MAP h shrinks with lam, so `g(lam) = sigma^2(lam) /
beta(lam) > lam` for every lam (measured with the true filters, noise 0.05:
g(0.1) = 0.18, g(0.3) = 0.31, g(1) = 1.67), and lam grows until every
activation is zero -- the degenerate maximum of the joint density
(`log P(h = 0) = -log beta -> inf` as `beta -> 0`). We therefore default to
`penalty='fixed'` (lam given, in the units of the scaled data) and still
compute sigma and beta by MLE at every iteration: they define every
likelihood (Eqs. 3, 12: perplexity, anomaly scores, BIC). A run that
collapses is flagged (`FitResult.collapsed`) and loses restarts.

Convergence: an outer iteration is converged when it lowers `J_r` by less
than `tol` relative (`objective_start` vs `objective`).

Data parallel: `fit_cbm(..., mesh=...)` splits the samples over a device
mesh (`cyan_rcbm.common.sharding`; see `cbm_step` for what runs where); the
result equals the single-device fit up to the order of floating-point sums.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Any, Callable, TextIO

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh

from cyan_rcbm import errors
from cyan_rcbm.common import sharding
from cyan_rcbm.common import workdir as workdir_lib
from cyan_rcbm.data import dynamics as dynamics_lib
# Re-exported: the CBM API callers import from `cbm`.
from cyan_rcbm.rcbm.cbm_filters import filter_matrix  # pylint: disable=unused-import
from cyan_rcbm.rcbm.cbm_filters import filter_tensor  # pylint: disable=unused-import
from cyan_rcbm.rcbm.cbm_filters import window_gram  # pylint: disable=unused-import
from cyan_rcbm.rcbm.cbm_layout import INITS
from cyan_rcbm.rcbm.cbm_layout import batch_layout  # pylint: disable=unused-import
from cyan_rcbm.rcbm.cbm_layout import from_solver_layout
from cyan_rcbm.rcbm.cbm_layout import init_filters
from cyan_rcbm.rcbm.cbm_layout import padded_features  # pylint: disable=unused-import
from cyan_rcbm.rcbm.cbm_layout import per_sample
from cyan_rcbm.rcbm.cbm_layout import to_solver_layout
from cyan_rcbm.rcbm.cbm_step import PENALTIES  # pylint: disable=unused-import
from cyan_rcbm.rcbm.cbm_step import STEP_RULES  # pylint: disable=unused-import
from cyan_rcbm.rcbm.cbm_step import CBMParams
from cyan_rcbm.rcbm.cbm_step import CBMState
from cyan_rcbm.rcbm.cbm_step import SolverConfig
from cyan_rcbm.rcbm.cbm_step import init_state
from cyan_rcbm.rcbm.cbm_step import lipschitz_h  # pylint: disable=unused-import
from cyan_rcbm.rcbm.cbm_step import lipschitz_w  # pylint: disable=unused-import
from cyan_rcbm.rcbm.cbm_step import neg_log_joint  # pylint: disable=unused-import
from cyan_rcbm.rcbm.cbm_step import outer_step
from cyan_rcbm.rcbm.cbm_step import shard_state
from cyan_rcbm.rcbm.cbm_step import solve_h  # pylint: disable=unused-import

Array = jax.Array


@dataclasses.dataclass
class FitResult:
  """A trained CBM and its training trace.

  Attributes:
    params: filters [K, D, Tw] (unsorted), sigma, beta (numpy).
    h: activations [n, K, S] at the end (numpy).
    sq_err: per-sample squared error `e_i^2` [n].
    l1: per-sample activation `a_i` [n].
    state: the final solver state (solver layout).
    history: one dict of floats per outer iteration of the kept run.
    converged: the relative objective change fell below `tol`.
    restart_objectives: score of each screened restart (`_restart_score`).
    collapsed: every activation is zero (beta at its floor); with
      penalty='mle' this is the degenerate maximum of the joint density.
  """
  params: CBMParams
  h: np.ndarray
  sq_err: np.ndarray
  l1: np.ndarray
  state: CBMState
  history: list[dict[str, float]]
  converged: bool
  restart_objectives: list[float]
  collapsed: bool = False


def _to_floats(info: dict[str, Array]) -> dict[str, float]:
  return {k: float(v) for k, v in jax.device_get(info).items()}


def _run(state, x, n, cfg, *, max_iters, tol, min_iters, on_iter, mesh):
  """Outer iterations until convergence; returns (state, converged).

  Converged: the relative decrease of the Eq. 6 objective within one outer
  iteration (same `lam` before and after) is below `tol`.
  """
  while int(state.iteration) < max_iters:
    t0 = time.perf_counter()
    state, info = outer_step(state, x, num_samples=n, cfg=cfg, mesh=mesh)
    info = _to_floats(info)
    info['iteration'] = int(state.iteration)
    info['seconds'] = time.perf_counter() - t0
    if not all(math.isfinite(info[k]) for k in ('objective', 'sigma', 'beta')):
      raise FloatingPointError(
          f'CBM objective is not finite at outer iteration '
          f'{int(state.iteration)}: {info}')
    start = info['objective_start']
    rel = (start - info['objective']) / max(abs(start), 1e-30)
    info['rel_change'] = rel
    on_iter(state, info)
    if int(state.iteration) >= min_iters and abs(rel) < tol:
      return state, True
  return state, False


def _restart_score(info: dict[str, float], cfg: SolverConfig) -> float:
  """What restarts compare: Eq. 6 at fixed lam, else the negative log joint.

  A collapsed run (no activation left: `beta` at its floor) scores +inf: its
  joint density is degenerate (`log P(h = 0) -> inf` as `beta -> 0`).
  """
  if info['beta'] <= cfg.min_beta:
    return math.inf
  return info['objective' if cfg.penalty == 'fixed' else 'neg_log_joint']


def screen_iters(max_iters: int, restart_iters: int) -> int:
  """Outer iterations of one screened restart, at most (`fit_cbm`)."""
  return restart_iters if 0 < restart_iters < max_iters else max_iters


class FitProgress:
  """Readable progress lines of one `fit_cbm` run, screened restarts included.

  Use as `fit_cbm(..., callback=cb, screen_callback=progress.screen)` with
  `cb` calling `progress.iteration(info)`. Prints (plain lines,
  `workdir.Progress`, every `log_every` outer iterations and the first):

  * each screened restart as it runs: `[NAME restart j/R] step i/N ...`,
    then `[NAME] restart j/R done: ...` with its iterations, objective and
    seconds, and `[NAME] kept restart k/R ...`;
  * the kept run's own iterations `[NAME] step i/max_iters ...`; the
    replayed screening iterations of the kept restart are not printed again
    (they were printed with their own rates as they ran), so rates and ETA
    are those of the live iterations.
  """

  def __init__(self, name: str, max_iters: int, *, num_restarts: int = 1,
               restart_iters: int = 0, log_every: int = 1,
               stream: TextIO | None = None):
    self.name = name
    self._num_restarts = num_restarts
    self._screen_total = screen_iters(max_iters, restart_iters)
    self._every = max(1, int(log_every))
    self._stream = stream
    self._main = workdir_lib.Progress(name, max_iters, unit='iterations',
                                      stream=stream)
    self._restart = -1      # index of the restart being screened
    self._screen = None     # its Progress, started when the previous ended
    self._screen_t0 = 0.0
    self._last = {}         # restart -> its last info
    self._replayed = 0      # iterations of the kept restart (not re-printed)
    self._live = False
    if num_restarts > 1:
      self._next_restart()

  def _print(self, line: str) -> None:
    print(f'[{self.name}] {line}', file=self._stream, flush=True)

  def _report(self, progress, info, first: bool) -> None:
    it = int(info['iteration'])
    if first or it == 1 or it % self._every == 0:
      progress.report(it, objective=info['objective'], sigma=info['sigma'],
                      beta=info['beta'], lam=info['lam'],
                      inner=info['inner_iters'], rel=info['rel_change'])

  def _next_restart(self) -> None:
    """Starts the clock of the next restart (its setup and compilation
    count in its elapsed time)."""
    self._restart += 1
    self._screen_t0 = time.perf_counter()
    self._screen = workdir_lib.Progress(
        f'{self.name} restart {self._restart + 1}/{self._num_restarts}',
        self._screen_total, unit='iterations', stream=self._stream)

  def _end_restart(self) -> None:
    info = self._last.get(self._restart)
    if info is None:  # not started (num_restarts given here was 1).
      self._next_restart()
      return
    self._print(f'restart {self._restart + 1}/{self._num_restarts} done: '
                f'{int(info["iteration"])} outer iterations, objective '
                f'{info["objective"]:.6g}, rel change {info["rel_change"]:.2g}'
                f', {time.perf_counter() - self._screen_t0:.1f}s')
    self._next_restart()

  def screen(self, restart: int, state: CBMState,
             info: dict[str, float] | None) -> None:
    """`fit_cbm`'s `screen_callback`."""
    del state  # unused
    if restart != self._restart or info is None:
      self._end_restart()
    if info is None:  # screening is over; `restart` is kept.
      self._replayed = int(self._last[restart]['iteration'])
      self._print(f'kept restart {restart + 1}/{self._num_restarts} '
                  f'(objective {self._last[restart]["objective"]:.6g}, '
                  f'{self._replayed} outer iterations)')
      return
    self._last[restart] = info
    self._report(self._screen, info, first=False)

  def iteration(self, info: dict[str, float]) -> None:
    """Reports one outer iteration of the kept run (from `callback`)."""
    if int(info['iteration']) <= self._replayed:
      return
    self._report(self._main, info, first=not self._live)
    self._live = True


def fit_cbm(x_NxDxT: np.ndarray | Array, num_filters: int, filter_length: int,
            *, cfg: SolverConfig = SolverConfig(), max_iters: int = 200,
            tol: float = 1e-4, min_iters: int = 3, num_restarts: int = 1,
            restart_iters: int = 0, batch_size: int = 0, seed: int = 0,
            init: str = 'gaussian',
            callback: Callable[[CBMState, dict[str, float]], Any] | None = None,
            screen_callback: Callable[[int, CBMState, dict[str, float] | None],
                                      Any] | None = None,
            initial_state: CBMState | None = None,
            mesh: Mesh | None = None) -> FitResult:
  """Learns one CBM (Algorithm 1) from n samples.

  Args:
    x_NxDxT: samples (validated by the caller); float32, or float64 with x64.
    num_filters: K.
    filter_length: Tw (<= T).
    cfg: solver settings.
    max_iters: cap on outer iterations (counted from the first).
    tol: stop when the relative change of the per-sample objective
      (`FitResult.history[...]['objective']`) is below `tol`...
    min_iters: ...but not before this many outer iterations.
    num_restarts: random initialisations; each runs `restart_iters` outer
      iterations (or to convergence), the best one (`_restart_score`) is kept
      and continued.
    restart_iters: length of each screening run (0 or >= max_iters: each
      restart runs to convergence).
    batch_size: samples per chunk (0: all at once); with a mesh, a multiple
      of its device count (all samples: rounded up with empty samples).
    seed: seed of the initialisations (restart j uses `seed + j`).
    init: 'gaussian' (the paper's random initialisation) or 'patches'
      (`init_filters`).
    callback: called as `callback(state, info)` after every outer iteration
      of the kept run (screening iterations of the kept restart are replayed
      first), e.g. to log metrics and save checkpoints.
    screen_callback: with num_restarts > 1, called as
      `screen_callback(restart, state, info)` after every outer iteration of
      each screened restart while it runs (restart 0-based, `info` as for
      `callback`; do not modify it), and once as
      `screen_callback(kept, state, None)` when screening ends, before the
      kept restart's iterations are replayed through `callback`. For
      progress output: the replayed iterations were seen here as they ran.
    initial_state: resume from this state (no restarts).
    mesh: split the samples over this device mesh
      (`cyan_rcbm.common.sharding.create_mesh`); None: one device.

  Returns:
    A `FitResult`.

  Raises:
    DataError: x is not a finite, non-empty [n, D, T] array.
    ConfigError: filter_length or num_filters out of range, or batch_size
      does not split over the mesh.
    FloatingPointError: the objective became NaN or infinite.
  """
  dynamics_lib.validate_dynamics(x_NxDxT)
  x_np = np.asarray(x_NxDxT)
  n, d, t = x_np.shape
  if not 1 <= filter_length <= t:
    raise errors.ConfigError(
        f'filter_length {filter_length} must be in 1..{t} (the sample length)')
  if num_filters < 1:
    raise errors.ConfigError(f'num_filters must be >= 1, got {num_filters}')
  if 0 < batch_size < n:
    sharding.check_divisible(batch_size, mesh, 'batch_size')
  x = to_solver_layout(x_np, batch_size, cfg.form, mesh=mesh)
  callback = callback or (lambda state, info: None)
  history = []

  def live(state, info):
    history.append(info)
    callback(state, info)

  run = functools.partial(_run, x=x, n=n, cfg=cfg, tol=tol,
                          min_iters=min_iters, mesh=mesh)
  restart_objectives = []
  if initial_state is not None:
    state, converged = run(shard_state(initial_state, mesh),
                           max_iters=max_iters, on_iter=live)
  elif num_restarts <= 1:
    w0 = init_filters(x_np, num_filters, filter_length, seed, init)
    state, converged = run(init_state(x, w0, 1.0, 1.0 / cfg.lam, mesh),
                           max_iters=max_iters, on_iter=live)
  else:
    screen = screen_callback or (lambda restart, state, info: None)
    best = None
    for j in range(num_restarts):
      w0 = init_filters(x_np, num_filters, filter_length, seed + j, init)
      trace = []

      def screened(s, i, j=j, trace=trace):
        trace.append(i)
        screen(j, s, i)

      state, converged = run(init_state(x, w0, 1.0, 1.0 / cfg.lam, mesh),
                             max_iters=screen_iters(max_iters, restart_iters),
                             on_iter=screened)
      restart_objectives.append(_restart_score(trace[-1], cfg))
      if best is None or restart_objectives[-1] < best[0]:
        best = (restart_objectives[-1], state, converged, trace, j)
    _, state, converged, trace, kept = best
    screen(kept, state, None)
    for info in trace:
      live(state, info)
    if not converged and int(state.iteration) < max_iters:
      state, converged = run(state, max_iters=max_iters, on_iter=live)
  result = _result(state, n, d, restart_objectives, converged)
  result.history = history
  result.collapsed = bool(float(state.beta) <= cfg.min_beta)
  if result.collapsed:
    logging.warning(
        'CBM collapsed: every activation is zero (beta at its floor %g). With '
        "penalty='mle' the paper's update of sigma^2/beta drifts to this "
        "degenerate optimum; use penalty='fixed' or a smaller lam.",
        cfg.min_beta)
  return result


def _result(state, n, d, restart_objectives, converged) -> FitResult:
  k = state.w.shape[0]
  params = CBMParams(w=sharding.to_host(state.w)[:, :d],
                     sigma=sharding.to_host(state.sigma),
                     beta=sharding.to_host(state.beta))
  return FitResult(
      params=params, h=from_solver_layout(state.h, n, k),
      sq_err=per_sample(state.sq_err, n), l1=per_sample(state.l1, n),
      state=state, history=[],
      converged=converged, restart_objectives=restart_objectives)
