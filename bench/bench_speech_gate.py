"""Speech gate (edge_runtime.speech): false rejections on real speech, detection of non-speech.

1. Every utterance of the shared corpora (EmoDB 535, CASIA 1200, RAVDESS 1440) through
   `detect_speech` at the file's own rate: how many are gated out ("no speech"), with the
   file and the reason for each, and the distribution of the voiced seconds found.
   WAV files are read with `edge_runtime.read_wav` (what the device reads), RAVDESS's FLAC
   with soundfile (here only; the edge runtime reads WAV only).
2. Generated non-speech, several seeds and levels per class: digital silence, white, pink
   and brown noise (-60 .. -10 dBFS), mains hum, pure and harmonic tones, beeps, sweeps,
   clicks and buzz, random bytes read as PCM16, speech-shaped modulated noise, a melody of
   harmonic notes, and very short clips: the fraction each class gets gated ("no speech").
3. Synthetic voiced speech (`keras_dyconv.synthetic`, glottal source through formants):
   the generated dev set the thresholds were tuned on, with the non-speech above.

Every cost is process CPU time (`time.process_time`: all of the process's threads, so a
BLAS thread pool spinning counts too), the run's length wall time (`time.perf_counter`). BLAS
keeps its default threads, as on a device. The gate's cost is also given as a ratio to the
edge frontend's (log-mel, `edge_runtime.features.Frontend`), both timed on the same clips,
interleaved, so that the load of a shared machine hits both alike. Raw results go to
docs/results/bench/speech_gate.json; bench/render_speech_gate.py renders the section of
docs/benchmarks.md from that file (`python bench/_report.py render speech_gate` redoes just
that step).

    python bench/bench_speech_gate.py [--datasets /work/shared/datasets] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
from _report import add_output_options, environment, output_targets, publish

from edge_runtime.config import FrontendConfig
from edge_runtime.features import Frontend
from edge_runtime.speech import SpeechGateConfig, SpeechTracker, detect_speech
from edge_runtime.wav import read_wav

DEFAULT_DATASETS = Path("/work/shared/datasets")
CORPORA = {  # name -> (glob under the corpus folder, expected count)
    "emodb": ("wav/*.wav", 535),
    "casia": ("*/*/*.wav", 1200),
    "ravdess": ("Actor_*/*.flac", 1440),
}
RATE = 16000
SECONDS = 3.0
LEVELS_DB = (-60, -50, -40, -30, -20, -10)  # RMS, dBFS


def _scale(x: np.ndarray, rms_db: float) -> np.ndarray:
    """`x` scaled to an RMS of `rms_db` dBFS (float32)."""
    rms = np.sqrt(np.mean(np.square(x, dtype=np.float64)))
    return (x * (10 ** (rms_db / 20) / max(rms, 1e-20))).astype(np.float32)


def coloured_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    f[0] = f[1]
    return np.fft.irfft(spec / f ** (exponent / 2), n)


def harmonic(f0: np.ndarray | float, n: int, amps: list[float]) -> np.ndarray:
    """Sum of harmonics of a (possibly time-varying) pitch f0 (Hz) with amplitudes `amps`."""
    phase = 2 * np.pi * np.cumsum(np.broadcast_to(np.asarray(f0, float), (n,))) / RATE
    return sum(a * np.sin((h + 1) * phase) for h, a in enumerate(amps))


def nonspeech(seed: int) -> Iterator[tuple[str, str, np.ndarray, int]]:
    """(class, name, samples, rate) of every generated non-speech signal for one seed."""
    rng = np.random.default_rng(seed)
    n = int(SECONDS * RATE)
    t = np.arange(n) / RATE
    yield from _steady(rng, n, t)
    yield from _patterned(rng, n, t)
    yield from _long_and_short(rng, n)


def _steady(rng: np.random.Generator, n: int, t: np.ndarray) -> Iterator[tuple]:
    """Silence, coloured noise, mains hum, pure and harmonic tones (`n` samples each)."""
    yield "silence", "digital zeros", np.zeros(n, np.float32), RATE
    yield (
        "silence",
        "16-bit dither (1 LSB)",
        (rng.integers(-1, 2, n) / 32768).astype(np.float32),
        RATE,
    )
    for name, exponent in (("white", 0.0), ("pink", 1.0), ("brown", 2.0)):
        for level in LEVELS_DB:
            yield (
                f"{name} noise",
                f"{level} dBFS",
                _scale(coloured_noise(n, exponent, rng), level),
                RATE,
            )
    for mains in (50, 60):
        for level in (-40, -20):
            amps = list(rng.uniform(0.05, 1.0, 8))
            hum = _scale(harmonic(mains * (1 + rng.normal(0, 1e-4)), n, amps), level)
            yield (
                "hum",
                f"{mains} Hz + harmonics, {level} dBFS",
                hum + _scale(rng.standard_normal(n), level - 30),
                RATE,
            )
    for f in (100, 180, 250, 440, 1000, 3000):
        yield "pure tone", f"{f} Hz", _scale(np.sin(2 * np.pi * f * t), -20), RATE
    for f in (110, 220):
        amps = [1 / (h + 1) for h in range(20)]  # sawtooth-like
        vibrato = f * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
        yield (
            "harmonic tone",
            f"{f} Hz, 20 harmonics, vibrato",
            _scale(harmonic(vibrato, n, amps), -20),
            RATE,
        )


def _patterned(rng: np.random.Generator, n: int, t: np.ndarray) -> Iterator[tuple]:
    """Beeps, sweeps, clicks, random bytes, modulated noise and noise bursts."""
    gate = (np.sin(2 * np.pi * 2.5 * t) > 0).astype(float)  # 0.2 s on, 0.2 s off
    yield "beeps", "1 kHz, 2.5 per s", _scale(np.sin(2 * np.pi * 1000 * t) * gate, -20), RATE
    yield (
        "beeps",
        "200 Hz square, 2.5 per s",
        _scale(np.sign(np.sin(2 * np.pi * 200 * t)) * gate, -20),
        RATE,
    )
    sweep_lin = 100 + (4000 - 100) * t / SECONDS
    yield "sweep", "sine 100-4000 Hz linear", _scale(harmonic(sweep_lin, n, [1.0]), -20), RATE
    sweep_log = 100 * 40 ** (t / SECONDS)
    yield "sweep", "sine 100-4000 Hz log", _scale(harmonic(sweep_log, n, [1.0]), -20), RATE
    siren = 150 + 100 * np.sin(2 * np.pi * 0.7 * t)
    yield (
        "sweep",
        "harmonic siren 50-250 Hz",
        _scale(harmonic(siren, n, [1 / (h + 1) for h in range(10)]), -20),
        RATE,
    )
    for rate_hz in (1, 10, 100):
        train = np.zeros(n)
        train[:: RATE // rate_hz] = 0.5
        yield "clicks", f"impulse train {rate_hz} per s", train.astype(np.float32), RATE
    random_clicks = np.zeros(n)
    random_clicks[rng.integers(0, n, 30)] = rng.uniform(-1, 1, 30)
    yield "clicks", "30 random clicks", random_clicks.astype(np.float32), RATE
    raw = rng.integers(0, 256, 2 * n, dtype=np.uint8).tobytes()
    yield "random bytes", "as PCM16", (np.frombuffer(raw, "<i2") / 32768).astype(np.float32), RATE
    # Noise shaped like speech's long-term spectrum, modulated at a syllable rate.
    shaped = np.fft.irfft(
        np.fft.rfft(rng.standard_normal(n)) * _speech_tilt(np.fft.rfftfreq(n, 1 / RATE)), n
    )
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    yield "modulated noise", "speech-shaped, 4 Hz", _scale(shaped * envelope, -20), RATE
    for exponent, colour in ((0.0, "white"), (2.0, "brown")):
        yield (
            "noise bursts",
            f"{colour}, 0.2 s on / 0.2 s off",
            _scale(coloured_noise(n, exponent, rng) * gate, -20),
            RATE,
        )


def _long_and_short(rng: np.random.Generator, n: int) -> Iterator[tuple]:
    """30 s of noise, a melody, and clips shorter than the gate's minimum."""
    long = 10 * n  # 30 s: chance voiced frames must not add up to speech
    lt = np.arange(long) / RATE
    yield (
        "long noise",
        "30 s white, 4 Hz modulated",
        _scale(rng.standard_normal(long) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * lt)), -20),
        RATE,
    )
    yield (
        "long noise",
        "30 s pink, level steps every 0.1 s",
        _scale(
            coloured_noise(long, 1.0, rng) * np.repeat(rng.uniform(0.05, 1, 300), long // 300), -20
        ),
        RATE,
    )
    yield "melody", "harmonic notes", _scale(_melody(n, rng), -20), RATE
    yield "short", "2 samples", rng.uniform(-0.5, 0.5, 2).astype(np.float32), RATE
    yield "short", "0.01 s noise", _scale(rng.standard_normal(RATE // 100), -20), RATE
    yield "short", "0.1 s harmonic", _scale(harmonic(150, RATE // 10, [1, 0.5, 0.3]), -20), RATE


def _speech_tilt(f: np.ndarray) -> np.ndarray:
    """Amplitude of speech's long-term average spectrum: flat to 500 Hz, -6 dB/octave above."""
    return 1.0 / np.maximum(1.0, f / 500.0)


def _melody(n: int, rng: np.random.Generator) -> np.ndarray:
    """Notes of 0.25 s on a pentatonic scale, 6 harmonics, plucked (decaying) envelope."""
    note = RATE // 4
    out = np.zeros(n)
    scale = 220 * 2 ** (np.array([0, 2, 4, 7, 9, 12]) / 12)
    for start in range(0, n - note + 1, note):
        f = rng.choice(scale)
        decay = np.exp(-np.arange(note) / (0.08 * RATE))
        out[start : start + note] = harmonic(f, note, [1 / (h + 1) for h in range(6)]) * decay
    return out


def synthetic_speech(count: int, seed: int) -> Iterator[tuple[str, np.ndarray, int]]:
    """(name, samples, rate) of generated utterances (every emotion, several speakers)."""
    from keras_dyconv.synthetic import EMOTIONS, generate_utterance, make_speakers

    rng = np.random.default_rng(seed)
    speakers = make_speakers(6, rng)
    for i in range(count):
        speaker = speakers[i % len(speakers)]
        emotion = EMOTIONS[i % len(EMOTIONS)]
        yield (
            f"{speaker.speaker_id}-{emotion}-{i}",
            generate_utterance(emotion, speaker, rng, RATE, duration=(1.0, 3.0)),
            RATE,
        )


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate: read_wav for WAV (as the device), soundfile for FLAC."""
    if path.suffix.lower() == ".wav":
        return read_wav(path)
    import soundfile as sf

    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    return samples.mean(axis=1), int(rate)


def corpus_files(datasets: Path, limit: int | None) -> dict[str, list[Path]]:
    """The utterances of each corpus found under `datasets` (the first `limit` if given)."""
    found = {}
    for name, (pattern, _) in CORPORA.items():
        files = sorted((datasets / name).glob(pattern))
        if files:
            found[name] = files[:limit] if limit else files
    return found


def _percentiles(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    if not len(a):
        return {}
    return {
        "min": round(float(a.min()), 3),
        "p1": round(float(np.percentile(a, 1)), 3),
        "median": round(float(np.median(a)), 3),
    }


def measure_corpora(files: dict[str, list[Path]], config: SpeechGateConfig, root: Path) -> dict:
    """Per corpus: utterances, rejections (file, reason), voiced seconds and timing."""
    out = {}
    for name, paths in files.items():
        rejected, voiced, pitch, modulation, fraction = [], [], [], [], []
        audio_s, gate_s = 0.0, 0.0
        quiet, quietest = 0, float("inf")
        for i, path in enumerate(paths):
            samples, rate = read_audio(path)
            peak_db = 20 * np.log10(max(float(np.abs(samples).max()), 1e-10))
            quiet += peak_db < -37
            quietest = min(quietest, peak_db)
            t0 = time.process_time()
            decision = detect_speech(samples, rate, config)
            gate_s += time.process_time() - t0
            audio_s += len(samples) / rate
            if not decision.has_speech:
                rejected.append({"file": str(path.relative_to(root)), **decision.to_dict()})
            voiced.append(decision.speech_seconds)
            pitch.append(decision.pitch_range_st)
            modulation.append(decision.modulation)
            fraction.append(decision.voiced_fraction)
            if (i + 1) % 200 == 0:
                print(f"  {name}: {i + 1}/{len(paths)}, {len(rejected)} rejected", file=sys.stderr)
        out[name] = {
            "utterances": len(paths),
            "expected": CORPORA[name][1],
            "rejected": len(rejected),
            "rejections": rejected,
            "quiet_files_peak_below_-37dBFS": int(quiet),
            "quietest_peak_dbfs": round(quietest, 1),
            "voiced_s": _percentiles(voiced),
            "pitch_range_st": _percentiles(pitch),
            "modulation": _percentiles(modulation),
            "voiced_fraction": _percentiles(fraction),
            "audio_s": round(audio_s, 1),
            "gate_s": round(gate_s, 2),
        }
        print(f"{name}: {len(rejected)} of {len(paths)} rejected", file=sys.stderr)
    return out


def measure_nonspeech(seeds: int, config: SpeechGateConfig) -> dict:
    """Per class: signals generated, gated, and the ones that got through."""
    out: dict[str, dict] = {}
    for seed in range(seeds):
        for cls, name, samples, rate in nonspeech(seed):
            entry = out.setdefault(
                cls, {"signals": 0, "gated": 0, "max_voiced_s": 0.0, "passed": [], "kinds": []}
            )
            decision = detect_speech(samples, rate, config)
            entry["signals"] += 1
            entry["max_voiced_s"] = max(entry["max_voiced_s"], decision.speech_seconds)
            entry["gated"] += not decision.has_speech
            if name not in entry["kinds"]:
                entry["kinds"].append(name)
            if decision.has_speech:
                entry["passed"].append(f"{name} (seed {seed}, {decision.speech_seconds:.2f} s)")
    return out


def measure_synthetic(count: int, config: SpeechGateConfig) -> dict:
    rejected = []
    for name, samples, rate in synthetic_speech(count, seed=1):
        decision = detect_speech(samples, rate, config)
        if not decision.has_speech:
            rejected.append({"utterance": name, **decision.to_dict()})
    return {"utterances": count, "rejected": len(rejected), "rejections": rejected}


def measure_cost(
    config: SpeechGateConfig, window_s: float = 3.0, hop_s: float = 0.5, rounds: int = 5
) -> dict:
    """CPU time of the gate on synthetic speech at 16 kHz, medians: a whole `window_s` clip
    (`detect_speech`, what `predict` adds), the edge frontend on the same clip (log-mel of
    the default `FrontendConfig`, what `predict` always pays) timed right before or after
    it, alternately, `rounds` times over the clips, and one streaming hop (`SpeechTracker`:
    push `hop_s` of audio, decide on the last `window_s`)."""
    stream = np.concatenate([x for _, x, _ in synthetic_speech(12, seed=2)])
    window, hop = int(window_s * RATE), int(hop_s * RATE)
    clips = [stream[start : start + window] for start in range(0, len(stream) - window, window)]
    frontend = Frontend(FrontendConfig())
    steps = {
        "gate": lambda clip: detect_speech(clip, RATE, config),
        "frontend": lambda clip: frontend(clip, RATE),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm-up: caches, plans
        step(clips[0])
    for r in range(rounds):
        for i, clip in enumerate(clips):
            for name in sorted(steps, reverse=(r + i) % 2 == 1):
                t0 = time.process_time()
                steps[name](clip)
                times[name].append(time.process_time() - t0)
    tracker, hop_times = SpeechTracker(RATE, window_s, config), []
    for start in range(0, len(stream) - hop, hop):
        t0 = time.process_time()
        tracker.push(stream[start : start + hop])
        tracker.decision()
        hop_times.append(time.process_time() - t0)
    gate, front = (1000 * float(np.median(times[name])) for name in ("gate", "frontend"))
    return {
        "window_s": window_s,
        "hop_s": hop_s,
        "clip_ms": gate,
        "frontend_clip_ms": front,
        "gate_over_frontend": gate / front,
        "clips_timed": len(times["gate"]),
        "hop_ms": 1000 * float(np.median(hop_times[int(window_s / hop_s) :])),
        "stream_s": len(stream) / RATE,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--limit", type=int, default=None, help="first N files per corpus")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per non-speech signal")
    parser.add_argument("--synthetic", type=int, default=100, help="synthetic utterances")
    add_output_options(parser, "speech_gate")
    args = parser.parse_args(argv)
    config = SpeechGateConfig()
    env = environment(("numpy", "soundfile"))
    t0 = time.perf_counter()
    data = {
        "environment": env,
        "settings": {
            "datasets": str(args.datasets),
            "limit": args.limit,
            "seeds": args.seeds,
            "synthetic": args.synthetic,
            "processes": 1,
            "config": asdict(config),
        },
        "corpora": measure_corpora(corpus_files(args.datasets, args.limit), config, args.datasets),
        "nonspeech": measure_nonspeech(args.seeds, config),
        "synthetic_speech": measure_synthetic(args.synthetic, config),
        "cost": measure_cost(config),
    }
    data["wall_s"] = round(time.perf_counter() - t0, 1)
    print(publish("speech_gate", data, **output_targets(args)))


if __name__ == "__main__":
    main()
