"""Resumable checkpoints with orbax.

A checkpoint holds a pytree of arrays (`state`: parameters, optimizer state,
RNG keys, ...) and a small JSON dict (`meta`: epoch, best validation loss,
patience counter, ...). `save` is synchronous so that a run killed right
after it returns can always resume from that step.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores `(state, meta)` under `workdir/checkpoints/<step>`."""

  def __init__(self, workdir: str, max_to_keep: int = 2,
               subdir: str = 'checkpoints'):
    self.directory = os.path.abspath(os.path.join(workdir, subdir))
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            enable_async_checkpointing=False),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
    self._manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            meta=ocp.args.JsonSave(meta)),
        force=True)
    self._manager.wait_until_finished()

  def restore(self, template: Any, step: int | None = None
              ) -> tuple[int, Any, dict[str, Any]] | None:
    """Restores the checkpoint at `step` (default: latest).

    Args:
      template: a pytree with the structure, shapes and dtypes of `state`
        (concrete arrays or `jax.ShapeDtypeStruct`s).
      step: which step; None for the latest.

    Returns:
      `(step, state, meta)`, or None when there is no checkpoint.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      return None
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    restored = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract),
            meta=ocp.args.JsonRestore()))
    return step, restored['state'], dict(restored['meta'])

  def close(self) -> None:
    self._manager.close()
