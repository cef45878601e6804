"""edge_runtime.wav: exact round trips for every supported format, one clear error type for
everything else, and allocation bounded by the file size (hypothesis fuzzing)."""

from __future__ import annotations

import io
import os
import re
import struct
import tracemalloc
import warnings
import wave

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runtime.wav import WavError, WavLimits, read_wav

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RNG = np.random.default_rng(1234)


def wave_bytes(ints: np.ndarray, width: int, rate: int = 16000) -> bytes:
    """A PCM WAV written by the stdlib `wave` module; ints is (frames, channels)."""
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    elif width == 3:
        le = ints.astype("<i4").reshape(-1, 1).view(np.uint8).reshape(-1, 4)
        raw = le[:, :3].tobytes()
    else:
        raw = ints.astype(f"<i{width}").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(ints.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)
    return out.getvalue()


def soundfile_bytes(data: np.ndarray, rate: int, subtype: str, fmt: str = "WAV") -> bytes:
    out = io.BytesIO()
    sf.write(out, data, rate, subtype=subtype, format=fmt)
    return out.getvalue()


def random_ints(frames: int, channels: int, bits: int, rng=RNG) -> np.ndarray:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1)
    ints = rng.integers(lo, hi, size=(frames, channels), dtype=np.int64)
    ints[0, 0], ints[-1, -1] = lo, hi - 1  # the extremes must survive too
    return ints


def riff(*chunks: bytes, riff_size: int | None = None) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def chunk(cid: bytes, payload: bytes, *, size: int | None = None, pad: bool = True) -> bytes:
    head = cid + struct.pack("<I", len(payload) if size is None else size)
    return head + payload + (b"\0" if pad and len(payload) % 2 else b"")


def fmt_chunk(tag=1, channels=1, rate=16000, bits=16, block_align=None, extra=b"") -> bytes:
    align = channels * bits // 8 if block_align is None else block_align
    byte_rate = (rate * align) & 0xFFFFFFFF
    body = struct.pack("<HHIIHH", tag, channels, rate, byte_rate, align, bits) + extra
    return chunk(b"fmt ", body)


# ---------------------------------------------------------------- valid files, exact values


@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_stdlib_wave_pcm_round_trips_exactly(width, channels):
    ints = random_ints(257, channels, 8 * width)
    data = wave_bytes(ints, width, rate=22050)
    expected = (ints / 2.0 ** (8 * width - 1)).astype(np.float32)

    samples, rate = read_wav(data, mono=False)
    assert rate == 22050
    assert samples.dtype == np.float32 and samples.shape == (257, channels)
    np.testing.assert_array_equal(samples, expected)
    assert samples.min() >= -1.0 and samples.max() <= 1.0  # 32-bit max rounds to 1.0
    # ...and exactly what soundfile (hence librosa, on the training side) decodes.
    reference, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(samples, reference)


@pytest.mark.parametrize(
    ("subtype", "fmt", "channels"),
    [
        ("FLOAT", "WAV", 1),
        ("DOUBLE", "WAV", 2),
        ("PCM_16", "WAVEX", 1),  # WAVE_FORMAT_EXTENSIBLE, explicitly
        ("PCM_24", "WAVEX", 2),
        ("FLOAT", "WAVEX", 2),
        ("PCM_U8", "WAV", 2),
        ("PCM_32", "WAV", 4),  # soundfile writes EXTENSIBLE for > 2 channels
        ("DOUBLE", "WAV", 6),
    ],
)
def test_soundfile_formats_round_trip_exactly(subtype, fmt, channels):
    data = RNG.uniform(-1, 1, size=(300, channels))
    raw = soundfile_bytes(data, 48000, subtype, fmt)
    reference, _ = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)

    samples, rate = read_wav(raw, mono=False)
    assert rate == 48000
    np.testing.assert_array_equal(samples, reference)
    if subtype in ("FLOAT", "DOUBLE"):
        np.testing.assert_array_equal(samples, data.astype(np.float32))


