"""A synthetic emotional-speech corpus, so the whole pipeline runs with no external data.

This corpus DEMONSTRATES THE PIPELINE; it says nothing about real-world accuracy. A model
that does well here has learned the generator's rules, which are a caricature of the acoustic
correlates of emotion reported for acted speech (Scherer 2003; Banse & Scherer 1996), not
the variability of real voices. Report accuracy on a real corpus (e.g. EmoDB).

How an utterance is made (source-filter synthesis, all in numpy):

- Glottal source: a Rosenberg flow pulse per period, differentiated (lip radiation), with
  per-period jitter (period perturbation) and shimmer (amplitude perturbation); the open
  quotient sets the voice quality (pressed ... breathy), aspiration noise pulsed with the
  glottal flow adds breathiness, and a first-order low-pass sets the spectral tilt.
- Prosody: the pitch contour (falling, rising, flat, rise-fall) in semitones around the
  speaker's habitual pitch times an emotion factor, with pitch accents on stressed
  syllables, an optional tremor, and creaky (low, irregular) syllable ends.
- Vocal tract: a cascade of four second-order (Klatt) resonators per vowel, scaled by the
  speaker's vocal-tract length, applied as a time-varying filter frame by frame.
- Timing: syllables (an optional consonant - fricative noise or a plosive closure and
  burst - then a vowel) at an emotion-dependent rate, with raised-cosine envelopes and
  pauses, then the emotion's loudness, the speaker's recording gain and a noise floor.

Each emotion is an `EmotionStyle` (the means); every utterance draws its own parameters
around those means, and each speaker expresses emotions more or less strongly
(`SpeakerProfile.expressiveness`), so classes overlap and speakers differ.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = [
    "EMOTIONS",
    "STYLES",
    "EmotionStyle",
    "SpeakerProfile",
    "generate_utterance",
    "make_speakers",
    "write_corpus",
]

# EmoDB's label names, so a model trained here uses the same label set as on EmoDB.
EMOTIONS: tuple[str, ...] = (
    "anger",
    "boredom",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
)

CONTOURS = ("falling", "rising", "flat", "rise_fall")


@dataclass(frozen=True)
class EmotionStyle:
    """Mean acoustic parameters of one emotion (each utterance varies around them).

    Attributes:
        f0_scale: mean pitch as a multiple of the speaker's habitual pitch.
        f0_range_st: pitch excursion of the contour and accents, semitones.
        contour: usual global pitch shape, one of `CONTOURS`.
        tremor_st: depth of a slow pitch tremor (5-7 Hz), semitones.
        jitter: period-to-period perturbation, relative standard deviation.
        shimmer: period-to-period amplitude perturbation, standard deviation of log gain.
        level_db: loudness relative to neutral, dB.
        syllable_rate: syllables per second (tempo).
        pause_prob: probability of a pause after a syllable.
        pause_s: mean pause length, seconds.
        attack_s: rise time of a syllable's envelope, seconds (abrupt ... soft onsets).
        open_quotient: fraction of a glottal period the glottis is open (0.4 pressed,
            0.8 breathy); a smaller value gives a sharper closure and more high frequencies.
        breathiness: aspiration noise RMS relative to the voiced source RMS.
        tilt_hz: corner frequency of the extra -6 dB/octave spectral tilt, Hz.
        creak_prob: probability that a syllable ends in creaky voice.
        f1_shift: relative shift of the first formant (jaw opening).
    """

    f0_scale: float
    f0_range_st: float
    contour: str
    tremor_st: float
    jitter: float
    shimmer: float
    level_db: float
    syllable_rate: float
    pause_prob: float
    pause_s: float
    attack_s: float
    open_quotient: float
    breathiness: float
    tilt_hz: float
    creak_prob: float
    f1_shift: float


# High arousal (anger, happiness, fear): higher, louder, faster; anger pressed and falling,
# happiness wide and rising-falling, fear highest, jittery, breathy and trembling. Low arousal
# (boredom, sadness): lower, slower, quieter; boredom flat and monotonous, sadness breathy,
# dark, falling, with long pauses. Disgust: slow, falling, creaky.
STYLES: dict[str, EmotionStyle] = {
    # Columns: f0_scale, f0_range_st, contour, tremor_st, jitter, shimmer, level_db,
    # syllable_rate, pause_prob, pause_s, attack_s, open_quotient, breathiness, tilt_hz,
    # creak_prob, f1_shift (see EmotionStyle).
    "neutral": EmotionStyle(
        1.00, 3.0, "falling",   0.0, 0.006, 0.04,  0.0, 4.5,
        0.15, 0.15, 0.030, 0.60, 0.05, 2500.0, 0.05,  0.00),
    "anger": EmotionStyle(
        1.35, 4.0, "falling",   0.0, 0.012, 0.08,  8.0, 5.3,
        0.10, 0.10, 0.008, 0.35, 0.02, 8000.0, 0.02,  0.12),
    "happiness": EmotionStyle(
        1.35, 9.0, "rise_fall", 0.0, 0.008, 0.05,  3.0, 5.0,
        0.10, 0.12, 0.020, 0.60, 0.06, 3000.0, 0.02,  0.04),
    "fear": EmotionStyle(
        1.60, 3.5, "rising",    1.0, 0.030, 0.10,  1.0, 6.5,
        0.20, 0.12, 0.025, 0.65, 0.25, 3000.0, 0.02,  0.02),
    "boredom": EmotionStyle(
        0.88, 1.0, "flat",      0.0, 0.006, 0.04, -3.0, 3.4,
        0.25, 0.25, 0.050, 0.60, 0.06, 1800.0, 0.10, -0.03),
    "sadness": EmotionStyle(
        0.92, 2.0, "falling",   0.5, 0.015, 0.08, -8.0, 2.8,
        0.35, 0.35, 0.070, 0.78, 0.35,  700.0, 0.05, -0.06),
    "disgust": EmotionStyle(
        0.92, 5.0, "falling",   0.0, 0.015, 0.08, -2.0, 3.4,
        0.30, 0.30, 0.040, 0.50, 0.10, 1800.0, 0.60,  0.00),
}  # fmt: skip

# Parameters blended geometrically (ratios) rather than linearly by a speaker's expressiveness.
_GEOMETRIC = frozenset(
    {"f0_scale", "jitter", "shimmer", "syllable_rate", "pause_s", "attack_s", "tilt_hz"}
)

# Reference (adult male) formants F1-F3 of a few vowels, Hz; F4 is 3500 Hz for all.
_VOWELS = np.array(
    [
        [730.0, 1090.0, 2440.0],  # a
        [530.0, 1840.0, 2480.0],  # e
        [270.0, 2290.0, 3010.0],  # i
        [570.0, 840.0, 2410.0],  # o
        [300.0, 870.0, 2240.0],  # u
        [660.0, 1720.0, 2410.0],  # ae
        [500.0, 1500.0, 2500.0],  # schwa
    ]
)
_BANDWIDTHS = np.array([80.0, 100.0, 150.0, 200.0])
_F4_HZ = 3500.0
_REFERENCE_RMS_DBFS = -24.0  # neutral speech at a speaker gain of 0 dB
_F0_MAX_HZ = 1000.0


@dataclass(frozen=True)
class SpeakerProfile:
    """A synthetic speaker.

    Attributes:
        speaker_id: name used in file names and the manifest.
        gender: "female" or "male".
        f0_hz: habitual (neutral) pitch, Hz.
        formant_scale: formant frequency factor (shorter vocal tract -> larger), 1.0 is the
            reference adult male.
        gain_db: recording level offset, dB (so loudness alone does not identify emotion).
        expressiveness: how far this speaker's emotions move from neutral (1.0 = the styles).
        noise_db: background noise floor, dBFS RMS.
    """

    speaker_id: str
    gender: str
    f0_hz: float
    formant_scale: float
    gain_db: float
    expressiveness: float
    noise_db: float


def make_speakers(n: int, rng: np.random.Generator) -> list[SpeakerProfile]:
    """Draw `n` speakers, alternating female and male (ids ``spk01``, ``spk02``, ...).

    Males get a habitual pitch of 95-140 Hz and formant scale 0.95-1.05, females 175-245 Hz
    and 1.12-1.22; every speaker also gets a recording gain (+-3 dB), an expressiveness
    (0.85-1.15) and a noise floor (-65 to -50 dBFS).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    speakers = []
    for i in range(n):
        female = i % 2 == 0
        f0 = rng.uniform(175.0, 245.0) if female else rng.uniform(95.0, 140.0)
        scale = rng.uniform(1.12, 1.22) if female else rng.uniform(0.95, 1.05)
        speakers.append(
            SpeakerProfile(
                speaker_id=f"spk{i + 1:02d}",
                gender="female" if female else "male",
                f0_hz=float(f0),
                formant_scale=float(scale),
                gain_db=float(rng.uniform(-3.0, 3.0)),
                expressiveness=float(rng.uniform(0.85, 1.15)),
                noise_db=float(rng.uniform(-65.0, -50.0)),
            )
        )
    return speakers


