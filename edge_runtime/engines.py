"""Inference engines for exported artifacts: LiteRT (TFLite), onnxruntime and numpy.

    artifact = load_artifact("model.tflite")          # verifies the manifest and sha256
    engine = open_engine(artifact, threads=1)         # "auto": by the artifact's format
    probs = engine.predict(windows)                   # (n, frames, n_features) -> (n, C)

`predict` takes float32 feature windows exactly as the frontend makes them and returns
float32 class probabilities: integer (int8) inputs are quantized and outputs dequantized
with the scale and zero point recorded in the manifest, so callers never see the model's
number format. Every window is one batch-1 invoke (exported graphs have a fixed batch of
1); the LiteRT engine calls `reset_all_variables()` before each invoke because the fused
LSTM keeps its state in variable tensors that would otherwise carry over between windows.

The interpreters are imported lazily, inside the engine that needs them, so that
`import edge_runtime` stays numpy + stdlib. LiteRT prefers `ai_edge_litert.interpreter`
and falls back to `tflite_runtime.interpreter`. LiteRT's C++ code announces its XNNPACK
delegate on stderr ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.") when the
interpreter allocates its tensors; the engine drops that (`quiet_native_stderr`) unless
opened with `quiet=False`.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from edge_runtime.artifact import Artifact, ArtifactError, TensorSpec, load_artifact
from edge_runtime.formats import ENGINES, model_format

__all__ = [
    "ENGINES",
    "Engine",
    "EngineError",
    "LiteRTEngine",
    "NumpyEngine",
    "OnnxRuntimeEngine",
    "dequantize",
    "litert_ops",
    "open_engine",
    "quantize",
    "quiet_native_stderr",
]

_NUMPY_DTYPES = (np.float32, np.int8, np.uint8, "float32", "int8", "uint8")


class EngineError(RuntimeError):
    """An engine cannot be opened (interpreter missing, wrong format) or run."""


class Engine(Protocol):
    """What every engine offers."""

    name: str
    artifact: Artifact

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Class probabilities (n, C) float32 of feature windows (n, frames, n_features)."""
        ...


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float values -> the tensor's dtype: round(x / scale) + zero_point, saturated."""
    if not spec.quantized:
        return np.asarray(x, dtype=np.float32)
    info = np.iinfo(spec.dtype)
    q = np.round(np.asarray(x, dtype=np.float32) / spec.scale) + spec.zero_point
    return np.clip(q, info.min, info.max).astype(spec.dtype)