def test_mono_is_channel_mean_like_librosa():
    stereo = RNG.uniform(-1, 1, size=(1000, 2)).astype(np.float32)
    raw = soundfile_bytes(stereo, 16000, "FLOAT")
    mono, _ = read_wav(raw)
    assert mono.shape == (1000,) and mono.dtype == np.float32
    np.testing.assert_array_equal(mono, stereo.mean(axis=1, dtype=np.float32))


def test_float_data_is_not_clipped():
    # Training (soundfile) keeps out-of-range float samples; the edge must see the same.
    raw = soundfile_bytes(np.array([0.5, 1.5, -2.0]), 16000, "FLOAT")
    np.testing.assert_array_equal(read_wav(raw)[0], np.array([0.5, 1.5, -2.0], np.float32))


def test_sources_path_bytes_bytearray_memoryview_file(tmp_path):
    raw = wave_bytes(random_ints(50, 1, 16), 2)
    path = tmp_path / "a.wav"
    path.write_bytes(raw)
    expected, _ = read_wav(raw)
    for source in (path, str(path), bytearray(raw), memoryview(raw), io.BytesIO(raw)):
        np.testing.assert_array_equal(read_wav(source)[0], expected)
    with open(path, "rb") as f:
        np.testing.assert_array_equal(read_wav(f)[0], expected)
    with pytest.raises(TypeError, match="path, bytes or binary file"):
        read_wav(12345)


def test_odd_chunks_are_padded_and_skipped():
    pcm = struct.pack("<3h", 1000, -1000, 32767)
    raw = riff(fmt_chunk(), chunk(b"LIST", b"odd"), chunk(b"data", pcm))
    samples, rate = read_wav(raw)
    assert rate == 16000
    np.testing.assert_array_equal(samples, np.array([1000, -1000, 32767]) / np.float32(32768))
    # An odd-length data chunk at the very end may lack its pad byte.
    raw8 = riff(fmt_chunk(bits=8), chunk(b"data", bytes([0, 128, 255]), pad=False))
    np.testing.assert_array_equal(read_wav(raw8)[0], np.array([-1, 0, 127 / 128], np.float32))


# --------------------------------------------------------------------- one clear error type

GOOD_FMT = fmt_chunk()
GOOD_DATA = chunk(b"data", struct.pack("<4h", 1, 2, 3, 4))
EXT_TAIL = bytes.fromhex("000000001000800000aa00389b71")


