"""Corpus loaders: list a corpus's utterances (path, label, speaker, ...) from its own layout.

Every loader reads only file names and label files (no audio), returns `Utterance` records
sorted by path, and raises `CorpusError` naming the folder and what was expected versus
found when the layout is not the corpus's published one. Nothing is dropped silently.

    from keras_dyconv.corpora import load_corpus
    utts = load_corpus("emodb", "/data/emodb")          # 535 utterances, 10 speakers
    utts = load_corpus("iemocap", "/data/IEMOCAP_full_release")   # 5531 (4 classes)
    utts = load_corpus("manifest", "corpus/manifest.csv")

Registry: `CORPORA` maps a name to its loader; `load_corpus(name, root, **options)`.
One module per corpus (`emodb`, `casia`, `iemocap`, `ravdess`, `folders`, `manifest`), the
shared record and folder helpers in `common`, the registry in `registry`; every public
name is importable from `keras_dyconv.corpora` itself.
"""

from keras_dyconv.corpora.casia import (
    CASIA_EMOTIONS,
    CASIA_SPEAKER_ALIASES,
    CASIA_SPEAKERS,
    casia_speaker,
    load_casia,
)
from keras_dyconv.corpora.common import AUDIO_SUFFIXES, CorpusError, Utterance, is_audio_file
from keras_dyconv.corpora.emodb import EMODB_EMOTIONS, EMODB_SPEAKERS, load_emodb, verify_checksums
from keras_dyconv.corpora.folders import SpeakerRule, load_folders
from keras_dyconv.corpora.iemocap import IEMOCAP_FOUR_CLASSES, IEMOCAP_LABELS, load_iemocap
from keras_dyconv.corpora.manifest import load_manifest, write_manifest
from keras_dyconv.corpora.ravdess import RAVDESS_EMOTIONS, load_ravdess
from keras_dyconv.corpora.registry import CORPORA, load_corpus

__all__ = [
    "AUDIO_SUFFIXES",
    "CASIA_EMOTIONS",
    "CASIA_SPEAKERS",
    "CASIA_SPEAKER_ALIASES",
    "CORPORA",
    "EMODB_EMOTIONS",
    "EMODB_SPEAKERS",
    "IEMOCAP_FOUR_CLASSES",
    "IEMOCAP_LABELS",
    "RAVDESS_EMOTIONS",
    "CorpusError",
    "SpeakerRule",
    "Utterance",
    "casia_speaker",
    "is_audio_file",
    "load_casia",
    "load_corpus",
    "load_emodb",
    "load_folders",
    "load_iemocap",
    "load_manifest",
    "load_ravdess",
    "verify_checksums",
    "write_manifest",
]
