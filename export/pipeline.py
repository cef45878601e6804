"""One export, end to end: .keras model -> twin -> TFLite/ONNX file + manifest -> parity report.

`export_model` is what `dyser-export` runs (and what the benchmark calls). Steps:

1. load the model and its `ModelMetadata` (`keras_dyconv.modelio.load_model`);
2. fix the window (`window_seconds`, default: the model's window policy);
3. read calibration and held-out audio through the model's own frontend
   (`export.calibration`);
4. build the tf_keras inference twin and convert it (`export.twin`, `export.tflite`,
   `export.onnx`);
5. write the model and its manifest under temporary names in the output folder, open them
   with the edge runtime's engine (`edge_runtime.engines`), and score parity against the
   Keras model (`export.parity`);
6. record the parity report in the manifest and move both files into place with
   `os.replace`: the model first, then its manifest. Any failure before this step removes the
   temporary files and leaves a previous export at `out` untouched.

Before any of this, the output folder is checked: it must exist and take a new file (a
read-only folder fails in a second, not after the conversion), and temporary files that an
earlier export killed mid-way (SIGKILL runs no cleanup) left there are removed
(`edge_runtime.files.sweep_stale_temporaries`).

An artifact whose agreement is below the threshold is still written (to inspect it) and
its manifest says ``"passed": false``; the CLI then exits with status 1.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_runtime.artifact import ArtifactError, load_artifact, manifest_path, write_manifest
from edge_runtime.config import FrontendConfig
from edge_runtime.engines import EngineError, open_engine
from edge_runtime.files import atomic_output, check_writable_folder, sweep_stale_temporaries
from edge_runtime.formats import FORMATS, QUANTIZATIONS, model_format
from edge_runtime.metadata import MetadataError, ModelMetadata
from edge_runtime.windows import WindowPolicy
from export.calibration import (
    CALIBRATION_GAINS_DB,
    CalibrationError,
    WindowSet,
    extract_windows,
    list_audio,
    list_sources,
    representative,
    split_holdout,
    synthetic_windows,
)
from keras_dyconv.console import Progress, track

if TYPE_CHECKING:  # export.parity and the converters import Keras and TensorFlow: on use
    from export.parity import ParityReport

__all__ = [
    "DEFAULT_MIN_AGREEMENT",
    "ExportError",
    "ExportResult",
    "default_output",
    "export_model",
]

#: Minimum top-1 agreement with the Keras model, per quantization mode: float modes must
#: agree on practically every window, integer modes (int8 weights) on 98%.
DEFAULT_MIN_AGREEMENT = {"none": 0.999, "float16": 0.999, "dynamic": 0.98, "int8": 0.98}

# Exit statuses of dyser-export, by failure kind (documented in `dyser-export --help`).
EXIT_OK, EXIT_PARITY, EXIT_USAGE, EXIT_CONVERSION, EXIT_INPUT, EXIT_ENGINE = range(6)


class ExportError(RuntimeError):
    """An export that could not complete; `exit_code` says which kind of failure."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class ExportResult:
    """What one export produced."""

    output: Path
    manifest: Path
    format: str
    quantization: str
    frames: int
    ops: dict[str, int]
    parity: ParityReport

    @property
    def passed(self) -> bool:
        return self.parity.passed

    def to_dict(self) -> dict:
        return {
            "output": str(self.output),
            "manifest": str(self.manifest),
            "format": self.format,
            "quantization": self.quantization,
            "frames": self.frames,
            "ops": self.ops,
            "parity": self.parity.to_dict(),
            "passed": self.passed,
        }


def default_output(model_path: str | os.PathLike, fmt: str, quantize: str) -> Path:
    """`<stem>.<ext>` for float32, `<stem>.<mode>.<ext>` otherwise, next to the model."""
    model_path = Path(model_path)
    tag = "" if quantize == "none" else f".{quantize}"
    return model_path.with_name(f"{model_path.stem}{tag}{model_format(fmt).suffix}")


def exporter_version() -> str:
    try:
        return f"dyser-export {importlib_metadata.version('dyser')}"
    except importlib_metadata.PackageNotFoundError:
        return "dyser-export (not installed)"


