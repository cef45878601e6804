"""Dynamic convolution (Chen et al., CVPR 2020) as backend-agnostic Keras 3 layers.

A dynamic convolution holds K kernels ``W_k`` (and biases ``b_k``) and mixes them per
input with attention weights ``pi(x)``::

    pi(x) = softmax(fc2(relu(fc1(global_avg_pool(x)))) / temperature)      # (batch, K)
    y     = act( sum_k pi_k(x) W_k * x  +  sum_k pi_k(x) b_k )

Because convolution is linear in the kernel, ``sum_k pi_k (W_k * x)`` equals
``(sum_k pi_k W_k) * x``. The layer offers both orders of computation, with identical
results up to float rounding:

* ``"aggregate"``: mix the K kernels per sample, then convolve each sample with its own
  kernel: the multiply-adds of one static convolution plus the mix. This is the cheap path
  the paper means by "without significantly increasing computational demands". The
  per-sample convolutions are unrolled for a static batch (up to `MAX_UNROLLED_BATCH`; a
  batch of 1 is one plain convolution) and run as a loop otherwise.
* ``"branches"``: scale K copies of the input by their attention weight, concatenate them
  on the channel axis and run one ordinary convolution with the K kernels stacked along the
  input channels (the sum over k happens in the accumulator). K times the multiply-adds,
  but only ops every converter knows (mean, matmul, softmax, mul, concat, conv), and it
  quantizes well: this is the form the exporter uses.

``mode="auto"`` (the default) resolves to `auto_mode()`, the faster path on CPU for the
running backend; the exporter forces ``"branches"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

MODES = ("auto", "aggregate", "branches")
# The aggregate path unrolls its per-sample loop up to this static batch size; larger or
# unknown batches run as a loop (`ops.map`), whose gradient is slow on JAX.
MAX_UNROLLED_BATCH = 64


def auto_mode() -> str:
    """The computation path `mode="auto"` resolves to on the current Keras backend.

    Measured on CPU (bench/bench_dynconv.py, docs/benchmarks.md): the aggregate path costs
    about as much as a static convolution on TensorFlow, JAX and PyTorch, the K-branch path
    3.5-4x as much, so "aggregate" on every backend.
    """
    return "aggregate"


def _normalize_tuple(value: int | Sequence[int], rank: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * rank
    value = tuple(int(v) for v in value)
    if len(value) != rank:
        raise ValueError(f"`{name}` must be an int or a tuple of {rank} ints, got {value}")
    return value


def conv_output_length(
    length: int | None, kernel: int, stride: int, dilation: int, padding: str
) -> int | None:
    """Output length of one spatial axis (None stays None), as Keras's Conv layers define it."""
    if length is None:
        return None
    if padding in ("same", "causal"):
        return -(-length // stride)
    return (length - dilation * (kernel - 1) - 1) // stride + 1


class _IndependentKernels(keras.initializers.Initializer):
    """Initialise each of the K stacked kernels with its own instance of `base`.

    Calling the base initializer on the stacked shape would count K into the fans and shrink
    the variance K-fold. Calling one instance K times is no better: Keras random initializers
    fix their seed at construction (a drawn one when unseeded), so all K kernels would be
    identical and the attention would get no gradient. Each kernel gets a fresh instance:
    seed + k for seeded initializers, a newly drawn seed otherwise.
    """

    def __init__(self, base: keras.initializers.Initializer):
        self.base = base

    def __call__(self, shape, dtype=None):
        config = self.base.get_config() if hasattr(self.base, "get_config") else None
        kernels = []
        for k in range(shape[0]):
            init = self.base
            if config is not None and "seed" in config:
                seed = config["seed"]
                init = type(self.base).from_config(
                    {**config, "seed": None if seed is None else seed + k}
                )
            kernels.append(init(shape[1:], dtype=dtype))
        return ops.stack(kernels, axis=0)


class BaseDynamicConv(keras.layers.Layer):
    """N-D dynamic convolution; use `DynamicConv1D` or `DynamicConv2D`.

    Args:
        rank: number of spatial dimensions (1 or 2).
        filters: number of output channels.
        kernel_size: int or tuple of `rank` ints.
        strides: int or tuple of `rank` ints.
        padding: `"valid"`, `"same"` (or `"causal"` for rank 1), as in `keras.layers.Conv1D`.
        data_format: `"channels_last"` (default) or `"channels_first"`.
        dilation_rate: int or tuple of `rank` ints.
        activation: activation applied to the output.
        use_bias: whether each of the K kernels has a bias (mixed like the kernels).
        num_kernels: K, the number of parallel kernels (Chen et al. use 4). With K=1 the layer
            is a static convolution (for ablations): it has no attention weights and runs one
            plain convolution for the whole batch.
        reduction: attention bottleneck ratio: the hidden layer of the attention branch has
            `max(in_channels // reduction, min_attention_units)` units.
        min_attention_units: lower bound for the attention hidden width (input layers with a
            single channel still need a few units).
        temperature: initial softmax temperature. Stored as a non-trainable weight so that
            `TemperatureAnnealing` can change it during training on every backend.
        mode: `"auto"`, `"aggregate"` or `"branches"` (see the module docstring). Both give
            the same outputs; they differ in speed and in how they export.
        kernel_initializer: initializer of each of the K kernels, applied to each kernel
            independently (fans of one kernel; a fresh seed per kernel).
        bias_initializer: initializer of the K biases.
        kernel_regularizer: regularizer of the stacked kernels.
        bias_regularizer: regularizer of the stacked biases.
        activity_regularizer: regularizer of the layer's output.
        kernel_constraint: constraint on the stacked kernels.
        bias_constraint: constraint on the stacked biases.
        attention_initializer: initializer of the two attention dense layers.
    """

    def __init__(
        self,
        rank: int,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = 1,
        padding: str = "valid",
        data_format: str | None = None,
        dilation_rate: int | Sequence[int] = 1,
        activation: Any = None,
        use_bias: bool = True,
        num_kernels: int = 4,
        reduction: int = 4,
        min_attention_units: int = 4,
        temperature: float = 1.0,
        mode: str = "auto",
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        attention_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        activity_regularizer: Any = None,
        kernel_constraint: Any = None,
        bias_constraint: Any = None,
        **kwargs: Any,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if rank not in (1, 2):
            raise ValueError(f"Dynamic convolution supports rank 1 or 2, got rank={rank}")
        if int(filters) <= 0:
            raise ValueError(f"`filters` must be a positive integer, got {filters}")
        if int(num_kernels) <= 0:
            raise ValueError(f"`num_kernels` must be a positive integer, got {num_kernels}")
        if float(temperature) <= 0:
            raise ValueError(f"`temperature` must be positive, got {temperature}")
        padding = padding.lower()
        allowed = ("valid", "same", "causal") if rank == 1 else ("valid", "same")
        if padding not in allowed:
            raise ValueError(f"`padding` must be one of {allowed}, got {padding!r}")
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")
        self.rank = rank
        self.filters = int(filters)
        self.kernel_size = _normalize_tuple(kernel_size, rank, "kernel_size")
        self.strides = _normalize_tuple(strides, rank, "strides")
        self.dilation_rate = _normalize_tuple(dilation_rate, rank, "dilation_rate")
        if any(s > 1 for s in self.strides) and any(d > 1 for d in self.dilation_rate):
            raise ValueError("`strides` > 1 together with `dilation_rate` > 1 is not supported")
        self.padding = padding
        data_format = data_format or keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                f"`data_format` must be 'channels_last' or 'channels_first', got {data_format!r}"
            )
        self.data_format = data_format
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.num_kernels = int(num_kernels)
        self.reduction = int(reduction)
        self.min_attention_units = int(min_attention_units)
        self.initial_temperature = float(temperature)
        self.mode = mode
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.attention_initializer = keras.initializers.get(attention_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.input_spec = keras.layers.InputSpec(min_ndim=rank + 2)

    # ------------------------------------------------------------------ build
    def _channel_axis(self) -> int:
        return -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape: Sequence[int | None]) -> None:
        in_channels = input_shape[self._channel_axis()]
        if in_channels is None:
            raise ValueError(
                f"{self.name}: the channel dimension of the input must be known, "
                f"got input shape {tuple(input_shape)}"
            )
        self.input_spec = keras.layers.InputSpec(
            ndim=self.rank + 2, axes={self._channel_axis(): in_channels}
        )
        self.in_channels = int(in_channels)
        self.attention_units = max(self.in_channels // self.reduction, self.min_attention_units)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_kernels, *self.kernel_size, self.in_channels, self.filters),
            initializer=_IndependentKernels(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.num_kernels, self.filters),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        # Attention branch: GAP -> fc1 (no bias, as in Chen et al.) -> ReLU -> fc2 -> softmax/T.
        # One kernel leaves it nothing to choose (a softmax over one logit is always 1).
        if self.num_kernels > 1:
            self._build_attention()
        self.temperature = self.add_weight(
            name="temperature",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_temperature),
            trainable=False,
            dtype="float32",
            autocast=False,
        )

    def _build_attention(self) -> None:
        self.attention_kernel1 = self.add_weight(
            name="attention_kernel1",
            shape=(self.in_channels, self.attention_units),
            initializer=self.attention_initializer,
        )
        self.attention_kernel2 = self.add_weight(
            name="attention_kernel2",
            shape=(self.attention_units, self.num_kernels),
            initializer=self.attention_initializer,
        )
        self.attention_bias2 = self.add_weight(
            name="attention_bias2", shape=(self.num_kernels,), initializer="zeros"
        )

    # ------------------------------------------------------------------- call
    def attention(self, inputs: Any) -> Any:
        """Attention weights `pi(x)` of shape (batch, num_kernels); each row sums to 1."""
        x = inputs if self.data_format == "channels_last" else self._to_channels_last(inputs)
        return self._attention(x)

    def _attention(self, x: Any) -> Any:
        if self.num_kernels == 1:
            return ops.ones((ops.shape(x)[0], 1), dtype=self.compute_dtype)
        pooled = ops.mean(x, axis=tuple(range(1, self.rank + 1)))
        hidden = ops.relu(ops.matmul(pooled, self.attention_kernel1))
        logits = ops.matmul(hidden, self.attention_kernel2) + self.attention_bias2
        # Softmax in float32: logits / T with T up to ~30 loses precision in float16.
        logits = ops.cast(logits, "float32") / self.temperature
        return ops.cast(ops.softmax(logits, axis=-1), self.compute_dtype)

    def call(self, inputs: Any, mode: str | None = None) -> Any:
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")
        if mode == "auto":
            mode = auto_mode()
        x = inputs if self.data_format == "channels_last" else self._to_channels_last(inputs)
        pi = self._attention(x)
        if self.padding == "causal":
            left = self.dilation_rate[0] * (self.kernel_size[0] - 1)
            x = ops.pad(x, ((0, 0), (left, 0), (0, 0)))
        padding = "valid" if self.padding == "causal" else self.padding
        if self.num_kernels == 1:
            y = self._conv(x, self.kernel[0], padding)
        elif mode == "branches":
            y = self._conv_branches(x, pi, padding)
        else:
            y = self._conv_aggregate(x, pi, padding)
        if self.use_bias:
            bias = ops.matmul(pi, self.bias)  # (batch, filters)
            y = y + ops.reshape(bias, (-1,) + (1,) * self.rank + (self.filters,))
        if self.data_format == "channels_first":
            y = self._to_channels_first(y)
        return self.activation(y) if self.activation is not None else y

    def _conv(self, x: Any, kernel: Any, padding: str, data_format: str = "channels_last") -> Any:
        return ops.conv(
            x,
            kernel,
            strides=self.strides,
            padding=padding,
            dilation_rate=self.dilation_rate,
            data_format=data_format,
        )

    def _conv_branches(self, x: Any, pi: Any, padding: str) -> Any:
        """K input copies scaled by pi, one conv with the K kernels stacked on input channels."""
        k, cin, r = self.num_kernels, self.in_channels, self.rank
        scaled = ops.expand_dims(x, -2) * ops.reshape(pi, (-1,) + (1,) * r + (k, 1))
        spatial = ops.shape(x)[1:-1]
        scaled = ops.reshape(scaled, (-1, *spatial, k * cin))
        # (K, *ks, Cin, F) -> (*ks, K, Cin, F) -> (*ks, K*Cin, F): channel index = k*Cin + c.
        kernel = ops.transpose(self.kernel, (*range(1, r + 1), 0, r + 1, r + 2))
        kernel = ops.reshape(kernel, (*self.kernel_size, k * cin, self.filters))
        return self._conv(scaled, kernel, padding)

    def _conv_aggregate(self, x: Any, pi: Any, padding: str) -> Any:
        """Mix the K kernels per sample, then convolve each sample with its own kernel."""
        flat = ops.reshape(self.kernel, (self.num_kernels, -1))
        kernels = ops.matmul(pi, flat)
        kernels = ops.reshape(kernels, (-1, *self.kernel_size, self.in_channels, self.filters))
        batch = x.shape[0]
        if batch == 1:  # inference, export: one plain convolution with the mixed kernel
            return self._conv(x, kernels[0], padding)
        if batch is None or batch > MAX_UNROLLED_BATCH:
            return ops.map(lambda xk: self._conv(xk[0][None], xk[1], padding)[0], (x, kernels))
        # One plain convolution per sample, unrolled: forward and backward run on each
        # backend's fast conv kernels. (The batch folded into one grouped convolution is 2x
        # slower on PyTorch and ~100x on TF/JAX, whose CPU grouped convs go through slow XLA
        # kernels; XLA differentiates loops of convs slowly.) Keras's torch conv transposes
        # channels_last inputs on every call: transpose once for the whole batch instead.
        # `ops.split`, not `x[i : i + 1]`: TF's gradient of each slice is a zero-filled
        # batch-sized tensor (quadratic in the batch); a split's is one concatenation.
        layout = "channels_first" if keras.backend.backend() == "torch" else "channels_last"
        if layout == "channels_first":
            x = self._to_channels_first(x)
        samples = ops.split(x, batch, axis=0)
        convs = [
            self._conv(sample, kernel[0], padding, layout)
            for sample, kernel in zip(samples, ops.split(kernels, batch, axis=0), strict=True)
        ]
        y = ops.concatenate(convs, axis=0)
        return self._to_channels_last(y) if layout == "channels_first" else y

    def _to_channels_last(self, x: Any) -> Any:
        return ops.transpose(x, (0, *range(2, self.rank + 2), 1))

    def _to_channels_first(self, x: Any) -> Any:
        return ops.transpose(x, (0, self.rank + 1, *range(1, self.rank + 1)))

    # ---------------------------------------------------------------- shapes
    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        if self.data_format == "channels_last":
            spatial = input_shape[1:-1]
        else:
            spatial = input_shape[2:]
        out = tuple(
            conv_output_length(n, k, s, d, self.padding)
            for n, k, s, d in zip(
                spatial, self.kernel_size, self.strides, self.dilation_rate, strict=True
            )
        )
        if self.data_format == "channels_last":
            return (input_shape[0], *out, self.filters)
        return (input_shape[0], self.filters, *out)

    def macs_per_output_position(self, mode: str = "aggregate") -> int:
        """Multiply-accumulates of the convolution per output position (attention excluded)."""
        per_kernel = math.prod(self.kernel_size) * self.in_channels * self.filters
        return per_kernel * (self.num_kernels if mode == "branches" else 1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "num_kernels": self.num_kernels,
                "reduction": self.reduction,
                "min_attention_units": self.min_attention_units,
                "temperature": self.initial_temperature,
                "mode": self.mode,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "attention_initializer": keras.initializers.serialize(self.attention_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_dyconv")
class DynamicConv1D(BaseDynamicConv):
    """1D dynamic convolution over `(batch, steps, channels)` inputs.

    Same arguments as `keras.layers.Conv1D` plus `num_kernels`, `reduction`,
    `min_attention_units`, `temperature` and `mode`; see `BaseDynamicConv`.
    Output: `(batch, new_steps, filters)`.
    """

    def __init__(self, filters: int, kernel_size: int | Sequence[int], **kwargs: Any):
        kwargs.pop("rank", None)
        super().__init__(1, filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="keras_dyconv")
class DynamicConv2D(BaseDynamicConv):
    """2D dynamic convolution over `(batch, rows, cols, channels)` inputs (channels_last).

    Same arguments as `keras.layers.Conv2D` plus `num_kernels`, `reduction`,
    `min_attention_units`, `temperature` and `mode`; see `BaseDynamicConv`.
    Output: `(batch, new_rows, new_cols, filters)`.
    """

    def __init__(self, filters: int, kernel_size: int | Sequence[int], **kwargs: Any):
        kwargs.pop("rank", None)
        super().__init__(2, filters, kernel_size, **kwargs)


DynamicConv = DynamicConv2D
