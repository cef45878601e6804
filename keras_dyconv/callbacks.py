"""Training callbacks for dynamic convolution."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import keras

from keras_dyconv.layers import BaseDynamicConv


def dynamic_conv_layers(layer: keras.layers.Layer) -> Iterator[BaseDynamicConv]:
    """Yield every dynamic-convolution layer inside `layer` (nested models and wrappers too)."""
    if isinstance(layer, BaseDynamicConv):
        yield layer
    children = list(getattr(layer, "layers", None) or [])
    wrapped = getattr(layer, "layer", None)  # Bidirectional, TimeDistributed, ...
    if isinstance(wrapped, keras.layers.Layer):
        children.append(wrapped)
    for child in children:
        yield from dynamic_conv_layers(child)


def annealed_temperature(epoch: int, start: float, end: float, epochs: int) -> float:
    """Temperature at (0-based) `epoch`: linear from `start` to `end` over `epochs`, then `end`."""
    if epochs <= 0:
        return float(end)
    fraction = min(max(epoch, 0) / epochs, 1.0)
    return float(start + (end - start) * fraction)


class TemperatureAnnealing(keras.callbacks.Callback):
    """Anneal the attention softmax temperature of dynamic convolutions, as in Chen et al.

    The DyConv paper starts at a high temperature (30) so that all K kernels are trained
    (near-uniform attention) and lowers it linearly to 1 over the first 10 epochs. The
    temperature is set at the start of every epoch; it is a non-trainable weight of each
    layer, so the change reaches the compiled train step on TensorFlow, JAX and PyTorch, and
    the final value is saved with the model.

    Args:
        start: temperature at epoch 0.
        end: temperature from epoch `epochs` on.
        epochs: number of epochs of the linear ramp.
        layers: the layers to control; default: every dynamic convolution in the model.
    """

    def __init__(
        self,
        start: float = 30.0,
        end: float = 1.0,
        epochs: int = 10,
        layers: Iterable[BaseDynamicConv] | None = None,
    ):
        super().__init__()
        if start <= 0 or end <= 0:
            raise ValueError(f"temperatures must be positive, got start={start}, end={end}")
        self.start, self.end, self.epochs = float(start), float(end), int(epochs)
        self._layers = list(layers) if layers is not None else None
        self.history: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        value = annealed_temperature(epoch, self.start, self.end, self.epochs)
        layers = self._layers if self._layers is not None else dynamic_conv_layers(self.model)
        for layer in layers:
            layer.temperature.assign(value)
        self.history.append(value)