def _frames(metadata: ModelMetadata, window_seconds: float | None) -> int:
    if window_seconds is None:
        return metadata.window.frames
    if not window_seconds > 0:
        raise ExportError(f"--window must be > 0 seconds, got {window_seconds}", EXIT_USAGE)
    config = metadata.frontend
    return max(1, round(window_seconds * config.sample_rate / config.hop_length))


def _load_data(
    metadata: ModelMetadata,
    calibration: str | os.PathLike | Sequence[str | os.PathLike] | None,
    holdout: str | os.PathLike | None,
    holdout_fraction: float,
    need_calibration: bool,
    progress: Progress | None,
) -> tuple[WindowSet | None, WindowSet]:
    """(calibration windows, or None when the mode needs none; held-out windows), cut by
    `metadata.window`."""
    policy = metadata.window
    try:
        calib_items = list_sources(calibration, metadata.labels) if calibration else None
        held_items, origin = None, "held-out"
        if holdout is not None:
            held_items = list_audio(holdout, metadata.labels)
        elif calib_items is not None:
            calib_items, held_items = split_holdout(calib_items, holdout_fraction)
            origin = "held-out calibration"
        calib = None
        if need_calibration and calib_items:
            calib = extract_windows(
                calib_items,
                metadata,
                policy,
                origin="calibration",
                gains_db=CALIBRATION_GAINS_DB,
                progress=progress,
            )
        if held_items is None:
            return calib, synthetic_windows(metadata, policy)
        held = extract_windows(held_items, metadata, policy, origin=origin, progress=progress)
    except (CalibrationError, OSError) as err:
        raise ExportError(str(err), EXIT_INPUT) from None
    return calib, held


def _progress_windows(windows: np.ndarray, progress: Progress | None, wrap: Callable) -> Iterator:
    """Yield `wrap(window)` for each (frames, F) window, through a 'calibrating' progress."""
    for window in track(windows, "calibrating", len(windows), progress):
        yield wrap(window[None])


def _convert(
    model,
    fmt: str,
    quantize: str,
    frames: int,
    calib: WindowSet | None,
    limit: int,
    progress: Progress | None,
    log: Callable[[str], None],
) -> tuple[bytes, dict[str, int], tuple]:
    """(model file bytes, op counts, (input spec, output spec)).

    Raises:
        ExportError: exit code `EXIT_CONVERSION` when the twin cannot be built or the
            converter fails.
    """
    log(f"converting to {fmt} ({quantize}), window {frames} frames")
    from export.tflite import ConversionError
    from export.twin import TwinError, build_twin

    try:
        twin = build_twin(model, frames)
    except TwinError as err:
        raise ExportError(str(err), EXIT_CONVERSION) from None
    reps = representative(calib, limit) if calib is not None else None
    if fmt == "numpy":
        to_format = _to_numpy
    elif fmt == "tflite":
        to_format = _to_tflite
    else:
        to_format = _to_onnx
    try:
        data, ops, io = to_format(twin, quantize, reps, progress)
    except ConversionError as err:
        raise ExportError(str(err), EXIT_CONVERSION) from None
    counts: dict[str, int] = {}
    for op in ops:
        counts[op] = counts.get(op, 0) + 1
    return data, counts, io


# The converters from the tf_keras twin: (twin, quantization, calibration windows or None,
# progress) -> (model file bytes, op of each node, (input spec, output spec)).


def _to_numpy(
    twin, quantize: str, reps: np.ndarray | None, progress: Progress | None
) -> tuple[bytes, list[str], tuple]:
    from export.numpy_graph import numpy_graph_bytes, numpy_graph_io

    data, io = numpy_graph_bytes(twin), numpy_graph_io(twin)
    return data, [layer["type"] for layer in _numpy_layers(data)], io


def _to_tflite(
    twin, quantize: str, reps: np.ndarray | None, progress: Progress | None
) -> tuple[bytes, list[str], tuple]:
    from export.tflite import convert_tflite, tflite_io, tflite_ops

    data = convert_tflite(
        twin,
        quantize,
        None if reps is None else lambda: _progress_windows(reps, progress, lambda w: [w]),
    )
    return data, tflite_ops(data), tflite_io(data)


def _to_onnx(
    twin, quantize: str, reps: np.ndarray | None, progress: Progress | None
) -> tuple[bytes, list[str], tuple]:
    from export.onnx import convert_onnx, onnx_io, onnx_ops, quantize_onnx

    float_model = convert_onnx(twin)
    io = onnx_io(float_model)
    quantized = quantize_onnx(
        float_model,
        quantize,
        None if reps is None else lambda: _progress_windows(reps, progress, lambda w: w),
    )
    return quantized.SerializeToString(), onnx_ops(quantized), io


