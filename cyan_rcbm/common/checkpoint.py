"""Resumable checkpoints with orbax.

A checkpoint holds a pytree of arrays (`state`: parameters, optimizer state,
RNG keys, ...) and a small JSON dict (`meta`: epoch, best validation loss,
patience counter, ...). `save` is synchronous so that a run killed right
after it returns can always resume from that step.

The last `max_to_keep` (>= 2, default 3) checkpoints are kept, so that a
damaged newest one (a disk fault, a copy cut short) has an older one to fall
back on: `restore` tries the newest first, reports each damaged one (its
folder and what failed) on stderr, moves it to `<workdir>/checkpoints_damaged/`
and resumes from the newest one that restores. A checkpoint that reads but
does not fit the template (RCBM: the finished level's state while the next
level starts) is skipped, not damaged. When every checkpoint is damaged,
`restore` raises `DataError` naming the folder.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import jax
import orbax.checkpoint as ocp

from cyan_rcbm import errors

DAMAGED_DIR = 'checkpoints_damaged'


def _first_line(error: Exception) -> str:
  text = str(error).strip().splitlines()
  return f'{type(error).__name__}: {text[0][:200] if text else ""}'.rstrip(': ')


class Checkpointer:
  """Saves and restores `(state, meta)` under `workdir/checkpoints/<step>`."""

  def __init__(self, workdir: str, max_to_keep: int = 3,
               subdir: str = 'checkpoints'):
    if max_to_keep < 2:
      raise ValueError(f'max_to_keep={max_to_keep}: keep at least 2 '
                       'checkpoints, so that a damaged one has a fallback.')
    self.workdir = workdir
    self.max_to_keep = max_to_keep
    self.directory = os.path.abspath(os.path.join(workdir, subdir))
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=self.max_to_keep, create=True,
            enable_async_checkpointing=False))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def describe_latest(self) -> str:
    """'the last good checkpoint is step N in DIR', or that there is none."""
    step = self.latest_step()
    if step is None:
      return (f'no checkpoint was written yet (in {self.directory}): a rerun '
              'starts over')
    return f'the last good checkpoint is step {step} in {self.directory}'

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            meta=ocp.args.JsonSave(meta)),
        force=True)
    self._manager.wait_until_finished()

  def _restore_step(self, step: int, abstract: Any):
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract),
            meta=ocp.args.JsonRestore()))
    return step, restored['state'], dict(restored['meta'])

  def _readable(self, step: int) -> bool:
    """Whether `step` restores as stored (no template): a failure with the
    template is then a mismatch, not damage."""
    try:
      self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
      return True
    except Exception:  # pylint: disable=broad-except
      return False

  def _set_aside(self, steps: list[int]) -> None:
    aside = os.path.join(self.workdir, DAMAGED_DIR)
    os.makedirs(aside, exist_ok=True)
    for step in steps:
      target = os.path.join(aside, str(step))
      k = 1
      while os.path.exists(target):
        target, k = os.path.join(aside, f'{step}.{k}'), k + 1
      shutil.move(os.path.join(self.directory, str(step)), target)
      print(f'[checkpoint] moved the damaged checkpoint to {target}',
            file=sys.stderr, flush=True)
    self._manager.close()
    self._manager = self._open()

  def restore(self, template: Any, step: int | None = None,
              set_aside: bool = True
              ) -> tuple[int, Any, dict[str, Any]] | None:
    """Restores the checkpoint at `step` (default: the newest that restores).

    Args:
      template: a pytree with the structure, shapes and dtypes of `state`
        (concrete arrays or `jax.ShapeDtypeStruct`s).
      step: which step; None for the newest intact one (module docstring).
      set_aside: move damaged checkpoints out of the folder (a run that goes
        on saving); False leaves the folder as it is (read-only use).

    Returns:
      `(step, state, meta)`, or None when no checkpoint fits `template`.

    Raises:
      DataError: every checkpoint is damaged.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    if step is not None:
      return self._restore_step(step, abstract)
    damaged, mismatched = [], []
    for candidate in sorted(self._manager.all_steps(), reverse=True):
      try:
        result = self._restore_step(candidate, abstract)
      except Exception as e:  # pylint: disable=broad-except
        if self._readable(candidate):
          mismatched.append(candidate)
          continue
        damaged.append(candidate)
        print(f'[checkpoint] {os.path.join(self.directory, str(candidate))} '
              f'is damaged and cannot be restored ({_first_line(e)}); trying '
              'the previous one.', file=sys.stderr, flush=True)
        continue
      if damaged:
        if set_aside:
          self._set_aside(damaged)
        print(f'[checkpoint] using step {candidate}, the newest intact '
              'checkpoint.', file=sys.stderr, flush=True)
      return result
    if damaged and not mismatched:
      raise errors.DataError(
          f'no checkpoint restores: steps {sorted(damaged)} are all damaged '
          '(see the lines above). Delete the folder to start over, or use a '
          'new --workdir', path=self.directory)
    if damaged and set_aside:
      self._set_aside(damaged)
    return None

  def close(self) -> None:
    self._manager.close()
