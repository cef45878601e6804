"""`dyser-export`: turn a trained .keras model into a TFLite or ONNX artifact for CPU devices.

`--help` imports no TensorFlow (export.pipeline loads the converters when an export starts).
Without `--verbose`, what TensorFlow's and LiteRT's native code writes to stderr (CUDA
probing, oneDNN and XNNPACK notices) is dropped for the whole export; our own messages, the
progress bars and the summary are kept.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the converters need TensorFlow anyway

import json
import sys
from pathlib import Path

import click

from edge_runtime.config import FrontendConfig
from edge_runtime.formats import FORMATS, QUANTIZATIONS
from export.options import CONTEXT_SETTINGS, native_logs, verbose_option
from export.pipeline import (
    DEFAULT_MIN_AGREEMENT,
    EXIT_PARITY,
    ExportError,
    ExportResult,
    export_model,
)
from keras_dyconv.console import terminal_progress

__all__ = ["main", "summary_table"]

_MODE_NAMES = {
    "none": "float32",
    "float16": "float16 weights, float32 compute",
    "dynamic": "dynamic range (int8 weights)",
    "int8": "full integer int8",
}


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def summary_table(result: ExportResult, model: Path) -> str:
    """The human summary printed at the end of an export (two aligned columns)."""
    p = result.parity
    ops = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in sorted(result.ops.items()))
    mode = _MODE_NAMES[result.quantization]
    if result.format == "onnx" and result.quantization == "int8":
        mode = "int8 static QDQ convolutions + int8 LSTM weights"
    rows = [
        ("model", f"{model} -> {result.output} (+ {result.manifest.name})"),
        ("format", f"{result.format}, {mode}, window {result.frames} frames"),
        ("ops", ops),
        ("size", f"{p.size_bytes / 1024:.1f} KB"),
        ("parity data", f"{p.windows} {p.heldout} windows ({p.utterances} utterances)"),
        (
            "agreement",
            f"{_percent(p.agreement)} top-1 with Keras (minimum "
            f"{_percent(p.min_agreement)}): {'PASS' if p.passed else 'FAIL'}",
        ),
        ("max |dp|", f"{p.max_abs_diff:.4f} (mean {p.mean_abs_diff:.5f})"),
        (
            "accuracy",
            f"windows: keras {_percent(p.keras_accuracy)}, export "
            f"{_percent(p.export_accuracy)}; utterances: keras "
            f"{_percent(p.keras_utterance_accuracy)}, export "
            f"{_percent(p.export_utterance_accuracy)}",
        ),
        ("latency", f"{p.latency_ms:.2f} ms per window, median, 1 thread ({p.engine})"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)


_FLOAT_MIN, _INT_MIN = 100 * DEFAULT_MIN_AGREEMENT["none"], 100 * DEFAULT_MIN_AGREEMENT["int8"]
_FLOAT_MIN, _INT_MIN = 100 * DEFAULT_MIN_AGREEMENT["none"], 100 * DEFAULT_MIN_AGREEMENT["int8"]
HELP = f"""Export a trained MODEL.keras to a TFLite (LiteRT) or ONNX file that runs on a CPU
device (e.g. a Raspberry Pi) with nothing but edge_runtime, numpy and an interpreter, or
to a numpy graph (.npz) that edge_runtime runs with numpy alone.

MODEL.keras is a file written by dyser-train or keras_dyconv.modelio.save_model, or by
plain model.save() of a model from build_dycnn_bilstm(labels=..., frontend=...): its labels,
frontend configuration (normalisation included) and window travel inside it. For a model
that does not record them, --labels and --frontend supply them.

The output is two files: the model (OUT) and its manifest OUT.json (labels, frontend
configuration and normalisation, window/hop policy, input/output quantization, sha256 of
the model, parity report). The edge runtime refuses a model without a matching manifest.
Files are written to temporary names and renamed, so a failed export leaves a previous
OUT untouched; temporary files of an export that was killed are removed by the next
export into the same folder. Every export ends with a parity report against the Keras model and a
summary table on stderr; with --json a machine-readable report goes to stdout.

