"""Data-parallel training over the devices present, with Keras's distribution API.

`Recipe.data_parallel` (`dyser-train --data-parallel`) trains under
`keras.distribution.DataParallel` over every device `keras.distribution.list_devices()`
finds (the GPUs or TPUs if there are any, else the CPU devices): the model's variables are
replicated on each device, every batch of `Recipe.batch_size` windows is split evenly
between them, and the gradients are averaged, so one process drives all the GPUs of a
machine. In Keras 3 this API is implemented for the JAX backend only (TensorFlow's is an
unfinished prototype, PyTorch has none): `data_parallel_devices` refuses the others with a
clear error instead of silently training on one device (`run_experiment` asks it before
extracting any features).

JAX shards a batch only when the device count divides it, so:

* `Recipe.batch_size` must be a multiple of the device count;
* `DivisibleBatches` cuts an epoch's last, partial batch to a multiple of it: at most
  devices - 1 windows of each epoch (random ones: the order is shuffled every epoch) are
  left out, none when the device count divides the number of training utterances;
* `predict` pads the evaluation windows to a multiple of it and drops the padding from
  the predictions (inference is per window, so the padding changes nothing else).

Without a distribution every function here is the identity: single-device training and
prediction are unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

__all__ = [
    "SUPPORTED_BACKENDS",
    "DivisibleBatches",
    "data_parallel_devices",
    "data_parallel_scope",
    "data_shards",
    "predict",
]

#: The Keras backends whose distribution API `Recipe.data_parallel` uses (Keras 3).
SUPPORTED_BACKENDS = ("jax",)


def data_shards() -> int:
    """How many parts each batch is split into now: the batch axis of the active
    `keras.distribution.DataParallel` mesh, 1 without one."""
    distribution = keras.distribution.distribution()
    if distribution is None:
        return 1
    mesh = distribution.device_mesh
    return int(mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)])


def data_parallel_devices(batch_size: int) -> list[str]:
    """The devices data-parallel training would split batches of `batch_size` over
    (`keras.distribution.list_devices()`: the accelerators if any, else the CPU devices).

    Raises:
        ValueError: the backend has no distribution API (see `SUPPORTED_BACKENDS`), or
            `batch_size` is not a multiple of the device count.
    """
    backend = keras.backend.backend()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"data-parallel training uses Keras's distribution API, which Keras "
            f"{keras.__version__} implements for the {' and '.join(SUPPORTED_BACKENDS)} "
            f"backend only; this process runs {backend!r}: set KERAS_BACKEND=jax (with a "
            "CUDA build of jax for GPUs) or train without data_parallel"
        )
    devices = keras.distribution.list_devices()
    if batch_size % len(devices):
        raise ValueError(
            f"data-parallel training splits each batch over {len(devices)} devices "
            f"({', '.join(devices)}): batch_size must be a multiple of {len(devices)}, "
            f"got {batch_size}"
        )
    return devices


@contextlib.contextmanager
def data_parallel_scope(enabled: bool, batch_size: int) -> Iterator[int]:
    """Build, compile and fit inside this to train data-parallel over every device present
    (`data_parallel_devices`, whose errors it raises when `enabled`).

    Yields the number of devices the batches are split over (1 when not `enabled`: then
    nothing changes).
    """
    if not enabled:
        yield 1
        return
    devices = data_parallel_devices(batch_size)
    with keras.distribution.DataParallel(devices=devices).scope():
        yield len(devices)


class DivisibleBatches(keras.utils.PyDataset):
    """The batches of `data` (a `PyDataset` of (x, y[, sample_weight]) batches of
    `batch_size` of its `items`, the last one partial) cut to a multiple of `shards`, the
    number of devices each is split over. `batch_size` must be a multiple of `shards`, so
    only the last batch is cut; when fewer than `shards` windows would be left of it, that
    batch is not asked for at all."""

    def __init__(
        self,
        data: keras.utils.PyDataset,
        shards: int,
        items: int,
        batch_size: int,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if batch_size % shards:
            raise ValueError(f"batch_size {batch_size} is not a multiple of {shards} shards")
        self.data, self.shards = data, shards
        full, rest = divmod(items, batch_size)
        self.length = full + (rest >= shards)
        if not self.length:
            raise ValueError(
                f"{items} training windows are fewer than the {shards} devices each batch "
                "is split over"
            )

    def __len__(self) -> int:
        return self.length

    def on_epoch_end(self) -> None:
        self.data.on_epoch_end()

    def __getitem__(self, index: int):
        batch = self.data[index]
        keep = len(batch[0]) - len(batch[0]) % self.shards
        return tuple(part[:keep] for part in batch)


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """`model.predict(x)` that also works under a data-parallel distribution: `x` padded
    (zeros) to a multiple of the device count, batches rounded up to a multiple of it, the
    padding's predictions dropped. Without a distribution exactly `model.predict`."""
    shards = data_shards()
    pad = -len(x) % shards
    if pad:
        x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    batch_size = -(-batch_size // shards) * shards
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))[: len(x) - pad]
