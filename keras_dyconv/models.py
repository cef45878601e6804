"""The DyCNN + Bi-LSTM emotion model: log-mel -> dynamic-conv blocks -> Bi-LSTM -> softmax.

The model carries what it needs to be exported in a `ModelInfo` layer (an identity right
after the input): its labels, the frontend configuration its features were made with
(normalisation statistics included) and its window policy. They are part of the layer's
config, so they are in every `.keras` file, however it was saved: `model.save("m.keras")`
exports like a model written by `keras_dyconv.modelio.save_model`.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from edge_runtime.config import FrontendConfig
from edge_runtime.metadata import ModelMetadata
from edge_runtime.windows import WindowPolicy
from keras_dyconv.layers import DynamicConv2D, conv_output_length

#: `build_dycnn_bilstm` arguments that describe the model's data, not its architecture.
METADATA_ARGUMENTS = ("labels", "frontend")


@keras.saving.register_keras_serializable(package="keras_dyconv")
class ModelInfo(keras.layers.Identity):
    """Identity layer whose config holds the model's labels, frontend and window policy.

    Each of the three is None while unknown. Values are stored as plain JSON (the
    `to_dict()` forms), so `keras_dyconv.modelio.read_metadata` reads them from a `.keras`
    file's `config.json` without loading the network.

    Args:
        labels: class names in the order of the model's outputs.
        frontend: `FrontendConfig` (or its `to_dict()`) the input features are made with.
        window: `WindowPolicy` (or its `to_dict()`) of training and inference windows.
    """

    def __init__(
        self,
        labels: Sequence[str] | None = None,
        frontend: FrontendConfig | dict[str, Any] | None = None,
        window: WindowPolicy | dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.set_info(labels, frontend, window)

    def set_info(
        self,
        labels: Sequence[str] | None,
        frontend: FrontendConfig | dict[str, Any] | None,
        window: WindowPolicy | dict[str, Any] | None,
    ) -> None:
        """Replace the three values (validated: FrontendConfig/WindowPolicy rules)."""
        if isinstance(frontend, dict):
            frontend = FrontendConfig.from_dict(frontend)
        if isinstance(window, dict):
            window = WindowPolicy.from_dict(window)
        # JSON text, not lists and dicts: Keras would wrap those in tracking containers.
        self._info_json = json.dumps(
            {
                "labels": None if labels is None else [str(label) for label in labels],
                "frontend": None if frontend is None else frontend.to_dict(),
                "window": None if window is None else window.to_dict(),
            }
        )

    @property
    def info(self) -> dict[str, Any]:
        """{"labels": list | None, "frontend": dict | None, "window": dict | None}."""
        return json.loads(self._info_json)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self.info}


def model_info(model: keras.Model) -> ModelInfo | None:
    """The `ModelInfo` layer of `model`, or None (models not built by `build_dycnn_bilstm`)."""
    return next((layer for layer in model.layers if isinstance(layer, ModelInfo)), None)


def set_model_metadata(model: keras.Model, metadata: ModelMetadata) -> bool:
    """Record `metadata`'s labels, frontend and window in the model's `ModelInfo` layer.

    Returns False (and changes nothing) for a model without one.
    """
    layer = model_info(model)
    if layer is None:
        return False
    layer.set_info(metadata.labels, metadata.frontend, metadata.window)
    return True


@keras.saving.register_keras_serializable(package="keras_dyconv")
class AttentionPooling(keras.layers.Layer):
    """Attention pooling over time: `(batch, time, features) -> (batch, features)`.

    Each frame gets a scalar score `v . tanh(W h_t + b)`; the softmax of the scores over time
    weights the frames' sum. With `mask` (batch, time), masked frames get zero weight.

    Args:
        units: width of the scoring layer `W`.
    """

    def __init__(self, units: int = 64, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = int(units)
        self.supports_masking = True

    def build(self, input_shape: Sequence[int | None]) -> None:
        features = input_shape[-1]
        self.score_kernel = self.add_weight(
            name="score_kernel", shape=(features, self.units), initializer="glorot_uniform"
        )
        self.score_bias = self.add_weight(
            name="score_bias", shape=(self.units,), initializer="zeros"
        )
        self.score_vector = self.add_weight(
            name="score_vector", shape=(self.units, 1), initializer="glorot_uniform"
        )

    def call(self, inputs: Any, mask: Any = None) -> Any:
        hidden = ops.tanh(ops.matmul(inputs, self.score_kernel) + self.score_bias)
        scores = ops.matmul(hidden, self.score_vector)  # (batch, time, 1)
        if mask is not None:
            scores = ops.where(ops.expand_dims(mask, -1), scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=1)
        return ops.sum(weights * inputs, axis=1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return (input_shape[0], input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}


def build_dycnn_bilstm(
    num_classes: int | None = None,
    n_mels: int | None = None,
    input_channels: int | None = None,
    frames: int | None = None,
    conv_filters: Sequence[int] = (16, 32, 64),
    kernel_size: int = 3,
    num_kernels: int = 4,
    temperature: float = 30.0,
    pool_size: tuple[int, int] | Sequence[tuple[int, int]] | None = None,
    dropout: float = 0.3,
    bn_momentum: float = 0.9,
    lstm_units: int = 64,
    attention_pooling: bool = True,
    attention_units: int = 64,
    conv_mode: str = "auto",
    batch_size: int | None = None,
    name: str = "dycnn_bilstm",
    labels: Sequence[str] | None = None,
    frontend: FrontendConfig | None = None,
) -> keras.Model:
    """Build the DyCNN + Bi-LSTM classifier (uncompiled functional model).

    Input: log-mel features `(batch, frames, n_mels * input_channels)`, time-major, `frames`
    may be None; each band's `input_channels` values side by side (e.g. log-mel, delta and
    delta-delta: frontend feature "logmel_deltas") become the first block's input channels.
    Each block: `DynamicConv2D(filters, kernel_size, padding="same", use_bias=False)` ->
    `BatchNormalization` -> ReLU -> `MaxPooling2D(pool_size)` -> `Dropout(dropout)`, over the
    (time, mel) plane. The feature maps are flattened per frame, fed to a Bi-LSTM
    (`lstm_units` per direction), pooled over time (attention pooling, or the LSTM's last
    states when `attention_pooling=False`), and classified by a softmax `Dense(num_classes)`.

    Defaults (64 mels, filters 16/32/64, K=4, time pooled 16x, Bi-LSTM 64): 398,234
    parameters and 17.6 M multiply-accumulates per second of audio at a 10 ms hop
    (`model_cost`; 15.7 M of them in the convolutions with the aggregate path; the K-branch
    form the exporter uses does K times the convolution work, 65 M per second in all).

    The model records `labels` and `frontend` in its `ModelInfo` layer (the first after the
    input), so that a plain `model.save("m.keras")` file exports with `dyser-export`.

    Args:
        num_classes: number of emotion classes (default: len(labels), or 7).
        n_mels: mel bands (feature dimension of the input, per channel; default: from
            `frontend`, or 64).
        input_channels: values per band in the input (the frontend config's `channels`;
            default: from `frontend`, or 1).
        frames: fixed number of frames, or None for variable-length input.
        conv_filters: output channels of each dynamic-conv block (its length is the depth).
        kernel_size: conv kernel size (square).
        num_kernels: K, kernels per dynamic convolution.
        temperature: initial attention temperature (anneal it with `TemperatureAnnealing`).
        pool_size: (time, mel) max-pooling of every block, or one such pair per block.
            None (default): (2, 2) in every block except the last, which pools time 4x:
            `((2, 2), (2, 2), (4, 2))` for 3 blocks, time pooled 16x in all (18 Bi-LSTM
            steps per 3 s window). Pooling time only 8x (`(2, 2)`) runs twice the LSTM
            steps, which makes the int8 TFLite export slower than its float32 one (LiteRT's
            integer LSTM kernel costs ~3.5x the float kernel per step), for no measured
            accuracy gain (docs/benchmarks.md, ablation).
        dropout: dropout rate after each block and before the classifier.
        bn_momentum: BatchNormalization moving-average momentum. 0.9 (PyTorch's 0.1), not
            Keras's 0.99: a small corpus gives ~15 steps per epoch, and with 0.99 the
            inference statistics are still mostly their initial values after 10 epochs,
            which makes inference-mode predictions collapse to one class.
        lstm_units: LSTM units per direction.
        attention_pooling: pool the Bi-LSTM outputs with `AttentionPooling`.
        attention_units: width of the attention-pooling score layer.
        conv_mode: computation path of the dynamic convolutions ("auto", "aggregate",
            "branches").
        batch_size: fixed batch size of the input (export builds use 1), or None.
        name: model name.
        labels: class names in output order (recorded for export; sets `num_classes`).
        frontend: the `FrontendConfig` the input features are made with, normalisation
            statistics included (recorded for export; sets `n_mels`, `input_channels`).
    """
    num_classes, n_mels, input_channels = _data_sizes(
        num_classes, n_mels, input_channels, labels, frontend
    )
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if not conv_filters:
        raise ValueError("conv_filters must list at least one block")
    pools = _block_pools(pool_size, len(conv_filters))
    mel_out = n_mels
    for _, mel_pool in pools:
        mel_out = mel_out // mel_pool
    if mel_out < 1:
        raise ValueError(
            f"{len(conv_filters)} blocks pooling mels by {[p[1] for p in pools]} leave no mel "
            f"bands from n_mels={n_mels}; use fewer blocks or more mels"
        )
    if input_channels < 1:
        raise ValueError(f"input_channels must be >= 1, got {input_channels}")
    time_pool = math.prod(p[0] for p in pools)
    if frames is not None and frames < time_pool:
        raise ValueError(
            f"frames={frames} is shorter than the blocks' time pooling ({time_pool}x): the "
            f"Bi-LSTM would get no steps; use at least {time_pool} frames or pool less"
        )
    inputs = keras.Input(
        shape=(frames, n_mels * input_channels), batch_size=batch_size, name="log_mel"
    )
    x = ModelInfo(labels, frontend, name="model_info")(inputs)
    x = keras.layers.Reshape((-1, n_mels, input_channels), name="add_channel")(x)
    for i, (filters, pool) in enumerate(zip(conv_filters, pools, strict=True), start=1):
        x = DynamicConv2D(
            filters,
            kernel_size,
            padding="same",
            use_bias=False,
            num_kernels=num_kernels,
            temperature=temperature,
            mode=conv_mode,
            name=f"dyconv{i}",
        )(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(pool, name=f"pool{i}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
    x = keras.layers.Reshape((-1, mel_out * conv_filters[-1]), name="frames_to_sequence")(x)
    lstm = keras.layers.LSTM(lstm_units, return_sequences=attention_pooling, name="lstm")
    x = keras.layers.Bidirectional(lstm, name="bilstm")(x)
    if attention_pooling:
        x = AttentionPooling(attention_units, name="attention_pooling")(x)
    x = keras.layers.Dropout(dropout, name="dropout_head")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="emotion")(x)
    return keras.Model(inputs, outputs, name=name)


def _data_sizes(
    num_classes: int | None,
    n_mels: int | None,
    input_channels: int | None,
    labels: Sequence[str] | None,
    frontend: FrontendConfig | None,
) -> tuple[int, int, int]:
    """(num_classes, n_mels, input_channels): given values, else from labels/frontend, else
    the defaults 7, 64, 1; ValueError when given values contradict labels or frontend."""
    if labels is not None:
        if num_classes is not None and num_classes != len(labels):
            raise ValueError(f"num_classes={num_classes} but {len(labels)} labels {list(labels)}")
        num_classes = len(labels)
    if frontend is not None:
        if not isinstance(frontend, FrontendConfig):
            raise TypeError(f"frontend must be a FrontendConfig, got {type(frontend).__name__}")
        given = (n_mels, input_channels)
        n_mels, input_channels = frontend.n_features // frontend.channels, frontend.channels
        if given[0] not in (None, n_mels) or given[1] not in (None, input_channels):
            raise ValueError(
                f"n_mels={given[0]}, input_channels={given[1]} do not match the frontend's "
                f"{frontend.n_features} features ({n_mels} x {input_channels} channels)"
            )
    return (
        7 if num_classes is None else int(num_classes),
        64 if n_mels is None else int(n_mels),
        1 if input_channels is None else int(input_channels),
    )


def model_arguments(**kwargs: Any) -> dict[str, Any]:
    """Every architecture argument `build_dycnn_bilstm(**kwargs)` builds with: defaults
    filled in and the pooling resolved per block (`METADATA_ARGUMENTS` left out). Results
    record it, so they keep their meaning when a default changes."""
    bound = inspect.signature(build_dycnn_bilstm).bind(**kwargs)
    bound.apply_defaults()
    args = dict(bound.arguments)
    sizes = _data_sizes(
        *(args[name] for name in ("num_classes", "n_mels", "input_channels")),
        *(args.pop(name) for name in METADATA_ARGUMENTS),
    )
    args["num_classes"], args["n_mels"], args["input_channels"] = sizes
    args["conv_filters"] = filters = [int(f) for f in args["conv_filters"]]
    args["pool_size"] = [list(p) for p in _block_pools(args["pool_size"], len(filters))]
    return args


def _block_pools(
    pool_size: tuple[int, int] | Sequence[tuple[int, int]] | None, blocks: int
) -> list[tuple[int, int]]:
    """One (time, mel) pooling pair per block from `build_dycnn_bilstm`'s `pool_size`."""
    if pool_size is None:
        return [(2, 2)] * (blocks - 1) + [(4, 2)]
    if len(pool_size) == 2 and all(isinstance(p, int) for p in pool_size):
        return [(int(pool_size[0]), int(pool_size[1]))] * blocks
    pools = [tuple(int(v) for v in p) for p in pool_size]
    if len(pools) != blocks or any(len(p) != 2 or min(p) < 1 for p in pools):
        raise ValueError(
            f"pool_size must be one (time, mel) pair or one per block ({blocks} blocks), "
            f"got {pool_size!r}"
        )
    return pools  # type: ignore[return-value]


def time_reduction(model: keras.Model) -> int:
    """How many input frames make one Bi-LSTM step: the product of the time pooling (and
    time strides) of the model's convolution blocks. Windows need at least this many."""
    reduction = 1
    for layer in model.layers:
        if isinstance(layer, keras.layers.MaxPooling2D):
            reduction *= layer.pool_size[0]
        elif isinstance(layer, DynamicConv2D):
            reduction *= layer.strides[0]
    return reduction


def model_cost(model: keras.Model, frames_per_second: float = 100.0) -> dict[str, float]:
    """Parameters and multiply-accumulates (MACs) per second of audio of a DyCNN-BiLSTM model.

    Counts convolutions (aggregate path: one kernel per position, plus the K-kernel mix per
    sample), the LSTM gates and the dense layers; elementwise ops, BN and pooling are ignored.
    `frames_per_second` is 1 / hop (100 for a 10 ms hop).
    """
    macs, time_rate = 0.0, frames_per_second
    for layer in model.layers:
        if isinstance(layer, DynamicConv2D):
            _, _, mels, _ = layer.input.shape
            out_t = time_rate / layer.strides[0]
            out_m = conv_output_length(mels, layer.kernel_size[1], layer.strides[1], 1, "same")
            macs += out_t * out_m * layer.macs_per_output_position("aggregate")
        elif isinstance(layer, keras.layers.MaxPooling2D):
            time_rate /= layer.pool_size[0]
        elif isinstance(layer, keras.layers.Bidirectional):
            cell_in = layer.input.shape[-1]
            units = layer.forward_layer.units
            macs += time_rate * 2 * 4 * units * (cell_in + units)
        elif isinstance(layer, AttentionPooling):
            macs += time_rate * layer.input.shape[-1] * (layer.units + 1)
    return {"parameters": float(model.count_params()), "macs_per_second": macs}
