"""The speech gate (edge_runtime.speech); "no speech" in the recognizer and the CLI is in
test_speech_gate_recognizer.py.

Speech-like clips are made here in numpy (no Keras): a harmonic source with a moving pitch,
shaped by vowel formants that change every syllable, with syllable envelopes and pauses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_runtime import speech, voicing
from edge_runtime.speech import (
    SpeechGateConfig,
    SpeechTracker,
    analyze_frames,
    detect_speech,
    speech_frames,
)
from edge_runtime.wav import read_wav

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path("/work/shared/datasets")
VOWELS = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480)]  # Hz


def speech_like(
    rate: int = 16000, f0: float = 120.0, seconds: float = 2.0, seed: int = 0
) -> np.ndarray:
    """Voiced syllables (~4 per s) with intonation, formants and pauses; float32, -20 dBFS."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    # Declining pitch with an accent per syllable (a few semitones) and 0.5 % jitter.
    pitch = f0 * 2 ** ((2 * np.sin(2 * np.pi * 1.3 * t) - 1.5 * t / seconds) / 12)
    pitch *= 1 + 0.005 * rng.standard_normal(n).cumsum() / np.sqrt(np.arange(1, n + 1))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    syllable = int(0.25 * rate)
    out = np.zeros(n)
    for k, start in enumerate(range(int(0.2 * rate), n - syllable, syllable)):
        if k % 5 == 4:
            continue  # a pause every fifth syllable
        formants = VOWELS[rng.integers(len(VOWELS))]
        seg = slice(start, start + int(0.8 * syllable))
        env = np.hanning(seg.stop - seg.start)
        f = pitch[seg]
        voice = np.zeros(len(env))
        for h in range(1, int(0.45 * rate / f.max()) + 1):
            gain = sum(1 / (1 + ((h * f - fm) / 90.0) ** 2) for fm in formants) / h**0.5
            voice += gain * np.sin(h * phase[seg])
        out[seg] += env * voice
    out += 1e-3 * rng.standard_normal(n)
    return (0.1 * out / np.sqrt(np.mean(out**2))).astype(np.float32)


def non_speech(rate: int = 16000, seconds: float = 2.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    brown = np.cumsum(rng.standard_normal(n))
    hum = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in range(1, 8))
    train = np.zeros(n)
    train[:: rate // 100] = 0.5  # a 100 Hz buzz
    clicks = np.zeros(n)
    clicks[rng.integers(0, n, 20)] = 0.8
    return {
        "silence": np.zeros(n),
        "white noise": 0.1 * rng.standard_normal(n),
        "brown noise": 0.1 * (brown - brown.mean()) / brown.std(),
        "hum": 0.05 * hum + 1e-4 * rng.standard_normal(n),
        "tone 180 Hz": 0.3 * np.sin(2 * np.pi * 180 * t) + rng.normal(0, 0.01, n),
        "tone 1 kHz": 0.3 * np.sin(2 * np.pi * 1000 * t),
        "buzz": train,
        "clicks": clicks,
        "random bytes": rng.integers(-32768, 32768, n) / 32768,
        "2 samples": np.array([0.3, -0.2]),
        "0.01 s": speech_like(rate)[int(0.3 * rate) : int(0.31 * rate)],
        "0.1 s of speech": speech_like(rate)[int(0.25 * rate) : int(0.35 * rate)],
    }


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
@pytest.mark.parametrize("f0", [95.0, 220.0])
def test_speech_like_clips_pass(rate, f0):
    decision = detect_speech(speech_like(rate, f0), rate)
    assert decision.has_speech, decision.reason
    assert decision.reason == "" and 0.5 <= decision.speech_seconds <= 2.0


def test_quiet_speech_passes():
    """Speech peaking near -40 dBFS (like RAVDESS's quietest files) is still speech."""
    clip = speech_like(seed=3)
    quiet = clip * (10 ** (-40 / 20) / np.abs(clip).max())
    assert detect_speech(quiet, 16000).has_speech


@pytest.mark.parametrize("name", list(non_speech()))
def test_non_speech_is_gated(name):
    decision = detect_speech(non_speech()[name], 16000)
    assert not decision.has_speech and decision.reason, name
    assert decision.speech_seconds < SpeechGateConfig().min_speech_s


def test_reasons_and_rates():
    assert "shorter than" in detect_speech(np.zeros(2), 16000).reason
    assert "silent" in detect_speech(np.zeros(16000), 16000).reason
    assert "steady" in detect_speech(non_speech()["tone 1 kHz"], 16000).reason
    assert "sample rate 1 Hz" in detect_speech(np.zeros(4000), 1).reason
    assert not detect_speech(np.full(16000, np.nan), 16000).has_speech  # no exception
    with pytest.raises(ValueError, match="hop_s"):
        SpeechGateConfig(hop_s=0)
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="pitch_every"):
            SpeechGateConfig(pitch_every=bad)
    with pytest.raises(ValueError, match="4000 Hz"):
        speech_frames(np.zeros(100), 2000)


