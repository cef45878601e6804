"""Emotion recognition from files and live streams: frontend + windows + engine.

`EmotionRecognizer` runs one exported artifact on whole recordings (windows every hop,
mean of the window probabilities, as in training and export). `StreamRecognizer` runs it on
an endless stream of samples with bounded memory: a ring buffer of one window, a decision
every hop, and exponential smoothing of the probabilities over time.

Both gate their input with `edge_runtime.speech` first: a clip (or stream window) without
voiced speech gets the label `NO_SPEECH` ("no speech") and no emotion; `speech_gate=None`
turns the gate off.

A model trained with normalization "stream" adapts to the audio it hears: both keep a
`StreamStatistics` (online CMVN) that every new frame updates, across calls and files,
until `reset_stream()` (e.g. when the speaker or device changes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.artifact import Artifact, load_artifact
from edge_runtime.engines import open_engine
from edge_runtime.features import Frontend, StreamStatistics, check_sample_rate, normalize
from edge_runtime.speech import (
    NO_SPEECH,
    SpeechDecision,
    SpeechGateConfig,
    SpeechTracker,
    detect_speech,
)
from edge_runtime.wav import DEFAULT_LIMITS, WavError, WavLimits, read_wav
from edge_runtime.windows import aggregate, split_windows, tile_to_length, window_starts

#: The shipped model for single clips (`predict`): dataset normalisation, no state.
DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "dyser-multi-int8.tflite"
#: The shipped model for a stream of one voice for a while (`stream`): normalization
#: "stream", which adapts to the voice it hears (worse than DEFAULT_MODEL on a clip alone).
DEFAULT_STREAM_MODEL = DEFAULT_MODEL.with_name("dyser-multi-stream-int8.tflite")
#: Windows per engine call (32 windows = 34 s of audio at the 3 s / 1 s policy).
BATCH = 32


@dataclass(frozen=True)
class Prediction:
    """An utterance-level decision.

    Attributes:
        label: the most probable class, or `NO_SPEECH` when the speech gate found none.
        probabilities: class name -> probability (mean over windows); empty for no speech.
        window_starts: start of each window in seconds (none for no speech).
        window_probabilities: (n_windows, n_classes) per-window probabilities.
        speech: the speech gate's decision (None when the gate is off).
    """

    label: str
    probabilities: dict[str, float]
    window_starts: tuple[float, ...]
    window_probabilities: np.ndarray
    speech: SpeechDecision | None = None

    @property
    def has_speech(self) -> bool:
        """False when the speech gate found no speech (True when the gate is off)."""
        return self.speech is None or self.speech.has_speech

    def to_dict(self) -> dict:
        """JSON form: label, probabilities, each window's start, label and confidence, and
        the speech gate's {"seconds", "reason"} (null when the gate is off)."""
        labels = list(self.probabilities)
        return {
            "label": self.label,
            "probabilities": self.probabilities,
            "windows": [
                {"start_s": s, "label": labels[int(p.argmax())], "confidence": float(p.max())}
                for s, p in zip(self.window_starts, self.window_probabilities, strict=True)
            ],
            "speech": None if self.speech is None else self.speech.to_dict(),
        }


