"""Helpers for the dyser-export tests: the CLI run in-process with a JSON report, and a Keras
model the default factory never builds."""

from __future__ import annotations

import json

import keras
from click.testing import CliRunner

from export.cli import main
from keras_dyconv.layers import DynamicConv2D


def run_cli(*args: str) -> tuple[int, dict, str]:
    result = CliRunner().invoke(main, [*map(str, args), "--json", "--latency-runs", "5"])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, json.loads(result.stdout or "{}"), result.stderr


def bias_lstm_model() -> keras.Model:
    """A chain the default factory never builds: biased dynamic convs (one with BatchNorm
    folded; one static, K=1, activated before its BatchNorm, which must not fold), a plain
    LSTM."""
    inputs = keras.Input((None, 16))
    x = keras.layers.Reshape((-1, 16, 1))(inputs)
    x = DynamicConv2D(4, 3, padding="same", use_bias=True, num_kernels=3, temperature=4.0)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x = DynamicConv2D(4, (3, 1), strides=(1, 2), activation="relu", use_bias=True, num_kernels=1)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Reshape((-1, 4 * 4))(x)
    x = keras.layers.LSTM(6)(x)
    x = keras.layers.Dense(5, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
