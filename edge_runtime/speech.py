"""Speech-presence gate: is there voiced speech in a clip? (numpy + stdlib only).

An emotion model answers for any input, so silence, noise, hum or a beep would get a
confident emotion. The gate runs first and answers "no speech" for those.

How a clip is judged (all thresholds in `SpeechGateConfig`):

1. Frames of 60 ms every 10 ms, at the clip's own rate (4 kHz or more; rates of 32 kHz
   and up are first decimated by an integer factor to 16-32 kHz). The level is measured on
   every frame (from sums over 10 ms pieces, each sample squared once); periodicity, pitch
   and harmonics (the spectral measures, most of the cost) on every 2nd frame
   (`pitch_every`), and the frame between holds them. Only loud frames (step 2) can be
   voiced, so the spectral measures are taken only where a loud frame needs them; a quiet
   frame gets periodicity 0, pitch 0 Hz and no harmonics. That changes no voiced frame and
   no decision.
2. A frame is *voiced* when all of these hold:
   - loud enough: RMS above an absolute floor (-75 dBFS, far below quiet speech) and a few
     dB above the clip's own noise floor (a low percentile of its frame energies), so a
     steady tone, hum or noise, all at their own floor, has no loud frame;
   - periodic with a pitch in the voice's range: the autocorrelation of the
     pre-emphasized, spectrally whitened frame (each bin below 1.5 kHz divided by the
     local spectral level, so the colour of a noise does not look periodic) peaks at a lag
     of 1/600 .. 1/60 s;
   - harmonic: at least 3 multiples of that pitch stand out of the spectrum between them
     (a pure tone or a sine sweep has one).
3. Voiced runs shorter than `min_voiced_run_s` are dropped (clicks, chance peaks in
   noise); the rest is the clip's voiced speech, in seconds.
4. The clip has speech when it holds at least `min_speech_s` of it, that is at least
   `min_voiced_fraction` of its loud frames (noise is voiced only by chance), the pitch of
   those frames moves (octave-folded range of `min_pitch_range_st` semitones or more:
   intonation; beeps or a buzz have a flat pitch), and the loudness of the clip moves at
   syllable rates (2-8 Hz modulation of the frame energy of `min_modulation` or more).

Music with a moving melody has all of these and passes; so does singing.

`detect_speech` returns a `SpeechDecision` (has speech, seconds of voiced speech, and a
reason when there is none); `speech_frames` returns the per-frame voiced mask. The frame
measures of steps 1-2 (level, periodicity, pitch, harmonics) are computed in
`edge_runtime.voicing`; the rules on them live here.
Measured in docs/benchmarks.md ("Speech gate"): false rejections on the EmoDB, CASIA and
RAVDESS utterances, detection of generated silence, noise, hum, tones, clicks and more.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edge_runtime.voicing import (
    decimate,
    finite_mono,
    frame_levels,
    frame_view,
    measure_block,
    percentiles,
    pitch_range_st,
    runs_at_least,
    syllable_modulation,
)

__all__ = [
    "NO_SPEECH",
    "FrameAnalysis",
    "SpeechDecision",
    "SpeechGateConfig",
    "SpeechTracker",
    "analyze_frames",
    "detect_speech",
    "speech_frames",
]

NO_SPEECH = "no speech"  # the label a gated clip or stream window gets instead of an emotion
# Frames analysed at once: 3 s at a 10 ms hop in one block; ~7 MB of temporaries at 16 kHz
# (13 MB at 32 kHz), whatever the clip's length.
_BLOCK_FRAMES = 300


@dataclass(frozen=True)
class SpeechGateConfig:
    """Thresholds of the speech gate (defaults tuned on generated signals, see the module).

    Attributes:
        frame_s: analysis frame length, seconds (3 periods of the lowest pitch).
        hop_s: analysis hop, seconds (the time resolution of `speech_frames`).
        pitch_every: periodicity, pitch and harmonics are measured on every
            `pitch_every`-th frame (from the clip's or stream's first frame) and held by the
            frames between; the level is measured on every frame. 2 halves the gate's
            spectral work; 1 measures every frame.
        min_sample_rate: Hz; lower rates cannot carry the harmonics of a voice.
        floor_db: absolute frame-RMS floor, dBFS (full scale sine = -3 dBFS); quiet speech
            peaking at -40 dBFS has voiced frames near -55 dBFS.
        noise_percentile: percentile of the clip's frame energies taken as its noise floor.
        noise_margin_db: dB above that noise floor a voiced frame must be.
        f0_min_hz, f0_max_hz: pitch range of voices, Hz.
        band_hz: upper edge of the band searched for harmonics, Hz (capped at 0.45 x the
            sample rate).
        pitch_band_hz: upper edge of the band whose autocorrelation gives the pitch, Hz
            (low harmonics: their phase holds over a frame when the pitch moves).
        smooth_hz: half-width of the spectral smoothing used to whiten each frame, Hz.
        min_periodicity: whitened normalized autocorrelation at the pitch period, 0..1
            (white noise: 0.28 or less in 90 % of frames).
        min_harmonics: harmonics of the pitch that must stand out of the spectrum.
        harmonic_db: how far a harmonic must stand above the spectrum midway between
            harmonics, dB.
        min_voiced_run_s: shortest run of consecutive voiced frames kept, seconds.
        min_speech_s: voiced seconds a clip (or stream window) needs to count as speech.
        min_voiced_fraction: voiced frames over loud frames, 0..1: speech is voiced for a
            good part of the time it is heard (0.29 at least on the corpora, 0.7 typical),
            noise only by chance (under 0.01), however long the clip.
        min_pitch_range_st: octave-folded 10-90 % range of the voiced pitch, semitones.
        min_modulation: energy modulation at 2-8 Hz (syllable rate): standard deviation of
            the band-passed frame-RMS envelope over its mean, 0..1+.
    """

    frame_s: float = 0.06
    hop_s: float = 0.01
    pitch_every: int = 2
    min_sample_rate: int = 4000
    floor_db: float = -75.0
    noise_percentile: float = 10.0
    noise_margin_db: float = 3.0
    f0_min_hz: float = 60.0
    f0_max_hz: float = 600.0
    band_hz: float = 4000.0
    pitch_band_hz: float = 1500.0
    smooth_hz: float = 200.0
    min_periodicity: float = 0.3
    min_harmonics: int = 3
    harmonic_db: float = 6.0
    min_voiced_run_s: float = 0.05
    min_speech_s: float = 0.2
    min_voiced_fraction: float = 0.1
    min_pitch_range_st: float = 0.3
    min_modulation: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.hop_s <= self.frame_s:
            raise ValueError(f"need 0 < hop_s <= frame_s, got {self.hop_s}, {self.frame_s}")
        if not (isinstance(self.pitch_every, int) and self.pitch_every >= 1):
            raise ValueError(f"need an integer pitch_every >= 1, got {self.pitch_every!r}")
        if not 0 < self.f0_min_hz < self.f0_max_hz:
            raise ValueError(f"need 0 < f0_min_hz < f0_max_hz, got {self.f0_min_hz}, ...")

    def to_dict(self) -> dict:
        """The thresholds as a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class FrameAnalysis:
    """Per-frame measurements of a clip, each of shape (frames,), hop `hop_s` seconds.

    Attributes:
        rms_db: frame RMS, dBFS (-inf for digital silence).
        periodicity: whitened normalized autocorrelation at the best pitch lag, 0..1.
        f0_hz: pitch of that lag, Hz.
        harmonics: harmonics of `f0_hz` standing out of the spectrum (counted only in
            frames above `floor_db`, periodic enough and with a pitch in range; 0 elsewhere).
            These three are measured on every `pitch_every`-th frame and held between, and
            only where a loud frame needs them: elsewhere they are 0 (not voiced).
        loud: frames above the absolute floor and the clip's noise floor + margin.
        voiced: loud, periodic, harmonic frames in runs of `min_voiced_run_s` or more.
        hop_s: seconds between frames.
    """

    rms_db: np.ndarray
    periodicity: np.ndarray
    f0_hz: np.ndarray
    harmonics: np.ndarray
    loud: np.ndarray
    voiced: np.ndarray
    hop_s: float