def _numpy_layers(data: bytes) -> list[dict]:
    import io
    import json

    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return json.loads(arrays["graph"].tobytes())["layers"]


def _install(
    data: bytes,
    out: Path,
    metadata: ModelMetadata,
    manifest_args: dict,
    model,
    held: WindowSet,
    threshold: float,
    latency_runs: int,
    log: Callable[[str], None],
) -> ParityReport:
    """Write model + manifest under temporary names, score parity, then rename into place."""
    from export.parity import keras_probabilities, median_latency_ms, parity_report

    tmp_manifest = None
    try:
        # The model is renamed into place first (when the block ends): until its manifest
        # follows, the manifest's hash refuses it.
        with atomic_output(out) as tmp:
            tmp_manifest = manifest_path(tmp)
            tmp.write_bytes(data)
            write_manifest(tmp, metadata, **manifest_args)
            log(f"parity on {len(held)} {held.origin} windows")
            try:
                engine = open_engine(load_artifact(tmp), threads=1)
                exported = engine.predict(held.windows)
                latency = median_latency_ms(engine.predict, held.windows[:1], latency_runs)
            except (EngineError, ArtifactError, RuntimeError) as err:
                raise ExportError(f"the exported model does not run: {err}", EXIT_ENGINE) from None
            report = parity_report(
                keras_probabilities(model, held.windows),
                exported,
                held,
                size_bytes=len(data),
                latency_ms=latency,
                min_agreement=threshold,
                engine=engine.name,
            )
            write_manifest(tmp, metadata, **manifest_args, parity=report.to_dict())
        os.replace(tmp_manifest, manifest_path(out))
    finally:
        if tmp_manifest is not None:
            tmp_manifest.unlink(missing_ok=True)
    return report