def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Tensor values -> float32: scale * (q - zero_point) (float tensors pass through)."""
    if not spec.quantized:
        return np.asarray(q, dtype=np.float32)
    return ((np.asarray(q, dtype=np.float32) - spec.zero_point) * spec.scale).astype(np.float32)


def _check_windows(windows: np.ndarray, artifact: Artifact) -> np.ndarray:
    x = np.asarray(windows)
    expected = artifact.artifact_info.input.shape[1:]
    if x.ndim != 3 or x.shape[1:] != expected:
        raise ValueError(
            f"{artifact.model_path.name}: expected windows of shape (n, {expected[0]}, "
            f"{expected[1]}) (n windows x frames x features), got {x.shape}"
        )
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"expected float feature windows, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("feature windows contain NaN or infinite values")
    return x.astype(np.float32, copy=False)


def _check_tensor(spec: TensorSpec, shape: Any, dtype: Any, quant: Any, source: str) -> None:
    """Refuse a model whose tensor does not match what its manifest records."""
    dims = tuple(int(n) if isinstance(n, int | np.integer) else -1 for n in shape)
    got = (dims, np.dtype(dtype).name if dtype in _NUMPY_DTYPES else str(dtype))
    if got != (spec.shape, spec.dtype):
        raise ArtifactError(
            f"{source}: tensor {spec.name!r} is {got[1]} {list(got[0])} in the model but "
            f"{spec.dtype} {list(spec.shape)} in the manifest"
        )
    if spec.quantized and quant is not None:
        scale, zero_point = float(quant[0]), int(quant[1])
        if not np.isclose(scale, spec.scale, rtol=1e-6) or zero_point != spec.zero_point:
            raise ArtifactError(
                f"{source}: tensor {spec.name!r} has scale/zero_point {scale}/{zero_point} "
                f"in the model but {spec.scale}/{spec.zero_point} in the manifest"
            )


@contextlib.contextmanager
def quiet_native_stderr(enabled: bool = True, keep_python: bool = True) -> Iterator[None]:
    """Drop what native code (TensorFlow, LiteRT) writes to file descriptor 2 in the block.

    Their C++ logs bypass Python and go straight to fd 2. With `keep_python`, Python's own
    `sys.stderr` keeps writing where it did: when it is fd 2 itself, it is replaced for the
    block by a stream on a duplicate of the original descriptor (left open afterwards, as a
    logging handler created in the block may hold it). `enabled=False` changes nothing.
    """
    if not enabled:
        yield
        return
    python_stderr = sys.stderr
    try:
        python_stderr.flush()
        on_fd2 = keep_python and python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        on_fd2 = False  # a capture buffer (pytest, click's CliRunner): leave it alone
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    if on_fd2:
        sys.stderr = open(
            os.dup(saved),
            "w",
            buffering=1,
            encoding=python_stderr.encoding,
            errors=python_stderr.errors,
        )
    try:
        yield
    finally:
        if on_fd2:
            sys.stderr.flush()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def _litert_interpreter_class() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"
    except ImportError:
        raise EngineError(
            "no TFLite interpreter installed: pip install ai-edge-litert "
            "(or tflite-runtime) to run .tflite artifacts"
        ) from None


def litert_ops(interpreter: Any) -> list[str]:
    """Operator names of a LiteRT interpreter's graph (allocated), in execution order; each
    partition a delegate took is one DELEGATE node."""
    return [op["op_name"] for op in interpreter._get_ops_details()]


class LiteRTEngine:
    """Runs a .tflite artifact with the LiteRT interpreter (one window per invoke)."""

    def __init__(self, artifact: Artifact, threads: int = 1, quiet: bool = True) -> None:
        interpreter_class, package = _litert_interpreter_class()
        self.artifact = artifact
        self.name = f"litert ({package})"
        try:
            self._interpreter = interpreter_class(
                model_path=os.fspath(artifact.model_path), num_threads=threads
            )
            with quiet_native_stderr(quiet, keep_python=False):  # XNNPACK's INFO line
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise EngineError(f"{artifact.model_path}: LiteRT cannot load it ({err})") from None
        (inp,) = self._interpreter.get_input_details()
        (out,) = self._interpreter.get_output_details()
        info, source = artifact.artifact_info, str(artifact.model_path)
        _check_tensor(info.input, inp["shape"], inp["dtype"], inp["quantization"], source)
        _check_tensor(info.output, out["shape"], out["dtype"], out["quantization"], source)
        self._input, self._output = inp["index"], out["index"]

    def ops(self) -> list[str]:
        """Operator names of the flatbuffer's graph, as the interpreter lists them."""
        return litert_ops(self._interpreter)

    def predict(self, windows: np.ndarray) -> np.ndarray:
        x = _check_windows(windows, self.artifact)
        spec_in, spec_out = self.artifact.artifact_info.input, self.artifact.artifact_info.output
        probs = np.empty((len(x), spec_out.shape[-1]), dtype=np.float32)
        interpreter = self._interpreter
        for i, window in enumerate(x):
            interpreter.reset_all_variables()  # fused LSTM state must not carry over
            interpreter.set_tensor(self._input, quantize(window[None], spec_in))
            interpreter.invoke()
            probs[i] = dequantize(interpreter.get_tensor(self._output), spec_out)[0]
        return probs