class EmotionRecognizer:
    """Run an exported model on audio.

    Args:
        model: an `Artifact` or the path of an exported model (with its manifest); default:
            `DEFAULT_MODEL`, the single-clip model shipped in `edge_runtime/models/`
            (`DEFAULT_STREAM_MODEL` is the one for streams of one voice).
        engine: "auto", "litert", "onnxruntime" or "numpy" (see `open_engine`).
        threads: interpreter threads.
        limits: what `predict_file` accepts (rates, channels, duration, bytes); see
            `edge_runtime.wav.WavLimits` for the defaults.
        speech_gate: thresholds of the speech gate (`edge_runtime.speech`); None turns it
            off (every clip gets an emotion, as before the gate existed).
    """

    def __init__(
        self,
        model: Artifact | str | os.PathLike | None = None,
        engine: str = "auto",
        threads: int = 1,
        limits: WavLimits = DEFAULT_LIMITS,
        speech_gate: SpeechGateConfig | None = SpeechGateConfig(),  # noqa: B008 (frozen)
    ) -> None:
        self.limits = limits
        self.artifact = (
            model
            if isinstance(model, Artifact)
            else load_artifact(model if model is not None else DEFAULT_MODEL)
        )
        self.engine = open_engine(self.artifact, engine=engine, threads=threads)
        self.frontend = Frontend(self.artifact.metadata.frontend)
        self.policy = self.artifact.metadata.window
        self.labels = self.artifact.labels
        self.speech_gate = speech_gate
        config = self.frontend.config
        self.stream = StreamStatistics(config) if config.normalization == "stream" else None

    def reset_stream(self) -> None:
        """Forget the running feature statistics (normalization "stream" only; else no-op)."""
        if self.stream is not None:
            self.stream.reset()

    @property
    def window_samples(self) -> int:
        """Samples (at the model's rate) that produce one window of features."""
        return (self.policy.frames - 1) * self.frontend.config.hop_length

    def predict_samples(self, samples: np.ndarray, sample_rate: int) -> Prediction:
        """Decision for a mono float signal in [-1, 1] at `sample_rate` Hz.

        With the speech gate on, a clip without speech is not classified (nor added to the
        running statistics): label `NO_SPEECH`, no probabilities, no windows.
        """
        speech = None
        if self.speech_gate is not None:
            check_sample_rate(sample_rate)  # an absurd rate is an error, not "no speech"
            speech = detect_speech(samples, sample_rate, self.speech_gate)
            if not speech.has_speech:
                empty = np.zeros((0, len(self.labels)), np.float32)
                return Prediction(NO_SPEECH, {}, (), empty, speech)
        feats = self.frontend(samples, sample_rate, self.stream)
        windows = split_windows(feats, self.policy).astype(np.float32)
        # Batches of windows: a long recording costs the engine one batch's memory.
        probs = np.concatenate(
            [self.engine.predict(windows[i : i + BATCH]) for i in range(0, len(windows), BATCH)]
        )
        mean = aggregate(probs)
        hop_s = self.frontend.config.hop_length / self.frontend.config.sample_rate
        starts = window_starts(len(feats), self.policy)  # a short clip tiles to one window
        return Prediction(
            label=self.labels[int(mean.argmax())],
            probabilities={name: float(p) for name, p in zip(self.labels, mean, strict=True)},
            window_starts=tuple(round(s * hop_s, 3) for s in starts),
            window_probabilities=probs,
            speech=speech,
        )

    def predict_file(self, path: str | os.PathLike) -> Prediction:
        """Decision for a WAV file (any PCM/float WAV; resampled to the model's rate).

        Raises `WavError` naming the file for anything it cannot decode, that exceeds
        `limits`, or that the frontend refuses (e.g. a single sample)."""
        samples, rate = read_wav(path, limits=self.limits)
        try:
            return self.predict_samples(samples, rate)
        except ValueError as err:
            raise WavError(os.fspath(path), str(err)) from None


@dataclass(frozen=True)
class Decision:
    """One streaming decision: the window ending at `time_s` seconds of stream.

    `label` is `NO_SPEECH` with empty `probabilities` when the window holds no speech.
    """

    time_s: float
    label: str
    probabilities: dict[str, float]