def _utterance_style(
    emotion: str, speaker: SpeakerProfile, rng: np.random.Generator
) -> EmotionStyle:
    """The emotion's style as this speaker says it this time (speaker blend + random draw)."""
    if emotion not in STYLES:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {sorted(STYLES)}")
    target, neutral = STYLES[emotion], STYLES["neutral"]
    expr = speaker.expressiveness
    values = {}
    for field in dataclasses.fields(EmotionStyle):
        name = field.name
        if name == "contour":
            # Mostly the emotion's own contour, sometimes another (real within-class variety).
            values[name] = target.contour if rng.random() < 0.8 else str(rng.choice(CONTOURS))
            continue
        t, n = getattr(target, name), getattr(neutral, name)
        if name in _GEOMETRIC:
            v = n * (t / n) ** expr * np.exp(rng.normal(0.0, 0.10))
        else:
            v = n + expr * (t - n)
            v = v + rng.normal(0.0, 1.2) if name == "level_db" else v * np.exp(rng.normal(0, 0.12))
        values[name] = float(v)
    values["open_quotient"] = float(np.clip(values["open_quotient"], 0.3, 0.9))
    values["pause_prob"] = float(np.clip(values["pause_prob"], 0.0, 0.8))
    values["creak_prob"] = float(np.clip(values["creak_prob"], 0.0, 0.9))
    return EmotionStyle(**values)