\b
QUANTIZATION MODES (--quantize)
  none     float32. Reference accuracy, largest file. Use when size and speed do
           not matter or to debug an export.
  float16  weights stored as float16, computed in float32: half the size, same
           speed and accuracy. Use when the file size matters but not the speed.
  dynamic  int8 weights, activations quantized at run time (no calibration).
           TFLite: a quarter of the size and the fastest mode on x86 CPUs.
           ONNX: MatMul and LSTM weights only (ConvInteger is slow), ~45%.
  int8     full integer quantization of weights and activations (TFLite:
           every op int8, int8 input/output tensors; ONNX: static QDQ int8
           convolutions plus int8 LSTM weights). Needs --calibration audio.
           The smallest files; the fastest mode on ARM CPUs (Raspberry Pi)
           and for ONNX; for integer-only accelerators.
  --quantize without a value means int8.
  ONNX float16 stores the weights as float16 followed by Cast nodes to
  float32 (built with onnx's own tools): smaller file, float32 speed.

\b
CALIBRATION AND PARITY
  --calibration takes a folder of .wav/.flac files (no labels) or a CSV manifest
  path,label[,speaker] (labels must be the model's; accuracy is then reported);
  repeat it to join several, e.g. one folder per corpus of a pooled model.
  The audio goes through the model's own frontend (edge_runtime.Frontend with
  the configuration stored in MODEL.keras), cut into windows by its window
  policy. Calibration utterances are played at -6, 0 and +6 dB in turn, so
  the int8 ranges also fit louder and quieter speakers. Without --holdout, a
  quarter of the utterances (chosen by a hash of the file name) is held out
  for the parity report and never used to calibrate. Without any audio (every
  mode but int8), parity runs on synthetic tones and noise.
  Parity: top-1 agreement with the Keras model, max |p_export - p_keras|,
  accuracy of both, file size and median single-thread latency, measured
  through the same edge_runtime engine a device uses. Default minimum
  agreement: {_FLOAT_MIN:.1f}% for none/float16, {_INT_MIN:.0f}% for dynamic/int8.

\b
EXIT STATUS
  0  exported, parity passed
  1  exported, but top-1 agreement below --min-agreement (files written,
     manifest says "passed": false)
  2  usage error (bad option, int8 without --calibration, wrong --out suffix,
     a model that records no labels or frontend and no --labels/--frontend)
  3  conversion failed (a layer the exporter does not know, a converter or
     quantizer error); the message names the layer or op
  4  cannot read MODEL.keras, its metadata or the calibration/held-out audio,
     or cannot write OUT (its folder is checked before the conversion starts)
  5  the exported file does not run in its interpreter (e.g. none installed)

\b
EXAMPLES
  dyser-export emotion.keras --format tflite --quantize --calibration calib/
  dyser-export emotion.keras --format onnx --quantize dynamic --json > report.json
  dyser-export emotion.keras --quantize int8 --calibration train.csv \\
      --holdout test.csv --window 3 --out pi/emotion.tflite
"""


def _labels(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple | None:
    if value is None:
        return None
    labels = tuple(name.strip() for name in value.split(","))
    if len(labels) < 2 or "" in labels or len(set(labels)) != len(labels):
        raise click.BadParameter(f"expected >= 2 distinct comma-separated names, got {value!r}")
    return labels


def _frontend(ctx: click.Context, param: click.Parameter, value: Path | None):
    if value is None:
        return None
    try:
        return FrontendConfig.from_json(value.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise click.BadParameter(f"{value}: not a frontend configuration ({err})") from None


@click.command(help=HELP, context_settings=CONTEXT_SETTINGS)
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="tflite",
    show_default=True,
    help="tflite: LiteRT flatbuffer, builtin ops only. onnx: opset 17, onnxruntime. "
    "numpy: float32 weights + layer graph (.npz) for edge_runtime's numpy engine, for "
    "boards with no interpreter wheel (--quantize none only).",
)
@click.option(
    "--quantize",
    type=click.Choice(QUANTIZATIONS),
    default="none",
    show_default=True,
    is_flag=False,
    flag_value="int8",
    help="Quantization mode (see QUANTIZATION MODES); alone it means int8.",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, path_type=Path),
    multiple=True,
    metavar="DIR|MANIFEST",
    help="Real audio: a folder of .wav/.flac files or a CSV manifest path,label[,speaker]; "
    "repeat to join several (e.g. one folder per corpus).",
)
@click.option(
    "--holdout",
    type=click.Path(exists=True, path_type=Path),
    metavar="DIR|MANIFEST",
    help="Held-out audio for the parity report (default: part of --calibration).",
)
@click.option(
    "--window",
    "window_seconds",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Model input window (default: the model's window policy).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Output model file (default: next to MODEL, MODEL[.MODE].tflite|onnx|npz).",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 100),
    metavar="PERCENT",
    help="Minimum top-1 agreement with Keras (default 99.9 float, 98 dynamic/int8).",
)
@click.option(
    "--holdout-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.25,
    show_default=True,
    metavar="FRACTION",
    help="Share of --calibration utterances held out.",
)
@click.option(
    "--calibration-windows",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    metavar="N",
    help="At most this many windows calibrate the int8 activation ranges.",
)
@click.option(
    "--latency-runs",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    metavar="N",
    help="Single-window invokes timed for the median latency.",
)
@click.option(
    "--labels",
    callback=_labels,
    metavar="NAME,NAME,...",
    help="Class names in the order of the model's outputs, for a MODEL that does not record "
    "them (plain model.save() of a model built without labels=).",
)
@click.option(
    "--frontend",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    callback=_frontend,
    metavar="CONFIG.json",
    help="The FrontendConfig JSON (FrontendConfig.to_json(), normalisation statistics "
    "included) the model's features were made with, for a MODEL that does not record it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@verbose_option
def main(
    model: Path,
    fmt: str,
    quantize: str,
    calibration: tuple[Path, ...],
    holdout: Path | None,
    window_seconds: float | None,
    out: Path | None,
    min_agreement: float | None,
    holdout_fraction: float,
    calibration_windows: int,
    latency_runs: int,
    labels: tuple[str, ...] | None,
    frontend: FrontendConfig | None,
    as_json: bool,
    verbose: bool,
) -> None:
    def log(message: str) -> None:
        click.echo(f"dyser-export: {message}", err=True)

    try:
        with native_logs(verbose):
            result = export_model(
                model,
                fmt,
                quantize,
                calibration=calibration or None,
                holdout=holdout,
                window_seconds=window_seconds,
                out=out,
                min_agreement=None if min_agreement is None else min_agreement / 100,
                holdout_fraction=holdout_fraction,
                calibration_windows=calibration_windows,
                latency_runs=latency_runs,
                labels=labels,
                frontend=frontend,
                progress=terminal_progress,
                log=log,
            )
    except ExportError as err:
        click.echo(f"dyser-export: error: {err}", err=True)
        if as_json:
            click.echo(json.dumps({"error": str(err), "exit_code": err.exit_code}))
        sys.exit(err.exit_code)
    click.echo(summary_table(result, model), err=True)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    if not result.passed:
        log(
            f"top-1 agreement {_percent(result.parity.agreement)} is below the minimum "
            f"{_percent(result.parity.min_agreement)}"
        )
        sys.exit(EXIT_PARITY)