def test_speech_frames_mark_the_syllables():
    rate, config = 16000, SpeechGateConfig()
    hop = config.hop_s
    clip = np.concatenate([np.zeros(rate, np.float32), speech_like(rate)])
    mask = speech_frames(clip, rate)
    assert mask.dtype == bool and mask.shape == analyze_frames(clip, rate).rms_db.shape
    assert len(mask) == 1 + (len(clip) - round(config.frame_s * rate)) // round(hop * rate)
    assert not mask[: int(1.0 / hop) - 4].any()  # the leading second of silence
    assert mask[int(1.2 / hop) :].mean() > 0.3  # voiced syllables after it


@pytest.mark.parametrize("rate", [8000, 16000, 22050])
def test_whitened_acf_product_is_the_inverse_fft(rate):
    """The cosine product gives the irfft of the pitch-band spectrum at lag 0 and lo..hi."""
    config = SpeechGateConfig()
    length, _ = speech._frame_samples(rate, config)
    plan = voicing._plan(length, rate, config)
    white = np.random.default_rng(0).random((7, plan.basis.shape[0]))
    spectrum = np.zeros((7, plan.n_fft // 2 + 1))
    spectrum[:, plan.pitch] = white**2
    acf = np.fft.irfft(spectrum, plan.n_fft, axis=1)
    hi = min(length // 2, int(np.ceil(rate / config.f0_min_hz)))
    want = np.concatenate([acf[:, :1], acf[:, plan.lo : hi + 1]], axis=1)
    np.testing.assert_allclose((white**2) @ plan.basis, want, rtol=0, atol=1e-12)


def test_band_smoothing_is_the_moving_average_of_the_whole_spectrum():
    rate, config = 16000, SpeechGateConfig()
    plan = voicing._plan(960, rate, config)
    bins, half = plan.n_fft // 2 + 1, plan.half
    mag = np.zeros((3, bins))
    mag[:, : plan.top + 1] = np.random.default_rng(1).random((3, plan.top + 1))
    want = np.array([mag[:, max(0, b - half) : b + half + 1].mean(axis=1) for b in range(bins)]).T
    got = voicing._smooth_band(mag[:, : plan.top + 1], plan)
    np.testing.assert_allclose(got, want[:, : got.shape[1]], rtol=1e-12)
    assert not want[:, got.shape[1] :].any()  # 0 past the returned bins


def _harmonics_one_by_one(mag: np.ndarray, step: float, f0: np.ndarray) -> np.ndarray:
    """`voicing._count_harmonics` written out frame by frame and harmonic by harmonic."""
    ratio, counts = 10 ** (SpeechGateConfig().harmonic_db / 10), []
    top = (mag.shape[1] - 1) * step
    for row, pitch in zip(mag, f0, strict=True):
        power = np.concatenate([row**2, [0.0]])  # lookups past the band read 0

        def at(hz: float, power=power) -> float:
            return power[min(int(np.rint(hz / step)), len(power) - 1)]

        count, h = 0, 1
        while h * pitch + 0.5 * pitch <= top:
            around = [h * pitch + s * pitch for s in np.linspace(-0.12, 0.12, 5)]
            peak = max(at(hz) for hz in around)
            valley = 0.5 * sum(np.mean([at(hz + o * pitch) for hz in around]) for o in (-0.5, 0.5))
            count += peak >= ratio * valley and peak >= 1e-5 * power.max() and peak > 0
            h += 1
        counts.append(count)
    return np.array(counts)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_harmonics_counted_in_one_flat_list_are_those_of_each_frame(rate):
    config = SpeechGateConfig()
    length, _ = speech._frame_samples(rate, config)
    plan = voicing._plan(length, rate, config)
    rng = np.random.default_rng(5)
    step = rate / plan.n_fft
    f0 = np.concatenate([rng.uniform(60, 600, 40), [60.0, 600.0, 8 * step, 125.0]])
    bins = np.arange(plan.top + 1) * step
    # Harmonic combs of each pitch (some harmonics missing) over a noise floor.
    comb = np.cos(np.pi * bins[None, :] / f0[:, None]) ** 40 * (rng.random((len(f0), 1)) + 0.1)
    mag = comb * (rng.random(comb.shape) < 0.8) + 1e-3 * rng.random(comb.shape)
    mag[-3:] = 0.5  # flat: nothing stands out
    got = voicing._count_harmonics(mag, step, f0, config)
    np.testing.assert_array_equal(got, _harmonics_one_by_one(mag, step, f0))
    assert not got[-3:].any() and got.min() == 0 and got[:-3].min() > 0 and got.max() > 10


def test_short_runs_are_dropped():
    rng = np.random.default_rng(6)
    for _ in range(200):
        mask = rng.random(int(rng.integers(0, 40))) < rng.random()
        min_len = int(rng.integers(0, 7))
        want = mask.copy()
        start = None
        for i, on in enumerate([*mask, False]):
            if on and start is None:
                start = i
            elif not on and start is not None:
                want[start:i] = i - start >= min_len
                start = None
        got = voicing.runs_at_least(mask, min_len)
        assert got.dtype == bool and np.array_equal(got, want), (mask, min_len)


def test_percentiles_are_numpys():
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 10, 299, 300):
        values = np.round(rng.standard_normal(n) * 20, int(rng.integers(0, 3)))
        for q in ((10.0,), (10.0, 90.0), (0.0, 50.0, 100.0)):
            assert np.array_equal(voicing.percentiles(values, *q), np.percentile(values, q))


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
def test_autocorrelation_products_stay_on_one_thread(rate):
    """A product with the cosine basis small enough for OpenBLAS to run it on the calling
    thread (its pool would spin and cost more than the product), and chunking it changes
    no value."""
    config = SpeechGateConfig()
    length, _ = speech._frame_samples(rate, config)
    plan = voicing._plan(length, rate, config)
    assert (
        1 <= plan.rows
        and plan.rows * plan.basis.size <= 4 * 65536 < 2 * plan.rows * plan.basis.size
    )
    clip = speech_like(rate, seconds=2.0)
    frames = voicing.frame_view(clip, length, round(0.01 * rate))
    levels = voicing.frame_levels(clip, length, round(0.01 * rate))
    assert len(frames) > plan.rows  # several products
    everything = voicing._spectral(frames, levels, rate, config)
    one_by_one = [
        voicing._spectral(frames[i : i + 1], levels[i : i + 1], rate, config)
        for i in range(len(frames))
    ]
    for whole, single in zip(everything, zip(*one_by_one, strict=True), strict=True):
        np.testing.assert_allclose(whole, np.concatenate(single), rtol=1e-9, atol=1e-12)
    # measure_block analyses `chunk` frames per call, whole products of `rows`: the same
    # values as all frames in one call.
    assert plan.chunk % plan.rows == 0 and len(frames) > 2 * plan.chunk
    config1 = SpeechGateConfig(pitch_every=1)
    chunked = voicing.measure_block(frames, levels, np.ones(len(frames), bool), rate, config1)
    for a, b in zip(chunked, voicing._spectral(frames, levels, rate, config1), strict=True):
        np.testing.assert_array_equal(a, b)


def _analysed_everywhere(clip: np.ndarray, rate: int) -> speech.FrameAnalysis:
    """`analyze_frames` with the spectral measures taken on every frame, quiet ones too."""
    config, clip = SpeechGateConfig(), voicing.finite_mono(clip)  # float32, as the gate
    length, hop = speech._frame_samples(rate, config)
    rms_db = voicing.frame_levels(clip, length, hop)
    frames = voicing.frame_view(clip, length, hop)
    spectral = speech._measure(frames, rms_db, np.ones(len(frames), bool), rate, config)
    return speech._voicing(rms_db, *spectral, config)


@pytest.mark.parametrize("rate", [8000, 16000])
def test_skipping_quiet_frames_changes_no_verdict(rate):
    """Only loud frames get the spectral measures: the voiced frames, the pitch they carry
    and every decision are those of measuring all frames, on speech and on non-speech."""
    clips = {"speech": speech_like(rate), "quiet speech": 0.01 * speech_like(rate, 220.0, seed=2)}
    clips["speech after silence"] = np.concatenate([np.zeros(rate // 2), speech_like(rate)])
    clips.update(non_speech(rate))
    skipped = 0
    for name, clip in clips.items():
        if len(clip) < round(0.06 * rate):
            continue
        fast, full = analyze_frames(clip, rate), _analysed_everywhere(clip, rate)
        np.testing.assert_array_equal(fast.rms_db, full.rms_db)
        np.testing.assert_array_equal(fast.voiced, full.voiced, err_msg=name)
        # The same pitch up to the last bits: measuring fewer frames at once may take another
        # SIMD path through numpy's FFT and reductions (seen: 2.8e-14 Hz apart on one CPU).
        np.testing.assert_allclose(
            fast.f0_hz[fast.voiced], full.f0_hz[full.voiced], rtol=1e-12, atol=0, err_msg=name
        )
        assert speech._decide(fast, SpeechGateConfig()) == speech._decide(
            full, SpeechGateConfig()
        ), name
        skipped += int(np.sum((fast.f0_hz == 0) & (full.f0_hz > 0)))
    assert skipped > 100  # frames were skipped, not only decided the same


def test_frame_levels_are_the_rms_of_each_frame():
    rng = np.random.default_rng(4)
    x = np.concatenate([np.zeros(3000), 0.3 + 0.1 * rng.standard_normal(9000)]).astype(np.float32)
    for length, hop in ((960, 160), (1323, 220), (100, 100)):
        frames = voicing.frame_view(x, length, hop).astype(np.float64)
        with np.errstate(divide="ignore"):
            want = 10 * np.log10(np.var(frames, axis=1))
        got = voicing.frame_levels(x, length, hop)
        np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], atol=1e-6)
        assert np.array_equal(np.isneginf(got), np.isneginf(want))  # digital silence: -inf
    short = 0.5 * rng.standard_normal(10)  # shorter than a frame: one zero-padded frame
    want = 10 * np.log10(np.var(np.pad(short, (0, 950))))
    np.testing.assert_allclose(voicing.frame_levels(short, 960, 160), [want], rtol=1e-9)


def test_harmonics_are_counted_where_they_can_decide():
    rate, config = 16000, SpeechGateConfig()
    clip = np.concatenate([speech_like(rate), non_speech(rate)["white noise"]])
    a = analyze_frames(clip, rate)
    decides = (
        (a.rms_db >= config.floor_db)
        & (a.periodicity >= config.min_periodicity)
        & (a.f0_hz >= config.f0_min_hz)
        & (a.f0_hz <= config.f0_max_hz)
    )
    assert 0.2 < decides.mean() < 0.8
    assert not a.harmonics[~decides].any()
    assert (a.harmonics[decides] >= config.min_harmonics).mean() > 0.5


def test_spectral_measures_on_every_other_frame_are_held_between():
    """pitch_every=2: level on every frame; periodicity, pitch and harmonics on the even
    frames, as measuring every frame gives them there (where both analyse: at loud frames),
    and held by the odd frames."""
    rate = 16000
    clip = np.concatenate([speech_like(rate, seconds=4.0), non_speech(rate)["white noise"]])
    every = analyze_frames(clip, rate, SpeechGateConfig(pitch_every=1))
    half = analyze_frames(clip, rate)  # more than one block of 300 frames
    assert len(half.rms_db) > 300
    np.testing.assert_array_equal(half.rms_db, every.rms_db)
    loud = every.loud[::2]
    assert 0.5 < loud.mean() < 0.95  # the quiet frames are not analysed
    for name in ("periodicity", "f0_hz", "harmonics"):
        a, b = getattr(half, name), getattr(every, name)
        np.testing.assert_allclose(a[::2][loud], b[::2][loud], rtol=1e-12)  # BLAS order: ulps
        np.testing.assert_array_equal(a[1::2], a[::2][: len(a[1::2])])
    assert abs(half.voiced.mean() - every.voiced.mean()) < 0.02
    thirds = analyze_frames(clip, rate, SpeechGateConfig(pitch_every=3))
    np.testing.assert_array_equal(
        thirds.f0_hz, np.repeat(thirds.f0_hz[::3], 3)[: len(thirds.f0_hz)]
    )
    frames = voicing.frame_view(clip[:16000], 960, 160)
    levels, wanted = voicing.frame_levels(clip[:16000], 960, 160), np.ones(len(frames), bool)
    with pytest.raises(ValueError, match="phase 1"):
        voicing.measure_block(frames, levels, wanted, rate, SpeechGateConfig(), phase=1)
    held = voicing.measure_block(
        frames, levels, wanted, rate, SpeechGateConfig(), phase=1, previous=(0.5, 99.0, 7)
    )
    assert (held[0][0], held[1][0], held[2][0]) == (0.5, 99.0, 7)
    shifted = voicing.measure_block(frames[1:], levels[1:], wanted[1:], rate, SpeechGateConfig())
    for a, b in zip(held, shifted, strict=True):  # phase 1: rows 1, 3, ... are measured
        np.testing.assert_array_equal(a[1:], b)


def test_tracker_window_equals_the_clip_analysis():
    """A stream pushed in odd chunks: the tracker's last window holds the measures that
    analysing that window as a clip gives (its first frame is an even stream frame): the
    levels everywhere, the spectral measures where the clip takes them (its loud frames;
    the tracker, not knowing the window's noise floor ahead, takes them above -75 dBFS)."""
    rate, window = 16000, 3.0
    stream = np.concatenate([speech_like(seconds=2.5, seed=3), speech_like(seconds=2.5)])
    tracker = SpeechTracker(rate, window)
    rng = np.random.default_rng(1)
    for piece in np.split(stream, np.sort(rng.integers(0, len(stream), 50))):
        tracker.push(piece)
    frames = 1 + (len(stream) - 960) // 160
    first = frames - tracker._capacity
    assert first % 2 == 0
    clip = analyze_frames(stream[first * 160 : (frames - 1) * 160 + 960], rate)
    np.testing.assert_array_equal(tracker._measures[0], clip.rms_db)
    loud = clip.loud
    assert 0.5 < loud.mean() < 0.95
    for got, want in zip(
        tracker._measures[1:], (clip.periodicity, clip.f0_hz, clip.harmonics), strict=True
    ):
        np.testing.assert_allclose(got[loud], want[loud], rtol=1e-9)
    assert (
        tracker.decision().speech_seconds
        == detect_speech(stream[first * 160 : (frames - 1) * 160 + 960], rate).speech_seconds
    )


def test_long_clip_memory_is_blocked():
    """An hour-long analysis stays in blocks: the frames matrix is never built at once."""
    import tracemalloc

    for rate, seconds in ((8000, 300), (48000, 60)):  # 48 kHz: decimated first
        clip = np.zeros(seconds * rate, np.float32)
        tracemalloc.start()
        detect_speech(clip, rate)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # A copy or two of the clip plus per-block temporaries, not frames x frame length.
        assert peak < 2 * clip.nbytes + 16_000_000, (rate, peak)


def test_tracker_follows_a_stream_analysing_each_frame_once(monkeypatch):
    rate, window = 16000, 3.0
    stream = np.concatenate([np.zeros(2 * rate, np.float32), speech_like(seconds=3.0)])
    measured = []
    original = speech._measure
    monkeypatch.setattr(
        speech, "_measure", lambda f, r, c, *a: measured.append(len(f)) or original(f, r, c, *a)
    )
    whole = SpeechTracker(rate, window)
    whole.push(stream[: 2 * rate])
    assert not whole.decision().has_speech and "silent" in whole.decision().reason
    whole.push(stream[2 * rate :])
    chunked = SpeechTracker(rate, window)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.integers(0, len(stream), 200))
    for piece in np.split(stream, cuts):  # odd sizes, some empty
        chunked.push(piece)
    assert chunked.decision() == whole.decision() and whole.decision().has_speech
    offline = detect_speech(stream[-int(window * rate) :], rate)
    assert abs(whole.decision().speech_seconds - offline.speech_seconds) < 0.1
    frames = 1 + (len(stream) - 960) // 160
    assert sum(measured) <= 2 * frames + 300  # each frame once (the big push: a window)
    assert len(whole._measures[0]) == 1 + (int(window * rate) - 960) // 160
    whole.reset()
    assert "shorter than" in whole.decision().reason
    low = SpeechTracker(1000, window)
    low.push(np.ones(5000))
    assert "sample rate 1000 Hz" in low.decision().reason


@pytest.mark.slow
@pytest.mark.skipif(not (DATASETS / "emodb" / "wav").is_dir(), reason="no EmoDB")
def test_every_emodb_utterance_is_speech():
    """535 real utterances, none gated out (all corpora: bench/bench_speech_gate.py)."""
    gated = []
    for path in sorted((DATASETS / "emodb" / "wav").glob("*.wav")):
        decision = detect_speech(*read_wav(path))
        if not decision.has_speech:
            gated.append(f"{path.name}: {decision.reason}")
    assert not gated, gated