class OnnxRuntimeEngine:
    """Runs a .onnx artifact with onnxruntime on the CPU (one window per run)."""

    def __init__(self, artifact: Artifact, threads: int = 1, quiet: bool = True) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise EngineError(
                "onnxruntime is not installed: pip install onnxruntime to run .onnx artifacts"
            ) from None
        self.artifact = artifact
        self.name = f"onnxruntime {onnxruntime.__version__}"
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(
                os.fspath(artifact.model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception types
            raise EngineError(
                f"{artifact.model_path}: onnxruntime cannot load it ({err})"
            ) from None
        (inp,) = self._session.get_inputs()
        (out,) = self._session.get_outputs()
        dtypes = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}
        info = artifact.artifact_info
        for spec, tensor in ((info.input, inp), (info.output, out)):
            if tensor.name != spec.name:
                raise ArtifactError(
                    f"{artifact.model_path}: tensor {tensor.name!r} in the model, "
                    f"{spec.name!r} in the manifest"
                )
            dtype = dtypes.get(tensor.type, tensor.type)
            _check_tensor(spec, tensor.shape, dtype, None, str(artifact.model_path))
        self._input, self._output = inp.name, out.name

    def predict(self, windows: np.ndarray) -> np.ndarray:
        x = _check_windows(windows, self.artifact)
        spec_in, spec_out = self.artifact.artifact_info.input, self.artifact.artifact_info.output
        probs = np.empty((len(x), spec_out.shape[-1]), dtype=np.float32)
        for i, window in enumerate(x):
            feed = {self._input: quantize(window[None], spec_in)}
            (result,) = self._session.run([self._output], feed)
            probs[i] = dequantize(result, spec_out)[0]
        return probs


class NumpyEngine:
    """Runs a .npz artifact (`dyser-export --format numpy`) with numpy alone.

    For boards with no interpreter wheel. All windows go through the graph as one batch.
    """

    def __init__(self, artifact: Artifact, threads: int = 1, quiet: bool = True) -> None:
        from edge_runtime.numpy_engine import GraphError, NumpyModel

        self.artifact = artifact
        self.name = f"numpy {np.__version__}"
        try:
            self._model = NumpyModel(artifact.model_path)
        except GraphError as err:
            raise EngineError(str(err)) from None

    def ops(self) -> list[str]:
        """Layer types of the graph."""
        return self._model.ops()

    def predict(self, windows: np.ndarray) -> np.ndarray:
        x = _check_windows(windows, self.artifact)
        return self._model(x).astype(np.float32)


def open_engine(
    artifact: Artifact | str | os.PathLike,
    engine: str = "auto",
    threads: int = 1,
    quiet: bool = True,
) -> LiteRTEngine | OnnxRuntimeEngine | NumpyEngine:
    """An engine for `artifact` (an `Artifact` or the path of an exported model).

    Args:
        artifact: verified artifact, or a path given to `load_artifact`.
        engine: "auto" (by format: tflite -> "litert", onnx -> "onnxruntime", numpy ->
            "numpy"), or "litert", "onnxruntime", "numpy" (must match the format).
        threads: CPU threads the interpreter may use (1 = single-threaded, the latency the
            export report quotes).
        quiet: drop the interpreter's own informational lines on stderr (see the module
            docstring); False shows them.

    Raises:
        ArtifactError: the artifact or its manifest is invalid or does not match the model.
        EngineError: unknown or unsuitable engine, or its interpreter is not installed.
    """
    if not isinstance(artifact, Artifact):
        artifact = load_artifact(artifact)
    if engine not in ENGINES:
        raise EngineError(f"engine must be one of {ENGINES}, got {engine!r}")
    if int(threads) < 1:
        raise EngineError(f"threads must be >= 1, got {threads}")
    fmt = artifact.artifact_info.format
    default = model_format(fmt).engine
    chosen = default if engine == "auto" else engine
    if chosen != default:
        raise EngineError(
            f"{artifact.model_path.name} is a {fmt} model; engine {engine!r} cannot run it "
            f"(use {default!r} or 'auto')"
        )
    engine_class = {"litert": LiteRTEngine, "onnxruntime": OnnxRuntimeEngine, "numpy": NumpyEngine}[
        chosen
    ]
    return engine_class(artifact, threads=int(threads), quiet=quiet)