@dataclass(frozen=True)
class SpeechDecision:
    """The gate's answer for one clip.

    Attributes:
        has_speech: True when the clip holds voiced speech.
        speech_seconds: seconds of voiced speech found (frames x hop).
        reason: why there is no speech ("" when there is).
        pitch_range_st: octave-folded pitch range of the voiced frames, semitones (0 when
            the clip was not analysed: too short or too low a rate).
        modulation: 2-8 Hz energy modulation of the clip (0 when not analysed).
        voiced_fraction: voiced frames over loud frames, 0..1 (0 when not analysed).
    """

    has_speech: bool
    speech_seconds: float
    reason: str
    pitch_range_st: float = 0.0
    modulation: float = 0.0
    voiced_fraction: float = 0.0

    def to_dict(self) -> dict:
        """JSON form: {"seconds": voiced seconds (3 decimals), "reason": why none, or ""}."""
        return {"seconds": round(self.speech_seconds, 3), "reason": self.reason}


def analyze_frames(
    samples: np.ndarray, sample_rate: int, config: SpeechGateConfig | None = None
) -> FrameAnalysis:
    """Per-frame loudness, periodicity, pitch, harmonics and voicing of a mono clip.

    Args:
        samples: (n,) float signal in [-1, 1]; non-finite values count as 0.
        sample_rate: Hz, at least `config.min_sample_rate`.
        config: thresholds (default `SpeechGateConfig()`).

    Returns:
        A `FrameAnalysis` with one entry per frame of `frame_s` every `hop_s` seconds (one
        frame for a clip shorter than a frame). Memory: about twice the clip (a padded or
        decimated copy, a finiteness mask) plus ~7 MB of per-block temporaries at 16 kHz
        (blocks of 300 frames), whatever the clip's length.
    """
    config = config or SpeechGateConfig()
    if sample_rate < config.min_sample_rate:
        raise ValueError(
            f"speech gate needs a sample rate of {config.min_sample_rate} Hz or more, "
            f"got {sample_rate}"
        )
    x, rate = decimate(finite_mono(samples), sample_rate)
    length, hop = _frame_samples(rate, config)
    rms_db = frame_levels(x, length, hop)
    # Only loud frames can be voiced: the spectral measures are taken where they can decide.
    loud = _loud(rms_db, config)
    spectral = _measure(frame_view(x, length, hop), rms_db, loud, rate, config)
    return _voicing(rms_db, *spectral, config, loud)


