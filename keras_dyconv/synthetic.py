"""A synthetic emotional-speech corpus, so the whole pipeline runs with no external data.

This corpus DEMONSTRATES THE PIPELINE; it says nothing about real-world accuracy. A model
that does well here has learned the generator's rules, which are a caricature of the acoustic
correlates of emotion reported for acted speech (Scherer 2003; Banse & Scherer 1996), not
the variability of real voices. Report accuracy on a real corpus (e.g. EmoDB).

Three modules: the emotions and speakers as parameters (`keras_dyconv.synthetic_styles`),
the source-filter synthesis of one utterance (`keras_dyconv.synthetic_speech`), and here
the corpus writer (`write_corpus`); this module re-exports the public names of all three.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from keras_dyconv.synthetic_speech import generate_utterance
from keras_dyconv.synthetic_styles import (
    EMOTIONS,
    STYLES,
    EmotionStyle,
    SpeakerProfile,
    make_speakers,
)

__all__ = [
    "EMOTIONS",
    "STYLES",
    "EmotionStyle",
    "SpeakerProfile",
    "generate_utterance",
    "make_speakers",
    "write_corpus",
]


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