def _check_request(
    fmt: str,
    quantize: str,
    calibration: str | os.PathLike | Sequence[str | os.PathLike] | None,
    min_agreement: float | None,
) -> float:
    """The minimum agreement to require; usage errors in the format, quantization,
    calibration or agreement raise `ExportError` (`EXIT_USAGE`)."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {FORMATS}, got {fmt!r}", EXIT_USAGE)
    if quantize not in QUANTIZATIONS:
        raise ExportError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}", EXIT_USAGE)
    allowed = model_format(fmt).quantizations
    if quantize not in allowed:
        raise ExportError(
            f"the {fmt} format takes --quantize {' or '.join(allowed)}, got {quantize!r}",
            EXIT_USAGE,
        )
    if quantize == "int8" and not calibration:
        raise ExportError(
            "int8 quantization needs real audio to calibrate activation ranges: pass "
            "--calibration DIR|MANIFEST",
            EXIT_USAGE,
        )
    threshold = DEFAULT_MIN_AGREEMENT[quantize] if min_agreement is None else min_agreement
    if not 0 <= threshold <= 1:
        raise ExportError(f"minimum agreement must be in [0, 1], got {threshold}", EXIT_USAGE)
    return threshold


def _output_path(
    model_path: str | os.PathLike,
    out: str | os.PathLike | None,
    fmt: str,
    quantize: str,
    log: Callable[[str], None],
) -> Path:
    """The model file to write, in a folder checked to take a new file and cleared of the
    temporaries of killed exports."""
    out = Path(out) if out is not None else default_output(model_path, fmt, quantize)
    suffix = model_format(fmt).suffix
    if out.suffix != suffix:
        raise ExportError(f"--out {out} must end in {suffix} for --format {fmt}", EXIT_USAGE)
    if not out.parent.is_dir():
        raise ExportError(f"--out {out}: folder {out.parent} does not exist", EXIT_USAGE)
    try:
        check_writable_folder(out.parent)
    except OSError as err:
        raise ExportError(f"--out {out}: {err.strerror or err}", EXIT_INPUT) from None
    for stale in sweep_stale_temporaries(out.parent):
        log(f"removed {stale.name}, left by an export that was killed")
    return out


def _load_model(
    model_path: str | os.PathLike,
    labels: Sequence[str] | None,
    frontend: FrontendConfig | None,
    window_seconds: float | None,
) -> tuple[object, ModelMetadata]:
    """(Keras model, its metadata with the window fixed to the export's input length)."""
    from keras_dyconv.modelio import IncompleteMetadata, load_model

    try:
        model, metadata = load_model(model_path, labels=labels, frontend=frontend)
    except IncompleteMetadata as err:
        options = {"labels": "--labels NAME,NAME,...", "frontend": "--frontend CONFIG.json"}
        supply = " and ".join(options[name] for name in err.missing)
        raise ExportError(f"{err}; pass {supply}", EXIT_USAGE) from None
    except (MetadataError, OSError, ValueError, TypeError) as err:
        raise ExportError(f"cannot load {model_path}: {err}", EXIT_INPUT) from None
    frames = _frames(metadata, window_seconds)
    policy = WindowPolicy(frames, min(metadata.window.hop_frames, frames))
    return model, dataclasses.replace(metadata, window=policy)


def export_model(
    model_path: str | os.PathLike,
    fmt: str = "tflite",
    quantize: str = "none",
    *,
    calibration: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    holdout: str | os.PathLike | None = None,
    window_seconds: float | None = None,
    out: str | os.PathLike | None = None,
    min_agreement: float | None = None,
    holdout_fraction: float = 0.25,
    calibration_windows: int = 200,
    latency_runs: int = 50,
    labels: Sequence[str] | None = None,
    frontend: FrontendConfig | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> ExportResult:
    """Export a trained `.keras` model to TFLite, ONNX or a numpy graph, and check it.

    Args:
        model_path: a `.keras` file: written by `keras_dyconv.modelio.save_model` (or
            dyser-train), or by plain `model.save()` (`keras_dyconv.modelio.read_metadata`
            says where labels and frontend then come from).
        fmt: "tflite", "onnx" or "numpy" (`.npz` for `edge_runtime.numpy_engine`; float32
            only).
        quantize: "none", "float16", "dynamic" or "int8" (full integer; needs calibration).
        calibration: folder of audio files (WAV, FLAC) or CSV manifest (path,label
            [,speaker]) of real audio for int8 calibration, or several of them (joined:
            e.g. one per corpus); without `holdout`, part of it is held out for parity.
        holdout: folder or manifest of held-out audio for the parity report.
        window_seconds: model input window in seconds (default: the model's window policy).
        out: output model path (default `default_output`); the manifest is `out + ".json"`.
        min_agreement: minimum top-1 agreement in [0, 1] (default `DEFAULT_MIN_AGREEMENT`).
        holdout_fraction: share of the calibration utterances held out when no `holdout`.
        calibration_windows: at most this many windows calibrate int8 activation ranges.
        latency_runs: single-window invokes timed for the median latency.
        labels: class names in output order, for a model that does not record them.
        frontend: the features' `FrontendConfig` (normalisation statistics included), for a
            model that does not record it.
        progress: shows the audio and calibration windows go by (e.g.
            `keras_dyconv.console.terminal_progress`); None: nothing.
        log: receives one-line progress messages.

    Raises:
        ExportError: with `exit_code` 2 (bad arguments), 3 (conversion failed), 4 (model or
            audio unreadable) or 5 (the exported file does not run in its engine).
    """
    threshold = _check_request(fmt, quantize, calibration, min_agreement)
    out = _output_path(model_path, out, fmt, quantize, log)
    model, metadata = _load_model(model_path, labels, frontend, window_seconds)
    frames = metadata.window.frames
    calib, held = _load_data(
        metadata, calibration, holdout, holdout_fraction, quantize == "int8", progress
    )
    data, ops, (spec_in, spec_out) = _convert(
        model, fmt, quantize, frames, calib, calibration_windows, progress, log
    )
    manifest_args = dict(
        format=fmt,
        quantization=quantize,
        input=spec_in,
        output=spec_out,
        exporter=exporter_version(),
    )
    try:
        report = _install(
            data, out, metadata, manifest_args, model, held, threshold, latency_runs, log
        )
    except OSError as err:
        raise ExportError(f"cannot write {out}: {err}", EXIT_INPUT) from None
    return ExportResult(
        output=out,
        manifest=manifest_path(out),
        format=fmt,
        quantization=quantize,
        frames=frames,
        ops=ops,
        parity=report,
    )