class StreamRecognizer:
    """Sliding-window recognition over a live stream, in bounded memory.

    Feed samples with `push`; every `hop_s` seconds of audio (once a full window has been
    heard) the last window is classified and the smoothed probabilities give a decision.
    Memory is one window of samples, whatever the stream's length. With the recognizer's
    speech gate on, a window without speech gives a `NO_SPEECH` decision (no emotion), is
    left out of the running statistics, and restarts the smoothing; the gate analyses each
    pushed sample once (`SpeechTracker`).

    Args:
        recognizer: the model to run.
        sample_rate: rate of the pushed samples (resampled per window if it differs from the
            model's rate).
        hop_s: seconds between decisions.
        smoothing: weight of the past in the exponential moving average of probabilities
            (0 = no smoothing).
    """

    def __init__(
        self,
        recognizer: EmotionRecognizer,
        sample_rate: int = 16000,
        hop_s: float = 0.5,
        smoothing: float = 0.5,
    ) -> None:
        if not 0 < hop_s <= 3600 or not 0 <= smoothing < 1:  # NaN fails both
            raise ValueError(
                f"need 0 < hop_s <= 3600 and 0 <= smoothing < 1, got {hop_s}, {smoothing}"
            )
        if not DEFAULT_LIMITS.min_rate <= sample_rate <= DEFAULT_LIMITS.max_rate:
            raise ValueError(
                f"sample_rate must be in {DEFAULT_LIMITS.min_rate}..{DEFAULT_LIMITS.max_rate} "
                f"Hz, got {sample_rate}"
            )
        self.recognizer = recognizer
        self.sample_rate = int(sample_rate)
        model_rate = recognizer.frontend.config.sample_rate
        self.window = round(recognizer.window_samples * self.sample_rate / model_rate)
        self.hop = max(1, round(hop_s * self.sample_rate))
        self.smoothing = float(smoothing)
        self._ring = np.zeros(self.window, dtype=np.float32)
        self._filled = 0  # valid samples in the ring (saturates at the window size)
        self._since_decision = 0
        self._total = 0
        self._unseen = 0  # samples not yet in the running feature statistics
        self._smoothed: np.ndarray | None = None
        gate = recognizer.speech_gate
        self._gate = (
            None
            if gate is None
            else SpeechTracker(self.sample_rate, self.window / self.sample_rate, gate)
        )

    def push(self, samples: np.ndarray) -> list[Decision]:
        """Add samples (float32 in [-1, 1]); return the decisions they complete."""
        decisions = []
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        while len(samples):
            take = min(len(samples), self.hop - self._since_decision)
            chunk, samples = samples[:take], samples[take:]
            self._append(chunk)
            if self._gate is not None:
                self._gate.push(chunk)
            self._since_decision += take
            self._total += take
            self._unseen += take
            if self._since_decision == self.hop:
                self._since_decision = 0
                if self._filled == self.window:
                    decisions.append(self._decide())
        return decisions

    def _append(self, chunk: np.ndarray) -> None:
        n = len(chunk)
        if n >= self.window:
            self._ring[:] = chunk[-self.window :]
        else:
            self._ring[:-n] = self._ring[n:]
            self._ring[-n:] = chunk
        self._filled = min(self.window, self._filled + n)

    def _decide(self) -> Decision:
        r = self.recognizer
        time_s = round(self._total / self.sample_rate, 3)
        if self._gate is not None and not self._gate.decision().has_speech:
            self._smoothed, self._unseen = None, 0
            return Decision(time_s=time_s, label=NO_SPEECH, probabilities={})
        feats = r.frontend.unnormalized(self._ring, self.sample_rate)
        if r.stream is not None:
            # Only the frames this hop added update the running statistics.
            new = min(len(feats), -(-self._unseen * len(feats) // self.window))
            r.stream.update(feats[-new:])
            self._unseen = 0
            r.stream.normalize(feats)
        else:
            normalize(feats, r.frontend.config)
        window = tile_to_length(feats, r.policy.frames)[-r.policy.frames :]
        probs = r.engine.predict(window[None].astype(np.float32))[0].astype(np.float64)
        if self._smoothed is None:
            self._smoothed = probs
        else:
            self._smoothed = self.smoothing * self._smoothed + (1 - self.smoothing) * probs
        return Decision(
            time_s=time_s,
            label=r.labels[int(self._smoothed.argmax())],
            probabilities={n: float(p) for n, p in zip(r.labels, self._smoothed, strict=True)},
        )
