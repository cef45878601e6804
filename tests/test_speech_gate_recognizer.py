""" "No speech" in the recognizer, the stream recognizer and the CLI (the gate itself:
test_speech_gate.py), on the shipped default model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from edge_fixtures import pcm16_wav, run_edge
from test_speech_gate import speech_like

from edge_runtime.engines import EngineError
from edge_runtime.recognizer import DEFAULT_MODEL, EmotionRecognizer, StreamRecognizer
from edge_runtime.speech import NO_SPEECH


@pytest.fixture(scope="module")
def shipped() -> EmotionRecognizer:
    if not DEFAULT_MODEL.exists():
        pytest.skip("no shipped default model")
    try:
        return EmotionRecognizer()
    except EngineError as err:
        pytest.skip(f"no interpreter for the shipped model: {err}")


def test_recognizer_says_no_speech(shipped):
    silent = shipped.predict_samples(np.zeros(32000, np.float32), 16000)
    assert silent.label == NO_SPEECH and not silent.has_speech
    assert silent.probabilities == {} and silent.window_probabilities.shape == (
        0,
        len(shipped.labels),
    )
    assert silent.to_dict()["speech"]["reason"].startswith("silent")
    spoken = shipped.predict_samples(speech_like(), 16000)
    assert spoken.has_speech and spoken.label in shipped.labels
    assert spoken.to_dict()["speech"] == {"seconds": spoken.speech.speech_seconds, "reason": ""}
    ungated = EmotionRecognizer(shipped.artifact, speech_gate=None)
    forced = ungated.predict_samples(np.zeros(32000, np.float32), 16000)
    assert forced.label in shipped.labels and forced.speech is None
    assert forced.to_dict()["speech"] is None


def test_stream_gives_no_emotion_without_speech(shipped):
    stream = StreamRecognizer(shipped, sample_rate=16000, hop_s=0.5, smoothing=0.5)
    silence = stream.push(np.zeros(4 * 16000, np.float32))
    assert silence and all(d.label == NO_SPEECH and d.probabilities == {} for d in silence)
    speech = stream.push(np.concatenate([speech_like(seed=s) for s in range(2)]))
    assert speech[-1].label in shipped.labels
    assert sum(speech[-1].probabilities.values()) == pytest.approx(1.0, abs=0.02)
    after = stream.push(np.zeros(4 * 16000, np.float32))
    assert after[-1].label == NO_SPEECH and stream._smoothed is None  # smoothing restarts


def test_cli_predict_no_speech(shipped, tmp_path):
    silent = pcm16_wav(tmp_path / "silent.wav", np.zeros(48000))
    short = pcm16_wav(tmp_path / "short.wav", np.zeros(160))
    spoken = pcm16_wav(tmp_path / "spoken.wav", speech_like())
    text = run_edge("predict", str(silent), text=True)
    assert text.returncode == 3, text.stderr
    assert text.stdout.startswith(f"{silent}: no speech  (silent")
    as_json = run_edge("predict", str(spoken), str(short), "--json", text=True)
    assert as_json.returncode == 3, as_json.stderr
    first, second = (json.loads(line) for line in as_json.stdout.splitlines())
    assert first["label"] in shipped.labels and first["speech"]["reason"] == ""
    assert second["label"] == NO_SPEECH and second["probabilities"] == {}
    assert second["windows"] == [] and "shorter than" in second["speech"]["reason"]
    ok = run_edge("predict", str(spoken), text=True)
    assert ok.returncode == 0 and NO_SPEECH not in ok.stdout
    ungated = run_edge("predict", str(silent), "--json", "--no-speech-gate", text=True)
    assert ungated.returncode == 0 and json.loads(ungated.stdout)["label"] in shipped.labels
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    failed = run_edge("predict", str(silent), str(broken), text=True)
    assert failed.returncode == 1  # an unreadable file wins over "no speech"
    helped = run_edge("predict", "--help", text=True)
    assert "no-speech-gate" in helped.stdout
    epilog = " ".join(run_edge("--help", text=True).stdout.split())
    assert "3 (predict)" in epilog and "no speech" in epilog.split("3 (predict)")[1]


def test_cli_stream_no_speech(shipped):
    pcm = np.concatenate([np.zeros(4 * 16000, np.float32), speech_like(seconds=4.0)])
    data = (pcm * 32767).astype("<i2").tobytes()
    result = run_edge("stream", "--json", "--hop", "1", stdin=data)
    assert result.returncode == 0, result.stderr
    labels = [json.loads(line)["label"] for line in result.stdout.decode().splitlines()]
    assert labels[0] == NO_SPEECH and labels[-1] in shipped.labels
    text = run_edge("stream", "--hop", "1", stdin=data[: 8 * 16000]).stdout.decode()
    assert text.split()[1:3] == ["no", "speech"]