def _frame_samples(rate: int, config: SpeechGateConfig) -> tuple[int, int]:
    """Frame length and hop in samples at `rate` Hz."""
    return max(2, round(config.frame_s * rate)), max(1, round(config.hop_s * rate))


def _measure(
    frames: np.ndarray,
    rms_db: np.ndarray,
    wanted: np.ndarray,
    rate: int,
    config: SpeechGateConfig,
    start: int = 0,
    previous: tuple[float, float, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """periodicity, f0_hz, harmonics of (n, length) frames, in blocks of frames.

    `rms_db`, `wanted`: (n,) levels and the frames whose voicing can matter (see
    `measure_block`); `start`: the stream index of the first frame (which frames get the
    spectral measures); `previous`: the (periodicity, f0_hz, harmonics) of frame
    `start - 1`, needed when `start` is not a multiple of `config.pitch_every`.
    """
    parts = []
    for i in range(0, len(frames), _BLOCK_FRAMES):
        block = slice(i, i + _BLOCK_FRAMES)
        part = measure_block(
            frames[block], rms_db[block], wanted[block], rate, config, start + i, previous
        )
        previous = tuple(p[-1] for p in part)
        parts.append(part)
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


def _loud(rms_db: np.ndarray, config: SpeechGateConfig) -> np.ndarray:
    """Frames above the absolute floor and `noise_margin_db` above the frames' noise floor."""
    finite = rms_db[np.isfinite(rms_db)]
    noise = percentiles(finite, config.noise_percentile)[0] if len(finite) else -np.inf
    return (rms_db >= config.floor_db) & (rms_db >= noise + config.noise_margin_db)


def _voicing(
    rms_db: np.ndarray,
    periodicity: np.ndarray,
    f0: np.ndarray,
    harmonics: np.ndarray,
    config: SpeechGateConfig,
    loud: np.ndarray | None = None,
) -> FrameAnalysis:
    """Loud and voiced frames from the per-frame measures of one clip (or stream window);
    `loud`: `_loud(rms_db, config)` when already known."""
    loud = _loud(rms_db, config) if loud is None else loud
    candidate = (
        loud
        & (periodicity >= config.min_periodicity)
        & (harmonics >= config.min_harmonics)
        & (f0 >= config.f0_min_hz)
        & (f0 <= config.f0_max_hz)
    )
    voiced = runs_at_least(candidate, round(config.min_voiced_run_s / config.hop_s))
    return FrameAnalysis(rms_db, periodicity, f0, harmonics, loud, voiced, config.hop_s)


def speech_frames(
    samples: np.ndarray, sample_rate: int, config: SpeechGateConfig | None = None
) -> np.ndarray:
    """Voiced-speech mask, bool of shape (frames,), one frame every `config.hop_s` seconds.

    Frame i covers samples [i * hop, i * hop + frame) with hop and frame in samples at
    `sample_rate` Hz. See the module docstring for what makes a frame voiced.
    """
    return analyze_frames(samples, sample_rate, config).voiced


def detect_speech(
    samples: np.ndarray, sample_rate: int, config: SpeechGateConfig | None = None
) -> SpeechDecision:
    """Whether a mono clip holds speech, how many seconds of it, and why not.

    Args:
        samples: (n,) float signal in [-1, 1] (non-finite values count as 0).
        sample_rate: Hz.
        config: thresholds (default `SpeechGateConfig()`).

    Returns:
        A `SpeechDecision`. Clips shorter than `min_speech_s`, at a rate below
        `min_sample_rate`, silent, noise-only, with too little voiced speech, a flat pitch
        (tones, hum, buzz) or a flat loudness are "no speech", with the reason.
    """
    config = config or SpeechGateConfig()
    duration = int(np.asarray(samples).size) / sample_rate if sample_rate > 0 else 0.0
    early = _refuse_early(duration, sample_rate, config)
    return early or _decide(analyze_frames(samples, sample_rate, config), config)


def _refuse_early(
    duration: float, sample_rate: int, config: SpeechGateConfig
) -> SpeechDecision | None:
    """ "No speech" for a rate or a duration too low to analyse, else None."""
    if sample_rate < config.min_sample_rate:
        return SpeechDecision(
            False, 0.0, f"sample rate {sample_rate} Hz is below {config.min_sample_rate} Hz"
        )
    if duration < config.min_speech_s:
        return SpeechDecision(
            False, 0.0, f"clip of {duration:.3f} s is shorter than {config.min_speech_s} s"
        )
    return None


def _decide(a: FrameAnalysis, config: SpeechGateConfig) -> SpeechDecision:
    """The clip-level rules (module docstring, step 4) on a clip's frame analysis."""
    seconds = round(float(a.voiced.sum() * a.hop_s), 3)
    pitch = pitch_range_st(a.f0_hz[a.voiced])
    modulation = syllable_modulation(a.rms_db, a.hop_s)
    fraction = float(a.voiced.sum() / max(1, a.loud.sum()))
    if not (a.rms_db >= config.floor_db).any():
        reason = f"silent (below {config.floor_db:g} dBFS)"
    elif not a.loud.any():
        reason = "steady level (nothing above the clip's noise floor): tone, hum or noise"
    elif seconds < config.min_speech_s:
        what = "no voiced frames" if seconds == 0 else f"{seconds:.2f} s voiced"
        reason = f"{what}, need {config.min_speech_s} s (noise or too short)"
    elif fraction < config.min_voiced_fraction:
        reason = f"only {100 * fraction:.1f} % of the sound is voiced: noise"
    elif pitch < config.min_pitch_range_st:
        reason = (
            f"steady pitch (range {pitch:.2f} semitones < {config.min_pitch_range_st}): "
            "a tone or hum"
        )
    elif modulation < config.min_modulation:
        reason = f"steady loudness (2-8 Hz modulation {modulation:.2f} < {config.min_modulation})"
    else:
        reason = ""
    return SpeechDecision(not reason, seconds, reason, pitch, modulation, fraction)


class SpeechTracker:
    """The gate on a live stream: each sample is analysed once, decisions on the last window.

    `push` analyses the frames that new samples complete and keeps the measures of the
    frames of the last `window_s` seconds; `decision()` applies the clip rules to them, as
    `detect_speech` would to that window (frames, and the every `pitch_every`-th frame that
    gets the spectral measures, are counted from the stream's start, and the stream is
    analysed at its own rate, not decimated). The window's noise floor is not known when a
    frame arrives, so every frame above `floor_db` gets the spectral measures (a clip skips
    those below its own noise floor too). Memory: a few floats per frame of the window plus
    one frame of samples.

    Args:
        sample_rate: Hz of the pushed samples.
        window_s: seconds of stream a decision covers.
        config: thresholds (default `SpeechGateConfig()`).
    """

    def __init__(
        self, sample_rate: int, window_s: float, config: SpeechGateConfig | None = None
    ) -> None:
        self.config = config or SpeechGateConfig()
        self.sample_rate = int(sample_rate)
        self.window_s = float(window_s)
        self._length, self._hop = _frame_samples(max(1, self.sample_rate), self.config)
        window = round(self.window_s * self.sample_rate)
        self._capacity = max(1, 1 + (window - self._length) // self._hop)
        self.reset()

    def reset(self) -> None:
        """Forget the stream heard so far."""
        self._pending = np.zeros(0, np.float32)  # samples from the next frame's start on
        self._measures = [np.zeros(0, np.float64) for _ in range(3)] + [np.zeros(0, np.int64)]
        self._heard = 0
        self._frames = 0  # frames completed so far: the stream index of the next one

    def push(self, samples: np.ndarray) -> None:
        """Analyse the frames that `samples` (float, mono, in [-1, 1]) complete."""
        x = finite_mono(samples)
        self._heard += len(x)
        if self.sample_rate < self.config.min_sample_rate:
            return
        buf = np.concatenate([self._pending, x])
        n = 0 if len(buf) < self._length else 1 + (len(buf) - self._length) // self._hop
        if n:
            used = buf[: (n - 1) * self._hop + self._length]
            frames = frame_view(used, self._length, self._hop)
            # Only the last `capacity` frames count; from a spectrally measured one on (or
            # from the first new frame, which then holds the last kept frame's measures).
            skip = max(0, n - self._capacity)
            skip = max(0, skip - (self._frames + skip) % self.config.pitch_every)
            kept = self._measures[1:]
            previous = tuple(m[-1] for m in kept) if len(kept[0]) else None
            rms_db = frame_levels(used[skip * self._hop :], self._length, self._hop)
            # The window's noise floor moves as it slides: only frames below the absolute
            # floor are known never to be loud, and only they skip the spectral measures.
            wanted = rms_db >= self.config.floor_db
            start = self._frames + skip
            spectral = _measure(
                frames[skip:], rms_db, wanted, self.sample_rate, self.config, start, previous
            )
            new = (rms_db, *spectral)
            self._frames += n
            self._measures = [
                np.concatenate([old, part])[-self._capacity :]
                for old, part in zip(self._measures, new, strict=True)
            ]
        self._pending = buf[n * self._hop :]

    def decision(self) -> SpeechDecision:
        """The gate's answer for the last `window_s` seconds heard."""
        duration = min(self._heard / max(1, self.sample_rate), self.window_s)
        early = _refuse_early(duration, self.sample_rate, self.config)
        return early or _decide(_voicing(*self._measures, self.config), self.config)