def extensible(sub: bytes, bits=16, valid=16) -> bytes:
    extra = struct.pack("<HHI", 22, valid, 0) + sub + EXT_TAIL
    return fmt_chunk(tag=0xFFFE, bits=bits, extra=extra)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "too short"),
        (b"RIFF\x04\0\0\0WAVE", "no 'fmt ' chunk"),
        (b"OggS" + bytes(40), "this is Ogg audio (Vorbis, Opus or FLAC), not a WAV file"),
        (b"RIFX" + bytes(40), "big-endian RIFX WAV, which is not supported"),
        (b"RF64" + bytes(40), "RF64"),
        (b"JUNK" + bytes(40), "not a WAV file (starts b'JUNK'"),
        (b"RIFF\x24\0\0\0AVI " + bytes(32), "expected b'WAVE'"),
        (riff(GOOD_FMT, chunk(b"data", b"")), "no complete frame (0 bytes)"),
        (riff(GOOD_FMT, chunk(b"data", b"\1")), "no complete frame (1 bytes)"),
        (riff(GOOD_FMT, chunk(b"data", bytes(8), size=0)), "declares 0 bytes but 8 bytes follow"),
        (riff(GOOD_FMT, chunk(b"LIST", bytes(8), size=99), GOOD_DATA), "claims 99 bytes"),
        (riff(GOOD_FMT), "no 'data' chunk"),
        (riff(GOOD_DATA), "no 'fmt ' chunk"),
        (riff(GOOD_FMT, GOOD_FMT, GOOD_DATA), "more than one 'fmt ' chunk"),
        (riff(fmt_chunk(tag=0x55), GOOD_DATA), "0x0055 (MP3) is not supported"),
        (riff(fmt_chunk(tag=0x11, bits=4, block_align=256), GOOD_DATA), "IMA ADPCM"),
        (riff(fmt_chunk(tag=7, bits=8), GOOD_DATA), "mu-law"),
        (riff(fmt_chunk(bits=12, block_align=2), GOOD_DATA), "12-bit PCM is not supported"),
        (riff(fmt_chunk(tag=3, bits=16), GOOD_DATA), "16-bit IEEE float"),
        (riff(fmt_chunk(channels=0, block_align=0), GOOD_DATA), "channel count 0"),
        (riff(fmt_chunk(channels=5000, block_align=10000), GOOD_DATA), "channel count 5000"),
        (riff(fmt_chunk(channels=33, block_align=66), GOOD_DATA), "channel count 33 not in 1..32"),
        (riff(fmt_chunk(rate=0), GOOD_DATA), "sample rate 0 Hz"),
        (riff(fmt_chunk(rate=1), GOOD_DATA), "sample rate 1 Hz not in 4000..384000"),  # B2
        (riff(fmt_chunk(rate=9_999_991), GOOD_DATA), "sample rate 9999991 Hz"),  # B1
        (riff(fmt_chunk(rate=2**32 - 1), GOOD_DATA), "sample rate 4294967295 Hz"),
        (riff(chunk(b"fmt ", bytes(10)), GOOD_DATA), "at least 16"),
        (riff(extensible(b"\x02\x00"), GOOD_DATA), "not PCM or IEEE float"),
        (riff(extensible(b"\x01\x00", valid=20), GOOD_DATA), "valid bits per sample 20"),
        (riff(fmt_chunk(tag=0xFFFE), GOOD_DATA), "< 40"),
        # An odd chunk written without its pad byte shifts every later chunk header.
        (riff(GOOD_FMT, chunk(b"LIST", b"odd", pad=False), GOOD_DATA), "invalid chunk id"),
        (riff(fmt_chunk(tag=3, bits=32), chunk(b"data", struct.pack("<f", np.nan))), "nan"),
        (riff(fmt_chunk(tag=3, bits=32), chunk(b"data", struct.pack("<2f", 0, 1e30))), "1e+30"),
        (riff(fmt_chunk(tag=3, bits=64), chunk(b"data", struct.pack("<d", 1e300))), "1e+300"),
        (riff(fmt_chunk(tag=3, bits=64), chunk(b"data", struct.pack("<d", -np.inf))), "-inf"),
    ],
)
def test_malformed_files_raise_wav_error(raw, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way (1e300 -> float32)
        with pytest.raises(WavError, match=re.escape(message)) as info:
            read_wav(raw)
    assert str(info.value).startswith("<bytes>: ")


@pytest.mark.parametrize(
    ("head", "what"),
    [
        (b"fLaC\0\0\0\x22", "FLAC audio"),
        (b"OggS\0\2", "Ogg audio"),
        (b"ID3\4\0\0", "MP3 audio (ID3 tag)"),
        (b"\xff\xfb\x90\x64", "MPEG audio (MP3 or AAC frames)"),
        (b"FORM\0\0\0\0AIFF", "AIFF audio"),
        (b"\0\0\0\x20ftypM4A ", "MP4/M4A media"),
        (b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
        (b'{"format_version": 1', "JSON text (a model manifest?)"),
    ],
)
def test_other_formats_are_named(tmp_path, head, what):
    path = tmp_path / "clip.audio"
    path.write_bytes(head + bytes(64))
    with pytest.raises(WavError, match=re.escape(f"clip.audio: this is {what}")) as info:
        read_wav(path)
    assert "not a WAV file" in str(info.value) and "ffmpeg" in str(info.value)


# ------------------------------------------- headers as written by streams, vs soundfile

PCM = struct.pack("<8h", 1, 2, 3, -4, 5, 6, 7, 32767)


@pytest.mark.parametrize(
    "raw",
    [
        riff(GOOD_FMT, chunk(b"data", PCM, size=0xFFFFFFFF)),  # streamed data size
        riff(GOOD_FMT, chunk(b"data", PCM, size=0xFFFFFFFF), riff_size=0xFFFFFFFF),
        riff(GOOD_FMT, chunk(b"data", PCM), riff_size=0),  # streamed RIFF size
        riff(GOOD_FMT, chunk(b"data", PCM), riff_size=0xFFFFFFFF),
        riff(GOOD_FMT, chunk(b"data", PCM), riff_size=20),  # RIFF size too small
        riff(GOOD_FMT, chunk(b"data", PCM), riff_size=10_000),  # too large
        riff(GOOD_FMT, chunk(b"data", PCM, size=100)),  # truncated data chunk
        riff(GOOD_FMT, chunk(b"data", PCM))[:-3],  # cut inside a frame
        riff(GOOD_FMT, chunk(b"data", PCM[:7])),  # odd data size: partial frame dropped
        riff(GOOD_FMT, chunk(b"data", PCM)) + b"junkjunk",  # trailing garbage
        riff(GOOD_FMT, chunk(b"data", PCM), chunk(b"LIST", b"abcd")),
        riff(GOOD_FMT, chunk(b"data", PCM), chunk(b"LIST", b"abcdef", size=99)),
        riff(fmt_chunk(block_align=3), chunk(b"data", PCM)),  # block align is ignored
        riff(fmt_chunk(channels=2, block_align=0), chunk(b"data", PCM)),
        # 0xFFFFFFFF runs to the end of the file: soundfile reads the LIST bytes as audio too.
        riff(GOOD_FMT, chunk(b"data", PCM, size=0xFFFFFFFF), chunk(b"LIST", b"abcd")),
    ],
)
def test_streamed_and_inconsistent_headers_decode_like_soundfile(raw):
    reference, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    samples, got_rate = read_wav(raw, mono=False)
    assert got_rate == rate and len(samples) > 0
    np.testing.assert_array_equal(samples, reference)


def test_a_zero_data_size_is_refused_with_the_reason(tmp_path):
    raw = riff(GOOD_FMT, chunk(b"data", PCM, size=0), riff_size=0)
    reference, _ = sf.read(io.BytesIO(raw), dtype="float32")
    assert len(reference) == 0  # soundfile sees no audio: training would not either
    with pytest.raises(WavError, match=r"declares 0 bytes but 16 bytes follow .* pipe"):
        read_wav(raw)


# ----------------------------------------------------------------------------- limits


def test_limits_are_checked_before_decoding_and_can_be_raised(tmp_path):
    ten_s = wave_bytes(np.zeros((80_000, 1), np.int64), 2, rate=8000)
    with pytest.raises(WavError, match=r"10\.0 s of audio is longer than the 5 s limit"):
        read_wav(ten_s, limits=WavLimits(max_seconds=5))
    assert len(read_wav(ten_s, limits=WavLimits(max_seconds=10))[0]) == 80_000
    with pytest.raises(WavError, match=r"more than 1000 bytes"):
        read_wav(ten_s, limits=WavLimits(max_bytes=1000))
    path = tmp_path / "big.wav"
    path.write_bytes(ten_s)
    with pytest.raises(WavError, match=r"big\.wav: more than 1000 bytes"):
        read_wav(path, limits=WavLimits(max_bytes=1000))
    low = wave_bytes(np.zeros((10, 1), np.int64), 2, rate=1000)
    with pytest.raises(WavError, match=r"sample rate 1000 Hz not in 4000\.\.384000"):
        read_wav(low)
    assert read_wav(low, limits=WavLimits(min_rate=1000))[1] == 1000
    loud = soundfile_bytes(np.array([1e5]), 16000, "FLOAT")
    with pytest.raises(WavError, match=r"beyond \+-65536"):
        read_wav(loud)
    assert read_wav(loud, limits=WavLimits(max_amplitude=1e6))[0][0] == 1e5
    for bad in (dict(min_rate=0), dict(min_rate=10, max_rate=5), dict(max_seconds=float("nan"))):
        with pytest.raises(ValueError):
            WavLimits(**bad)


def test_non_regular_files_are_read_up_to_the_limit():
    limit = 1 << 16
    with pytest.raises(WavError, match=f"/dev/zero: more than {limit} bytes"):
        read_wav("/dev/zero", limits=WavLimits(max_bytes=limit))  # B3: endless device
    reader, writer = os.pipe()
    os.write(writer, bytes(3000))  # fits in the pipe's buffer
    os.close(writer)
    with open(reader, "rb") as pipe, pytest.raises(WavError, match="more than 2000 bytes"):
        read_wav(pipe, limits=WavLimits(max_bytes=2000))


def test_a_directory_is_named():
    with pytest.raises(WavError, match="cannot read file"):
        read_wav("/")


def test_extensible_with_valid_pcm_guid_decodes():
    raw = riff(extensible(b"\x01\x00"), GOOD_DATA)
    np.testing.assert_array_equal(read_wav(raw)[0], np.arange(1, 5) / np.float32(32768))


def test_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(riff(GOOD_FMT))
    with pytest.raises(WavError, match=r"broken\.wav: no 'data' chunk"):
        read_wav(bad)
    with pytest.raises(WavError, match=r"missing\.wav: cannot read file"):
        read_wav(tmp_path / "missing.wav")
    assert issubclass(WavError, ValueError)


# ----------------------------------------------------------------------------- fuzzing


def read_with_peak(raw: bytes) -> int:
    """Decode `raw` (WavError is fine) and return the traced peak allocation in bytes."""
    tracemalloc.start()
    try:
        read_wav(raw)
    except WavError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def assert_bounded(raw: bytes) -> None:
    peak = read_with_peak(raw)
    assert peak <= 16 * len(raw) + 65536, f"peak {peak} bytes for a {len(raw)}-byte file"


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_random_bytes_only_wav_error(raw):
    assert_bounded(raw)


@FUZZ
@given(st.binary(max_size=256))
def test_fuzz_random_bytes_behind_riff_magic(tail):
    assert_bounded(b"RIFF" + tail[:4] + b"WAVE" + tail[4:])


VALID_FILES = [
    wave_bytes(random_ints(64, 2, 16), 2),
    wave_bytes(random_ints(40, 1, 8), 1),
    wave_bytes(random_ints(40, 3, 24), 3),
    soundfile_bytes(RNG.uniform(-1, 1, (50, 3)), 44100, "FLOAT"),  # extensible
    soundfile_bytes(RNG.uniform(-1, 1, (50, 1)), 8000, "DOUBLE"),
]


@FUZZ
@given(
    st.sampled_from(VALID_FILES),
    st.lists(st.tuples(st.integers(0, 79), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_fuzz_mutated_header_bytes(raw, edits):
    mutated = bytearray(raw)
    for pos, value in edits:
        mutated[pos] = value
    assert_bounded(bytes(mutated))


@FUZZ
@given(
    st.sampled_from(VALID_FILES),
    st.sampled_from([4, 16, 20, 22, 24, 28, 32, 34, 40]),  # size and fmt field offsets
    st.sampled_from(["<I", "<H"]),
    st.integers(0, 2**32 - 1),
)
def test_fuzz_lying_header_fields(raw, offset, kind, value):
    mutated = bytearray(raw)
    struct.pack_into(kind, mutated, offset, value & (0xFFFF if kind == "<H" else 0xFFFFFFFF))
    assert_bounded(bytes(mutated))


@FUZZ
@given(st.sampled_from(VALID_FILES), st.integers(0, 400))
def test_fuzz_truncated_files(raw, keep):
    assert_bounded(raw[:keep])


@FUZZ
@given(
    bits=st.sampled_from([8, 16, 24, 32]),
    channels=st.integers(1, 4),
    frames=st.integers(1, 300),
    rate=st.integers(4000, 384000),
    seed=st.integers(0, 2**32 - 1),
)
def test_fuzz_valid_pcm_round_trips(bits, channels, frames, rate, seed):
    ints = random_ints(frames, channels, bits, np.random.default_rng(seed))
    raw = wave_bytes(ints, bits // 8, rate)
    samples, got_rate = read_wav(raw, mono=False)
    assert got_rate == rate
    np.testing.assert_array_equal(samples, (ints / 2.0 ** (bits - 1)).astype(np.float32))
    assert_bounded(raw)
