"""Source-filter synthesis of one emotional utterance, all in numpy (`generate_utterance`).

This DEMONSTRATES THE PIPELINE (see `keras_dyconv.synthetic`); it is not a model of real
emotional speech. How an utterance is made:

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

The emotion's and speaker's parameters come from `keras_dyconv.synthetic_styles`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_dyconv.synthetic_styles import (
    CONTOURS,
    EmotionStyle,
    SpeakerProfile,
    utterance_style,
)

__all__ = ["generate_utterance"]

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
    # The steps draw from `rng` in this order; changing it changes every utterance.
    style = utterance_style(emotion, speaker, rng)
    duration_s = float(rng.uniform(lo, hi))
    n = round(duration_s * sample_rate)
    plan = _syllables(duration_s, style, rng)
    marks = _syllable_marks(plan, n, style, sample_rate, rng)
    f0, jitter = _pitch(plan, marks, style, speaker, sample_rate, rng)
    pulses, flow = _glottal_source(f0, jitter, style, sample_rate, rng)
    source, voiced = _aspirated(pulses, flow, marks.voiced_env, style, rng)
    speech = _vocal_tract(source, marks.vowel_of, style, speaker, sample_rate)
    _add_consonants(speech, voiced, plan, speaker, sample_rate, rng)
    return _level(speech, voiced, style, speaker, rng)


@dataclass(frozen=True)
class _Marks:
    """Per-sample marks of the planned syllables (arrays of the utterance's length)."""

    voiced_env: np.ndarray  # voicing envelope (0 = unvoiced), float
    vowel_of: np.ndarray  # index into _VOWELS, -1 outside vowels
    creak: np.ndarray  # creaky voice, bool
    accents: np.ndarray  # pitch accent, semitones


def _syllable_marks(
    plan: list[dict], n: int, style: EmotionStyle, sample_rate: int, rng: np.random.Generator
) -> _Marks:
    """Envelopes and per-sample vowel / creak / accent marks of the syllables in `plan`."""
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
    return _Marks(voiced_env, vowel_of, creak, accents)


def _pitch(
    plan: list[dict],
    marks: _Marks,
    style: EmotionStyle,
    speaker: SpeakerProfile,
    sample_rate: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(f0 in Hz, jitter) per sample: speaker x emotion level, global contour, accents,
    tremor, creak."""
    t = np.arange(len(marks.voiced_env)) / sample_rate
    speech_start, speech_end = plan[0]["start"], plan[-1]["end"]
    u = np.clip((t - speech_start) / max(speech_end - speech_start, 1e-3), 0.0, 1.0)
    semitones = _contour_st(u, style.contour, style.f0_range_st) + marks.accents
    semitones += style.tremor_st * np.sin(
        2.0 * np.pi * rng.uniform(5.0, 7.0) * t + rng.uniform(0, 2 * np.pi)
    )
    f0 = speaker.f0_hz * style.f0_scale * 2.0 ** (semitones / 12.0)
    f0 = np.where(marks.creak, f0 * 0.55, f0)
    f0 = np.clip(f0, 40.0, _F0_MAX_HZ)
    jitter = np.where(marks.creak, max(style.jitter, 0.08), style.jitter)
    return f0, jitter


def _aspirated(
    pulses: np.ndarray,
    flow: np.ndarray,
    voiced_env: np.ndarray,
    style: EmotionStyle,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(the glottal `pulses` plus aspiration noise pulsed with the glottal `flow`, both under
    the voicing envelope; the voiced mask)."""
    voiced = voiced_env > 0.05
    source = pulses * voiced_env
    src_rms = np.sqrt(np.mean(source[voiced] ** 2)) if voiced.any() else 1.0
    aspiration = rng.standard_normal(len(pulses)) * (0.3 + flow) * voiced_env
    aspiration *= style.breathiness * src_rms / max(np.sqrt(np.mean(aspiration**2)), 1e-12)
    return source + aspiration, voiced


def _vocal_tract(
    source: np.ndarray,
    vowel_of: np.ndarray,
    style: EmotionStyle,
    speaker: SpeakerProfile,
    sample_rate: int,
) -> np.ndarray:
    """`source` through the formants of the vowels in `vowel_of` (per sample), frame by frame,
    with the targets smoothed across ~40 ms (coarticulation) and the emotion's tilt."""
    n = len(source)
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
    return _time_varying_filter(source, response, hop, nfft)


def _add_consonants(
    speech: np.ndarray,
    voiced: np.ndarray,
    plan: list[dict],
    speaker: SpeakerProfile,
    sample_rate: int,
    rng: np.random.Generator,
) -> None:
    """Add the syllables' onset consonants to `speech` in place: fricative noise, or a
    closure (silence, already there) and a burst."""
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


def _level(
    speech: np.ndarray,
    voiced: np.ndarray,
    style: EmotionStyle,
    speaker: SpeakerProfile,
    rng: np.random.Generator,
) -> np.ndarray:
    """Loudness: emotion level + speaker gain at a fixed reference, then the noise floor;
    float32, peak at most 0.99."""
    active = np.sqrt(np.mean(speech[voiced] ** 2)) if voiced.any() else 1.0
    target_db = _REFERENCE_RMS_DBFS + style.level_db + speaker.gain_db
    speech *= 10.0 ** (target_db / 20.0) / max(active, 1e-12)
    speech += 10.0 ** (speaker.noise_db / 20.0) * rng.standard_normal(len(speech))
    peak = np.max(np.abs(speech))
    if peak > 0.99:  # the recordist turns the gain down rather than clip
        speech *= 0.99 / peak
    return speech.astype(np.float32)