def _syllables(duration_s: float, style: EmotionStyle, rng: np.random.Generator) -> list[dict]:
    """Plan syllables: onset consonant, vowel span (seconds), vowel, stress, creak."""
    t = rng.uniform(0.05, 0.2)
    end = duration_s - rng.uniform(0.08, 0.2)
    plan = []
    while True:
        stressed = rng.random() < 0.35
        length = np.exp(rng.normal(0.0, 0.25)) / style.syllable_rate * (1.3 if stressed else 1.0)
        consonant = str(rng.choice(["fricative", "plosive", "none"], p=[0.35, 0.35, 0.3]))
        cons_len = {"fricative": 0.06, "plosive": 0.05, "none": 0.0}[consonant]
        cons_len *= rng.uniform(0.7, 1.3)
        length = max(length, cons_len + 0.06)
        if t + length > end:
            break
        plan.append(
            dict(
                start=t,
                consonant=consonant,
                vowel_start=t + cons_len,
                end=t + length,
                vowel=int(rng.integers(len(_VOWELS))),
                stressed=stressed,
                creak=rng.random() < style.creak_prob,
            )
        )
        t += length
        if rng.random() < style.pause_prob:
            t += style.pause_s * np.exp(rng.normal(0.0, 0.3))
    if not plan:  # a very short duration: one vowel filling the speech span
        plan.append(
            dict(
                start=t,
                consonant="none",
                vowel_start=t,
                end=max(end, t + 0.05),
                vowel=int(rng.integers(len(_VOWELS))),
                stressed=True,
                creak=False,
            )
        )
    return plan


