"""The synthetic corpus's emotions and speakers: what `keras_dyconv.synthetic_speech`
synthesises, as parameters (no audio here).

Each emotion is an `EmotionStyle` (the means); every utterance draws its own parameters
around those means (`utterance_style`), and each speaker expresses emotions more or less
strongly (`SpeakerProfile.expressiveness`), so classes overlap and speakers differ. The
styles caricature the acoustic correlates of emotion reported for acted speech (Scherer
2003; Banse & Scherer 1996); see `keras_dyconv.synthetic` for what that does and does not
demonstrate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CONTOURS",
    "EMOTIONS",
    "STYLES",
    "EmotionStyle",
    "SpeakerProfile",
    "make_speakers",
    "utterance_style",
]

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


def utterance_style(
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
