"""Command line of the edge runtime: `python -m edge_runtime` (or `dyser-edge`).

    python -m edge_runtime predict clip.wav                  # the shipped single-clip model
    python -m edge_runtime predict model.tflite a.wav b.wav --json
    python -m edge_runtime predict model.tflite recordings/  # every .wav in the folder
    arecord -f S16_LE -r 16000 -c 1 | python -m edge_runtime stream  # the shipped stream model
    arecord -f S16_LE -r 16000 -c 1 | python -m edge_runtime stream model.tflite
    python -m edge_runtime info model.tflite

Standard library argparse only: the edge install has numpy and an interpreter, nothing else.
Option values are range-checked while parsing; every error is one line on stderr naming the
file or option. Exit codes: see `EXIT_CODES`.

Without a model, `predict` and `info` use `DEFAULT_MODEL` (dataset normalisation: each clip
on its own) and `stream` uses `DEFAULT_STREAM_MODEL` (normalization "stream": it adapts to
the voice it hears); when that file is missing (`stream_model`), `stream` falls back to
`DEFAULT_MODEL` with a note on stderr rather than refusing: the single-clip model runs on a
stream too, it only does not adapt.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge_runtime.artifact import ArtifactError, load_artifact
from edge_runtime.engines import ENGINES, EngineError, open_engine
from edge_runtime.formats import MODEL_SUFFIXES
from edge_runtime.recognizer import (
    DEFAULT_MODEL,
    DEFAULT_STREAM_MODEL,
    EmotionRecognizer,
    StreamRecognizer,
)
from edge_runtime.speech import NO_SPEECH, SpeechGateConfig
from edge_runtime.wav import DEFAULT_LIMITS, WavError, WavLimits

EXIT_OK, EXIT_FILE, EXIT_USAGE, EXIT_NO_SPEECH = 0, 1, 2, 3
EXIT_CODES = (
    "exit status: 0 ok; 1 an audio file (or folder) could not be read or classified (the "
    "other files are still processed); 2 usage error (bad option or value) or model error "
    "(missing, modified or unsupported model, no interpreter); 3 (predict) a file held no "
    f"speech (label '{NO_SPEECH}'; 1 wins if a file also failed)"
)


def _error(message: object) -> None:
    print(f"error: {message}", file=sys.stderr)


def _recognizer(
    model: str | Path,
    engine: str,
    threads: int,
    limits: WavLimits = DEFAULT_LIMITS,
    speech_gate: bool = True,
) -> EmotionRecognizer:
    try:
        gate = SpeechGateConfig() if speech_gate else None
        return EmotionRecognizer(
            model, engine=engine, threads=threads, limits=limits, speech_gate=gate
        )
    except (ArtifactError, EngineError) as err:
        _error(err)
        raise SystemExit(EXIT_USAGE) from None


def _audio_files(paths: list[str]) -> tuple[list[str], list[str]]:
    """Paths with each folder replaced by its .wav files (sorted, not recursive); also the
    folders that hold none."""
    files, empty = [], []
    for path in paths:
        if Path(path).is_dir():
            found = sorted(
                str(p) for p in Path(path).iterdir() if p.suffix.lower() == ".wav" and p.is_file()
            )
            files += found
            if not found:
                empty.append(path)
        else:
            files.append(path)
    return files, empty


def cmd_predict(args: argparse.Namespace) -> int:
    """`predict`: one line (or JSON object) per audio file; exit 1 if any file failed, else
    3 if any file had no speech."""
    paths = list(args.audio)
    model = args.model
    # A manifest (.json) in the model's place is taken as the model, for load_artifact to
    # refuse for what it is rather than score the clip with the shipped model (B8).
    if model is None and paths and paths[0].endswith((*MODEL_SUFFIXES, ".json")):
        model = paths.pop(0)
    if not paths:
        _error("no audio files given")
        return EXIT_USAGE
    limits = WavLimits(max_seconds=args.max_seconds, max_bytes=args.max_mib << 20)
    recognizer = _recognizer(
        model if model is not None else DEFAULT_MODEL,
        args.engine,
        args.threads,
        limits,
        speech_gate=not args.no_speech_gate,
    )
    files, empty = _audio_files(paths)
    status = EXIT_OK
    for folder in empty:
        _error(f"{folder}: no .wav files in this folder")
        status = EXIT_FILE
    for path in files:
        if args.independent:
            recognizer.reset_stream()
        try:
            prediction = recognizer.predict_file(path)
        except (WavError, OSError, ValueError, EngineError) as err:
            _error(err)
            status = EXIT_FILE
            continue
        except MemoryError:
            _error(f"{path}: out of memory (lower --max-seconds or free memory)")
            status = EXIT_FILE
            continue
        if not prediction.has_speech and status == EXIT_OK:
            status = EXIT_NO_SPEECH
        if args.json:
            print(json.dumps({"file": path, **prediction.to_dict()}), flush=True)
        elif not prediction.has_speech:
            print(f"{path}: {NO_SPEECH}  ({prediction.speech.reason})", flush=True)
        else:
            ranked = sorted(prediction.probabilities.items(), key=lambda kv: -kv[1])
            top = "  ".join(f"{name} {p:.2f}" for name, p in ranked[:3])
            print(f"{path}: {prediction.label}  ({top})", flush=True)
    return status


def stream_model(model: str | None) -> str | Path:
    """The model `stream` runs: `model` when given, else `DEFAULT_STREAM_MODEL`, else (that
    file missing, e.g. deleted to save space) `DEFAULT_MODEL`, with a note on stderr."""
    if model is not None:
        return model
    if DEFAULT_STREAM_MODEL.is_file():
        return DEFAULT_STREAM_MODEL
    print(
        f"note: no stream model at {DEFAULT_STREAM_MODEL}; using the single-clip model "
        f"{DEFAULT_MODEL}, which does not adapt to the voice it hears",
        file=sys.stderr,
        flush=True,
    )
    return DEFAULT_MODEL


def cmd_stream(args: argparse.Namespace) -> int:
    """`stream`: PCM16 mono from stdin, one decision per hop until the stream ends."""
    recognizer = _recognizer(
        stream_model(args.model), args.engine, args.threads, speech_gate=not args.no_speech_gate
    )
    stream = StreamRecognizer(
        recognizer, sample_rate=args.rate, hop_s=args.hop, smoothing=args.smoothing
    )
    source = sys.stdin.buffer
    block = 2 * stream.hop  # bytes of one hop of PCM16
    pending = b""
    while True:
        data = source.read(block)
        if not data:
            break  # end of stream; a dangling odd byte (partial sample) is dropped
        pending += data
        usable = len(pending) - len(pending) % 2
        samples = np.frombuffer(pending[:usable], dtype="<i2").astype(np.float32) / 32768.0
        pending = pending[usable:]
        for decision in stream.push(samples):
            if args.json:
                line = json.dumps(
                    {
                        "time_s": decision.time_s,
                        "label": decision.label,
                        "probabilities": decision.probabilities,
                    }
                )
            elif decision.label == NO_SPEECH:
                line = f"{decision.time_s:9.2f}s  {NO_SPEECH}"
            else:
                line = (
                    f"{decision.time_s:9.2f}s  {decision.label:<10} "
                    f"{decision.probabilities[decision.label]:.2f}"
                )
            print(line, flush=True)
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    """`info`: labels, frontend, window, tensors, quantization and ops of an artifact."""
    try:
        artifact = load_artifact(args.model or DEFAULT_MODEL)
    except ArtifactError as err:
        _error(err)
        return EXIT_USAGE
    meta, info = artifact.metadata, artifact.artifact_info
    summary = {
        "model": str(artifact.model_path),
        "format": info.format,
        "quantization": info.quantization,
        "size_bytes": info.size_bytes,
        "sha256": info.sha256,
        "labels": list(meta.labels),
        "input": info.input.to_dict(),
        "output": info.output.to_dict(),
        "window": {
            **meta.window.to_dict(),
            "seconds": meta.window.frames * meta.frontend.hop_length / meta.frontend.sample_rate,
        },
        "frontend": meta.frontend.to_dict(),
        "ops": _ops(artifact),
        "info": meta.info,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    fe = meta.frontend
    print(
        f"{summary['model']}  ({info.format}, {info.quantization}, "
        f"{info.size_bytes / 1024:.0f} KiB)"
    )
    print(f"  labels:   {', '.join(meta.labels)}")
    print(
        f"  frontend: {fe.feature}, {fe.sample_rate} Hz, n_fft {fe.n_fft}, win "
        f"{fe.win_length}, hop {fe.hop_length}, {fe.n_mels} mels, normalization "
        f"{fe.normalization}"
    )
    print(
        f"  window:   {meta.window.frames} frames ({summary['window']['seconds']:.2f} s), "
        f"hop {meta.window.hop_frames} frames"
    )
    print(
        f"  input:    {info.input.shape} {info.input.dtype}"
        + (
            f" scale {info.input.scale:.5g} zero point {info.input.zero_point}"
            if info.input.quantized
            else ""
        )
    )
    print(f"  output:   {info.output.shape} {info.output.dtype}")
    if summary["ops"]:
        print(f"  ops:      {', '.join(summary['ops'])}")
    return EXIT_OK


def _ops(artifact) -> list[str]:
    """Operator types of the model, when the interpreter to list them is installed."""
    try:
        engine = open_engine(artifact)
    except (EngineError, ArtifactError):
        return []
    # DELEGATE is the interpreter's XNNPACK node, not an op of the model file.
    return sorted(set(getattr(engine, "ops", lambda: [])()) - {"DELEGATE"})


def number(
    kind: type, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> Callable[[str], float]:
    """An argparse `type`: a finite `kind` (int or float) in [low, high] (or open ends), so
    that 0, negative, NaN and absurd values are usage errors (exit 2) at parse time."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None
        inside = (low < value if low_open else low <= value) and (
            value < high if high_open else value <= high
        )
        if not math.isfinite(value) or not inside:
            raise argparse.ArgumentTypeError(f"{text} is not in {interval}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of `python -m edge_runtime` (predict, stream, info)."""
    parser = argparse.ArgumentParser(
        prog="python -m edge_runtime",
        description="Speech emotion recognition on small devices (numpy + an interpreter).",
        epilog=EXIT_CODES,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_predict(sub)
    _add_stream(sub)
    _add_info(sub)
    return parser


def _engine_options(p: argparse.ArgumentParser) -> None:
    """--engine, --threads and --no-speech-gate, shared by predict and stream."""
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="inference engine (default: by model format)",
    )
    p.add_argument(
        "--threads", type=number(int, 1, 256), default=1, help="interpreter threads, 1..256 (1)"
    )
    p.add_argument(
        "--no-speech-gate",
        action="store_true",
        help=f"classify everything: no '{NO_SPEECH}' for silence, noise, tones or "
        "clips too short (see edge_runtime.speech)",
    )


def _add_predict(sub: argparse._SubParsersAction) -> None:
    """The `predict` subcommand: WAV files or folders, optionally led by a model."""
    limits = DEFAULT_LIMITS
    p = sub.add_parser(
        "predict",
        help="classify WAV files",
        description="Label and probabilities per file. The first argument may "
        "be a model (.tflite/.onnx/.npz); otherwise the shipped single-clip model "
        f"({DEFAULT_MODEL.name}) is used. A file without speech is labelled "
        f"'{NO_SPEECH}' (exit status 3). A folder stands for its .wav files (sorted, not "
        f"recursive). Accepted WAVs: PCM 8/16/24/32-bit or float, {limits.min_rate}.."
        f"{limits.max_rate} Hz, up to {limits.max_channels} channels; other formats "
        "(FLAC, MP3, Ogg, ...) are refused by name.",
        epilog=EXIT_CODES,
    )
    p.add_argument("audio", nargs="+", metavar="[MODEL] AUDIO", help="WAV files or folders")
    p.add_argument(
        "--max-seconds",
        type=number(float, 0, 86400, low_open=True),
        default=limits.max_seconds,
        help=f"longest recording accepted, seconds (default {limits.max_seconds:g}); it bounds "
        "the memory and time spent on one file",
    )
    p.add_argument(
        "--max-mib",
        type=number(int, 1, 1 << 16),
        default=limits.max_bytes >> 20,
        help=f"largest file read, MiB (default {limits.max_bytes >> 20}); pipes and devices "
        "are read up to this size, then refused",
    )
    p.add_argument("--model", help="exported model (with its .json manifest)")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.add_argument(
        "--independent",
        action="store_true",
        help="for models with normalization 'stream': forget the running feature "
        "statistics before each file (files from different speakers or devices); by "
        "default the files are one stream that the model adapts to",
    )
    _engine_options(p)
    p.set_defaults(func=cmd_predict)


def _add_stream(sub: argparse._SubParsersAction) -> None:
    """The `stream` subcommand: PCM16 mono on stdin."""
    limits = DEFAULT_LIMITS
    p = sub.add_parser(
        "stream",
        help="classify raw PCM16 mono audio from stdin",
        description="Reads little-endian 16-bit mono PCM from stdin (e.g. "
        "`arecord -f S16_LE -r 16000 -c 1`) and prints one "
        f"decision per hop ('{NO_SPEECH}' for a window without speech). Without a model it "
        f"runs the shipped stream model ({DEFAULT_STREAM_MODEL.name}), made for one voice "
        "heard for a while: it adapts to that voice. If that file is missing it falls back "
        f"to the single-clip model ({DEFAULT_MODEL.name}), with a note on stderr.",
        epilog=EXIT_CODES,
    )
    p.add_argument(
        "model",
        nargs="?",
        help=f"exported model (default: the shipped stream model, {DEFAULT_STREAM_MODEL.name})",
    )
    p.add_argument(
        "--rate",
        type=number(int, limits.min_rate, limits.max_rate),
        default=16000,
        help=f"sample rate of stdin, {limits.min_rate}..{limits.max_rate} Hz (16000)",
    )
    p.add_argument(
        "--hop",
        type=number(float, 0.01, 60),
        default=0.5,
        help="seconds between decisions, 0.01..60 (0.5)",
    )
    p.add_argument(
        "--smoothing",
        type=number(float, 0, 1, high_open=True),
        default=0.5,
        help="weight of the past in the moving average of probabilities, [0, 1) (0.5)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per decision")
    _engine_options(p)
    p.set_defaults(func=cmd_stream)


def _add_info(sub: argparse._SubParsersAction) -> None:
    """The `info` subcommand: describe an artifact."""
    p = sub.add_parser("info", help="describe an exported model", epilog=EXIT_CODES)
    p.add_argument(
        "model",
        nargs="?",
        help=f"exported model (default: the shipped single-clip model, {DEFAULT_MODEL.name})",
    )
    p.add_argument("--json", action="store_true", help="the description as one JSON object")
    p.set_defaults(func=cmd_info)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m edge_runtime` and `dyser-edge`; returns the exit code."""
    args = build_parser().parse_args(argv)
    # Quiet exit when the reader of our output goes away (e.g. `| head`); restored after,
    # so a host process that calls `main` (tests, notebooks) keeps Python's own handling.
    previous = signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        signal.signal(signal.SIGPIPE, previous)


if __name__ == "__main__":
    sys.exit(main())