def _raised_cosine_envelope(n: int, attack: int, release: int) -> np.ndarray:
    """Length-n envelope rising over `attack` samples and falling over `release` samples."""
    env = np.ones(n)
    attack, release = min(attack, n // 2), min(release, n // 2)
    if attack:
        env[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    if release:
        env[n - release :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, release + 1) / release)
    return env


def _contour_st(u: np.ndarray, contour: str, range_st: float) -> np.ndarray:
    """Global pitch shape over normalised time u in [0, 1], semitones."""
    if contour == "falling":
        return range_st * (0.5 - u)
    if contour == "rising":
        return range_st * (u - 0.5)
    if contour == "flat":
        return np.zeros_like(u)
    if contour == "rise_fall":
        return range_st * (np.sin(np.pi * u) - 0.5)
    raise ValueError(f"unknown contour {contour!r}; expected one of {CONTOURS}")


def _glottal_source(
    f0: np.ndarray,
    jitter: np.ndarray,
    style: EmotionStyle,
    sample_rate: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Differentiated Rosenberg pulses following `f0` (Hz per sample), and the flow itself."""
    n = len(f0)
    # Periods are at least half the nominal one and f0 <= _F0_MAX_HZ: enough draws for all.
    draws = rng.standard_normal(int(2 * n * _F0_MAX_HZ / sample_rate) + 16)
    starts, periods = [], []
    pos, k = 0.0, 0
    while pos < n:
        i = int(pos)
        nominal = sample_rate / f0[i]
        period = max(nominal * (1.0 + jitter[i] * draws[k]), 0.5 * nominal)
        starts.append(pos)
        periods.append(period)
        pos += period
        k += 1
    starts_a, periods_a = np.asarray(starts), np.asarray(periods)
    amps = np.exp(style.shimmer * rng.standard_normal(len(starts_a)))
    samples = np.arange(n)
    idx = np.searchsorted(starts_a, samples, side="right") - 1
    tau = (samples - starts_a[idx]) / periods_a[idx]
    speed_quotient = 2.5
    tp = style.open_quotient * speed_quotient / (1.0 + speed_quotient)
    tn = style.open_quotient / (1.0 + speed_quotient)
    flow = np.where(
        tau < tp,
        0.5 - 0.5 * np.cos(np.pi * tau / tp),
        np.where(tau < tp + tn, np.cos(np.pi * np.minimum(tau - tp, tn) / (2.0 * tn)), 0.0),
    )
    flow *= amps[idx]
    return np.diff(flow, prepend=0.0), flow


def _resonator_response(freqs: np.ndarray, bandwidths: np.ndarray, omega: np.ndarray):
    """Complex response of cascaded Klatt resonators (unity DC gain).

    freqs, bandwidths: (frames, formants) in cycles per sample; omega: (bins,) rad/sample.
    Returns (frames, bins).
    """
    c = -np.exp(-2.0 * np.pi * bandwidths)
    b = 2.0 * np.exp(-np.pi * bandwidths) * np.cos(2.0 * np.pi * freqs)
    a = 1.0 - b - c
    z1 = np.exp(-1j * omega)[None, None, :]
    h = a[..., None] / (1.0 - b[..., None] * z1 - c[..., None] * z1 * z1)
    return np.prod(h, axis=1)


def _time_varying_filter(x: np.ndarray, responses: np.ndarray, hop: int, nfft: int):
    """Filter x frame by frame: Hann frames of 2*hop (sum to one), zero-padded to nfft.

    responses: (frames, nfft // 2 + 1) complex, frame i centred on sample i * hop.
    """
    frame = 2 * hop
    n_frames = responses.shape[0]
    padded = np.zeros((n_frames + 1) * hop + nfft)
    padded[hop : hop + len(x)] = x
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(frame) / frame)  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[: n_frames * hop : hop]
    y = np.fft.irfft(np.fft.rfft(frames * window, nfft) * responses, nfft)
    out = np.zeros(len(padded) + nfft)
    blocks = nfft // hop
    y = y.reshape(n_frames, blocks, hop)
    out_blocks = out[: (n_frames + blocks) * hop].reshape(n_frames + blocks, hop)
    for j in range(blocks):
        out_blocks[j : j + n_frames] += y[:, j]
    return out[hop : hop + len(x)]


def _frication(length: int, centre_hz: float, sample_rate: int, rng: np.random.Generator):
    """A noise burst band-passed around `centre_hz` (Gaussian in log frequency)."""
    noise = rng.standard_normal(length)
    spec = np.fft.rfft(noise)
    f = np.fft.rfftfreq(length, 1.0 / sample_rate)
    spec *= np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / centre_hz) / 0.6) ** 2)
    burst = np.fft.irfft(spec, length)
    return burst * _raised_cosine_envelope(length, length // 4, length // 3)


def generate_utterance(
    emotion: str,
    speaker: SpeakerProfile,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    duration: tuple[float, float] = (1.5, 3.0),
) -> np.ndarray:
    """Synthesise one utterance of `emotion` said by `speaker`.

    This demonstrates the pipeline; it is not a model of real emotional speech.

    Args:
        emotion: one of `EMOTIONS`.
        speaker: from `make_speakers`.
        rng: drives every random choice (same state -> same audio).
        sample_rate: Hz (8000 or more).
        duration: (min, max) seconds; the length is drawn uniformly from this range.

    Returns:
        float32 array of shape (round(d * sample_rate),), values in [-1, 1].
    """
    lo, hi = duration
    if not 0.3 <= lo <= hi:
        raise ValueError(f"duration must be (min, max) with 0.3 <= min <= max, got {duration}")
    if sample_rate < 8000:
        raise ValueError(f"sample_rate must be >= 8000 Hz, got {sample_rate}")
    style = _utterance_style(emotion, speaker, rng)
    duration_s = float(rng.uniform(lo, hi))
    n = round(duration_s * sample_rate)
    t = np.arange(n) / sample_rate
    plan = _syllables(duration_s, style, rng)

    # Envelopes and per-sample vowel / creak marks.
    voiced_env = np.zeros(n)
    vowel_of = np.full(n, -1)
    creak = np.zeros(n, dtype=bool)
    accents = np.zeros(n)
    attack = round(style.attack_s * sample_rate)
    for syl in plan:
        a, b = round(syl["vowel_start"] * sample_rate), min(round(syl["end"] * sample_rate), n)
        if b - a < 8:
            continue
        gain = 10.0 ** ((rng.normal(0.0, 1.5) + (4.0 if syl["stressed"] else 0.0)) / 20.0)
        release = round(rng.uniform(0.03, 0.07) * sample_rate)
        voiced_env[a:b] += gain * _raised_cosine_envelope(b - a, attack, release)
        vowel_of[a:b] = syl["vowel"]
        if syl["creak"]:
            creak[(a + b) // 2 : b] = True
        if syl["stressed"]:
            # A pitch accent: a raised-cosine bump over the vowel.
            height = style.f0_range_st * rng.uniform(0.3, 0.7)
            accents[a:b] += height * np.sin(np.pi * np.arange(b - a) / (b - a))

    # Pitch: speaker x emotion level, global contour, accents, tremor, creak.
    speech_start, speech_end = plan[0]["start"], plan[-1]["end"]
    u = np.clip((t - speech_start) / max(speech_end - speech_start, 1e-3), 0.0, 1.0)
    semitones = _contour_st(u, style.contour, style.f0_range_st) + accents
    semitones += style.tremor_st * np.sin(
        2.0 * np.pi * rng.uniform(5.0, 7.0) * t + rng.uniform(0, 2 * np.pi)
    )
    f0 = speaker.f0_hz * style.f0_scale * 2.0 ** (semitones / 12.0)
    f0 = np.where(creak, f0 * 0.55, f0)
    f0 = np.clip(f0, 40.0, _F0_MAX_HZ)
    jitter = np.where(creak, max(style.jitter, 0.08), style.jitter)

    pulses, flow = _glottal_source(f0, jitter, style, sample_rate, rng)
    voiced = voiced_env > 0.05
    source = pulses * voiced_env
    src_rms = np.sqrt(np.mean(source[voiced] ** 2)) if voiced.any() else 1.0
    aspiration = rng.standard_normal(n) * (0.3 + flow) * voiced_env
    aspiration *= style.breathiness * src_rms / max(np.sqrt(np.mean(aspiration**2)), 1e-12)
    source = source + aspiration

    # Vocal tract: formant targets per frame, smoothed across ~40 ms (coarticulation).
    hop = max(round(0.008 * sample_rate), 16)
    nfft = 8 * hop
    n_frames = -(-n // hop) + 1
    centres = np.minimum(np.arange(n_frames) * hop, n - 1)
    vowel_frames = vowel_of[centres]
    filled = np.maximum.accumulate(np.where(vowel_frames >= 0, np.arange(n_frames), 0))
    vowel_frames = np.where(vowel_frames >= 0, vowel_frames, vowel_frames[filled])
    vowel_frames = np.where(vowel_frames >= 0, vowel_frames, 6)  # schwa before the first vowel
    formants = (
        np.concatenate([_VOWELS[vowel_frames], np.full((n_frames, 1), _F4_HZ)], axis=1)
        * speaker.formant_scale
    )
    formants[:, 0] *= 1.0 + style.f1_shift
    kernel = np.hanning(7) / np.hanning(7).sum()
    padded = np.pad(formants, ((3, 3), (0, 0)), mode="edge")
    formants = np.stack([np.convolve(padded[:, j], kernel, "valid") for j in range(4)], axis=1)
    # Within a steady vowel the (1 Hz-rounded) targets repeat: compute each response once.
    formants, frame_of = np.unique(
        np.round(np.minimum(formants, 0.45 * sample_rate)), axis=0, return_inverse=True
    )
    omega = np.linspace(0.0, np.pi, nfft // 2 + 1)
    response = _resonator_response(
        formants / sample_rate, np.broadcast_to(_BANDWIDTHS / sample_rate, formants.shape), omega
    )
    freq_hz = omega * sample_rate / (2.0 * np.pi)
    response = (response / (1.0 + 1j * freq_hz / style.tilt_hz)[None, :])[frame_of.ravel()]
    speech = _time_varying_filter(source, response, hop, nfft)

    # Consonants: fricative noise, or a closure (silence, already there) and a burst.
    speech_rms = np.sqrt(np.mean(speech[voiced] ** 2)) if voiced.any() else 1e-3
    for syl in plan:
        a, b = round(syl["start"] * sample_rate), round(syl["vowel_start"] * sample_rate)
        if syl["consonant"] == "none" or b - a < 16:
            continue
        centre = float(rng.choice([2500.0, 4000.0, 6000.0])) * speaker.formant_scale
        centre = min(centre, 0.4 * sample_rate)
        if syl["consonant"] == "plosive":
            a = max(b - round(0.012 * sample_rate), a)
        burst = _frication(b - a, centre, sample_rate, rng)
        level = speech_rms * 10.0 ** (rng.uniform(-14.0, -8.0) / 20.0)
        speech[a:b] += burst * level / max(np.sqrt(np.mean(burst**2)), 1e-12)

    # Loudness: emotion level + speaker gain at a fixed reference, then the noise floor.
    active = np.sqrt(np.mean(speech[voiced] ** 2)) if voiced.any() else 1.0
    target_db = _REFERENCE_RMS_DBFS + style.level_db + speaker.gain_db
    speech *= 10.0 ** (target_db / 20.0) / max(active, 1e-12)
    speech += 10.0 ** (speaker.noise_db / 20.0) * rng.standard_normal(n)
    peak = np.max(np.abs(speech))
    if peak > 0.99:  # the recordist turns the gain down rather than clip
        speech *= 0.99 / peak
    return speech.astype(np.float32)


def write_corpus(
    out_dir: str | os.PathLike,
    n_speakers: int = 6,
    utterances_per_emotion_per_speaker: int = 8,
    emotions: Sequence[str] = EMOTIONS,
    sample_rate: int = 16000,
    seed: int = 0,
    duration: tuple[float, float] = (1.5, 3.0),
    overwrite: bool = False,
) -> Path:
    """Write a synthetic corpus (PCM16 wavs + ``manifest.csv``) and return the manifest path.

    This demonstrates the pipeline; accuracy on it says nothing about real speech.

    Layout: ``out_dir/<speaker>/<speaker>_<emotion>_<kk>.wav`` and ``out_dir/manifest.csv``
    with columns ``path,label,speaker,gender`` (paths relative to the manifest), readable by
    `keras_dyconv.corpora.load_manifest`. The corpus is built in a temporary folder next to
    `out_dir` and renamed into place, so a failure never leaves a half-written corpus.

    Deterministic: each utterance has its own random stream seeded by (seed, speaker,
    emotion, index), so an emotion subset or more utterances keep the others identical.
    The defaults (6 speakers x 7 emotions x 8, 1.5-3 s each) take a few seconds.

    Raises:
        FileExistsError: `out_dir` exists and is not empty, and `overwrite` is False.
        ValueError: unknown emotion or non-positive sizes.
    """
    out = Path(out_dir)
    unknown = [e for e in emotions if e not in STYLES]
    if unknown or not emotions:
        raise ValueError(f"emotions must be a non-empty subset of {EMOTIONS}, got {emotions}")
    if utterances_per_emotion_per_speaker < 1:
        raise ValueError(
            f"utterances_per_emotion_per_speaker must be >= 1, "
            f"got {utterances_per_emotion_per_speaker}"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite=True to replace)")
    out.parent.mkdir(parents=True, exist_ok=True)
    speakers = make_speakers(n_speakers, np.random.default_rng([seed, 0]))
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        rows = []
        for s, speaker in enumerate(speakers):
            (tmp / speaker.speaker_id).mkdir()
            for emotion in emotions:
                e = EMOTIONS.index(emotion)
                for k in range(utterances_per_emotion_per_speaker):
                    rng = np.random.default_rng([seed, 1, s, e, k])
                    audio = generate_utterance(emotion, speaker, rng, sample_rate, duration)
                    rel = f"{speaker.speaker_id}/{speaker.speaker_id}_{emotion}_{k:02d}.wav"
                    sf.write(tmp / rel, audio, sample_rate, subtype="PCM_16")
                    rows.append((rel, emotion, speaker.speaker_id, speaker.gender))
        with open(tmp / "manifest.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label", "speaker", "gender"])
            writer.writerows(rows)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "manifest.csv"
