"""CYAN batches and evaluation on a device mesh (data parallel).

A batch's rows are split over the mesh's `'data'` axis
(`cyan_rcbm.common.sharding`); batches whose rows do not divide the device
count get empty rows (mask 0, index -1), which add nothing to the loss or to
any metric (`evaluate.evaluate` scores only positions with a next event).
`compile_train_step` compiles the train step for every batch shape before
training, with progress lines.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from cyan_rcbm.common import sharding
from cyan_rcbm.cyan import evaluate as evaluate_lib
from cyan_rcbm.data import batching


def pad_batch(batch: batching.Batch, rows: int) -> batching.Batch:
  """`batch` with empty rows appended up to `rows` (mask 0, index -1)."""
  fill = dict(index=-1, parents=-1)
  return batching.Batch(**{
      k: None if v is None else sharding.pad_rows(v, rows, fill.get(k, 0))
      for k, v in batch._asdict().items()})


def device_batch(batch: batching.Batch, mesh: Mesh | None) -> batching.Batch:
  """The batch with rows padded to the device count and split over the mesh
  (numpy and unchanged without one)."""
  if mesh is None:
    return batch
  rows = sharding.round_up(batch.users.shape[0], mesh)
  return sharding.shard(pad_batch(batch, rows), mesh)


class _PaddedBatches:
  """A batcher's evaluation batches with rows padded to the device count."""

  def __init__(self, batcher: batching.CascadeBatcher, mesh: Mesh):
    self._batcher, self._mesh = batcher, mesh

  def batches(self):
    for batch in self._batcher.batches():
      yield pad_batch(batch, sharding.round_up(batch.users.shape[0],
                                               self._mesh))


class _MeshPredictor:
  """`predict_scored` of a predictor on batches split over the mesh."""

  def __init__(self, predictor: evaluate_lib.ModelPredictor, mesh: Mesh):
    self._predictor, self._mesh = predictor, mesh

  def predict_scored(self, batch: batching.Batch, exclude_active: bool):
    scored = self._predictor.predict_scored(sharding.shard(batch, self._mesh),
                                            exclude_active)
    if jax.process_count() > 1:  # other hosts' rows: gather them here.
      scored = jax.tree.map(sharding.to_host, scored)
    return scored


def evaluate_on_mesh(predictor: evaluate_lib.ModelPredictor,
                     batcher: batching.CascadeBatcher, mesh: Mesh | None
                     ) -> dict[str, Any]:
  """`evaluate.evaluate` with every batch split over the mesh (padding rows
  have no events: the metrics are those of the unsplit batches)."""
  if mesh is None:
    return evaluate_lib.evaluate(predictor, batcher)
  return evaluate_lib.evaluate(_MeshPredictor(predictor, mesh),
                               _PaddedBatches(batcher, mesh))


def compile_train_step(train_step, train_b: batching.CascadeBatcher,
                       mesh: Mesh | None, *args) -> None:
  """Compiles the train step ahead of time for every batch shape, with a
  line before and after (compiling can take minutes: without these lines a
  run is silent until its first progress line).

  Args:
    train_step: the jitted step of `train.create_train_step`; its cache
      keeps the compiled shapes, so the training loop compiles nothing.
    train_b: the train batcher. Every pass has the same shapes: a batch's
      shape is that of its first cascade's bucket, and which buckets start
      batches does not depend on the shuffle.
    mesh: as for `device_batch`.
    *args: `(params, opt_state, stats)` as the step receives them.
  """
  firsts = {}
  for bucket, rows in train_b.plan():
    firsts.setdefault(bucket, rows)
  shapes = [(train_b.rows[b], train_b.bucket_lengths[b]) for b in firsts]
  print(f'[cyan] compiling the train step for {len(shapes)} batch '
        f'shape{"s" * (len(shapes) != 1)} (rows x length: {", ".join(f"{r}x{n}" for r, n in shapes)}) ...',
        flush=True)
  t0 = time.perf_counter()
  step = sharding.replicate(np.int32(0), mesh)
  for bucket, rows in firsts.items():
    batch = device_batch(train_b.make_batch(bucket, rows), mesh)
    train_step.lower(*args, evaluate_lib.model_inputs(batch), step).compile()
  print(f'[cyan] compiled in {time.perf_counter() - t0:.1f}s', flush=True)
