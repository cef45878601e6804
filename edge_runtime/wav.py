"""A strict, allocation-bounded WAV reader written on the RIFF format (numpy + stdlib only).

Supported: PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE wrapping either,
mono or multichannel (downmixed to mono by the mean, as librosa does). Samples are scaled
like libsndfile/soundfile: integers divided by 2**(bits-1) (8-bit is unsigned, offset 128)
into [-1, 1] (float32 rounds the 32-bit maximum up to 1.0); float data is returned unchanged
(not clipped), so training (soundfile) and the edge see the same numbers.

Headers are read as libsndfile reads them, so files soundfile accepts decode to the same
samples: the RIFF size is ignored (streamed headers write 0 or 0xFFFFFFFF, other writers
get it wrong) and chunks are walked to the end of the file; a 'data' chunk that claims more
bytes than remain (0xFFFFFFFF from a writer that could not seek back, or a truncated file)
runs to the end of the file; a trailing partial frame is dropped; the fmt chunk's byte
rate and block align are ignored (a frame is channels x bits / 8 bytes); bytes after the
last complete chunk once 'fmt ' and 'data' are found are ignored. A 'data' chunk that declares
0 bytes while audio follows is refused (soundfile reads it as empty, so training would see
no audio either).

Input decides sizes, so everything is checked against `WavLimits` (documented defaults,
raise them per call) before anything is allocated: bytes read (also from pipes and
devices: at most `max_bytes` + 1 bytes are ever read), sample rate, channels, duration and
the magnitude of float samples. A lying header can neither hang the reader nor make it
allocate more than a small multiple of the file size.

Everything else raises `WavError` naming the source and the problem; other audio formats
(FLAC, Ogg, MP3, AIFF, ...) are recognised by their magic bytes and named.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

__all__ = ["DEFAULT_LIMITS", "WavError", "WavLimits", "read_wav"]

_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
# Bytes 2..15 of the KSDATAFORMAT_SUBTYPE_* GUIDs; bytes 0..1 hold the format tag.
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
_CODEC_NAMES = {
    0x0002: "MS ADPCM",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
    0x00FF: "AAC",
    0x0161: "WMA",
    0xF1AC: "FLAC",
}
_CONVERT = "convert it to WAV first, e.g. `ffmpeg -i IN -ac 1 -ar 16000 OUT.wav`"

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


@dataclass(frozen=True)
class WavLimits:
    """What `read_wav` accepts; input beyond a limit is refused before any allocation.

    Attributes:
        min_rate, max_rate: accepted sample rates (Hz). Speech needs >= 4 kHz; 384 kHz is
            the highest rate of common audio interfaces. Rates outside are corrupt headers.
        max_channels: channels per frame (32 covers every recording interface in use).
        max_seconds: longest recording accepted (seconds). It bounds the work and memory
            of everything after decoding (resampling, features, windows); split longer
            recordings, or raise it. Measured through `EmotionRecognizer.predict_file`
            (numpy engine): 600 s of 16 kHz mono PCM16 (18 MiB) peaks at 190 MiB RSS in
            2.4 s, 600 s of 44.1 kHz stereo (101 MiB) at 448 MiB in 13 s: about 150 MiB
            plus 3 to 4 times the file size.
        max_bytes: largest file or stream read (bytes); at most max_bytes + 1 bytes are
            ever read, also from pipes and devices such as /dev/zero.
        max_amplitude: largest |sample| accepted in float WAVs (full scale is 1.0; float
            data is not clipped). 65536 leaves room for unscaled 16-bit values stored as
            floats; larger values, NaN and infinity are corrupt data.
    """

    min_rate: int = 4_000
    max_rate: int = 384_000
    max_channels: int = 32
    max_seconds: float = 600.0
    max_bytes: int = 512 << 20
    max_amplitude: float = 65536.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_rate <= self.max_rate:
            raise ValueError(
                f"need 1 <= min_rate <= max_rate, got {self.min_rate}, {self.max_rate}"
            )
        for name in ("max_channels", "max_seconds", "max_bytes", "max_amplitude"):
            value = getattr(self, name)
            if not value > 0 or value != value:  # also refuses NaN
                raise ValueError(f"{name} must be > 0, got {value!r}")


#: The limits `read_wav` applies unless told otherwise.
DEFAULT_LIMITS = WavLimits()


class WavError(ValueError):
    """A WAV source that cannot be decoded; the message names the source and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


def read_wav(
    source: Source, *, mono: bool = True, limits: WavLimits = DEFAULT_LIMITS
) -> tuple[np.ndarray, int]:
    """Decode a WAV file into float32 samples and its sample rate (Hz).

    `source` is a path, the file's bytes, or a binary file object (read to its end, at most
    `limits.max_bytes` + 1 bytes). Returns samples of shape (n,) when `mono` (channels
    averaged) or (n, channels) otherwise, and the sample rate. Raises `WavError` for
    anything it cannot decode or that exceeds `limits`, and TypeError for a source of the
    wrong type.
    """
    name, data = _read_source(source, limits.max_bytes)
    buf = memoryview(data).cast("B")
    fmt, payload = _find_chunks(name, buf)
    tag, channels, rate, bits = _parse_fmt(name, fmt, limits)
    samples = _decode(name, payload, tag, channels, bits, rate, limits)
    if mono:
        samples = samples[:, 0].copy() if channels == 1 else samples.mean(axis=1, dtype=np.float32)
    return samples, rate


def _too_large(name: str, limit: int) -> WavError:
    return WavError(
        name, f"more than {limit} bytes, the limit (raise WavLimits.max_bytes / --max-mib)"
    )


def _read_source(source: Source, limit: int) -> tuple[str, bytes | bytearray | memoryview]:
    if isinstance(source, bytes | bytearray | memoryview):
        if memoryview(source).nbytes > limit:
            raise _too_large("<bytes>", limit)
        return "<bytes>", source
    if isinstance(source, str | os.PathLike):
        name = str(os.fspath(source))
        try:
            with open(name, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return name, _read_bounded(name, f, limit)  # a pipe, device, ...
                if os.fstat(f.fileno()).st_size > limit:
                    raise _too_large(name, limit)
                data = f.read()  # one buffer of the file's size
                if len(data) > limit:  # it grew meanwhile
                    raise _too_large(name, limit)
                return name, data
        except OSError as err:
            raise WavError(name, f"cannot read file ({err.strerror or err})") from None
    if hasattr(source, "read"):
        return (name := str(getattr(source, "name", "<stream>"))), _read_bounded(
            name, source, limit
        )
    raise TypeError(f"read_wav needs a path, bytes or binary file object, got {type(source)}")


def _read_bounded(name: str, stream: BinaryIO, limit: int) -> bytes:
    """Read a stream to its end, refusing it as soon as it exceeds `limit` bytes."""
    parts, total = [], 0
    try:
        while True:
            data = stream.read(min(limit + 1 - total, 1 << 24))
            if not data:
                break
            if not isinstance(data, bytes | bytearray):
                raise WavError(name, f"stream returned {type(data).__name__}, expected bytes")
            parts.append(data)
            total += len(data)
            if total > limit:
                raise _too_large(name, limit)
    except OSError as err:
        raise WavError(name, f"cannot read stream ({err.strerror or err})") from None
    return parts[0] if len(parts) == 1 else b"".join(parts)


#: Magic bytes of audio (and other) formats that are not RIFF/WAVE, to say what a file is.
_MAGIC = (
    (b"fLaC", "FLAC audio"),
    (b"OggS", "Ogg audio (Vorbis, Opus or FLAC)"),
    (b"ID3", "MP3 audio (ID3 tag)"),
    (b"FORM", "AIFF audio"),
    (b".snd", "Sun/NeXT AU audio"),
    (b"caff", "Core Audio (CAF) audio"),
    (b"wvpk", "WavPack audio"),
    (b"MAC ", "Monkey's Audio (APE)"),
    (b"#!AMR", "AMR audio"),
    (b"\x1a\x45\xdf\xa3", "Matroska/WebM media"),
    (b"RIFX", "big-endian RIFX WAV, which is not supported"),
    (b"RF64", "RF64 (64-bit WAV), which is not supported"),
    (b"BW64", "BW64 (64-bit broadcast WAV), which is not supported"),
    (b"MThd", "a MIDI file, not audio"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x93NUMPY", "a numpy array file"),
)


def _what_is(head: bytes) -> str | None:
    """A name for the format of a non-RIFF file from its first bytes, or None."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head[4:8] == b"ftyp":
        return "MP4/M4A media"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MPEG audio (MP3 or AAC frames)"
    if head[:1] in (b"{", b"["):
        return "JSON text (a model manifest?)"
    return None


def _find_chunks(name: str, buf: memoryview) -> tuple[memoryview, memoryview]:
    """Walk the RIFF chunk list; return the bodies of the 'fmt ' and 'data' chunks."""
    size = len(buf)
    head = bytes(buf[:12])
    if size < 12 or head[:4] != b"RIFF":
        what = _what_is(head)
        if what:
            raise WavError(name, f"this is {what}, not a WAV file; {_CONVERT}")
        if size < 12:
            raise WavError(name, f"too short for a RIFF/WAVE header ({size} bytes)")
        raise WavError(name, f"not a WAV file (starts {head[:4]!r}, expected b'RIFF')")
    if head[8:12] != b"WAVE":
        raise WavError(name, f"RIFF form type is {head[8:12]!r}, expected b'WAVE'")

    # The RIFF size (bytes 4..7) is ignored, as libsndfile does: streamed headers hold 0 or
    # 0xFFFFFFFF there, and chunks are walked to the end of the file instead.
    chunks: dict[bytes, memoryview] = {}
    pos = 12
    while pos + 8 <= size:
        cid = bytes(buf[pos : pos + 4])
        (length,) = struct.unpack_from("<I", buf, pos + 4)
        body = pos + 8
        complete = len(chunks) == 2  # trailing bytes after it are ignored, as libsndfile
        if not all(0x20 <= c <= 0x7E for c in cid):
            if complete:
                break
            raise WavError(
                name, f"invalid chunk id {cid!r} at offset {pos} (corrupt file or missing pad byte)"
            )
        if length > size - body and cid != b"data":
            if complete:
                break
            raise WavError(
                name,
                f"chunk {cid.decode()!r} at offset {pos} claims {length} bytes "
                f"but only {size - body} remain (truncated or corrupt header)",
            )
        if cid in chunks:
            raise WavError(name, f"more than one {cid.decode()!r} chunk")
        if cid == b"data":
            if length == 0 and size > body:
                raise WavError(
                    name,
                    f"'data' chunk declares 0 bytes but {size - body} bytes follow (a header "
                    "written before the length was known, e.g. to a pipe); soundfile reads "
                    "it as empty too: re-save it with its length (e.g. `sox IN OUT.wav`)",
                )
            length = min(length, size - body)  # to the end of the file: streamed or truncated
        if cid in (b"fmt ", b"data"):
            chunks[cid] = buf[body : body + length]
        pos = body + length + (length & 1)  # chunks are padded to even length
    for cid in (b"fmt ", b"data"):
        if cid not in chunks:
            raise WavError(name, f"no {cid.decode()!r} chunk")
    return chunks[b"fmt "], chunks[b"data"]


def _parse_fmt(name: str, fmt: memoryview, limits: WavLimits) -> tuple[int, int, int, int]:
    """Validate the fmt chunk; return (format tag PCM/FLOAT, channels, rate Hz, bits)."""
    if len(fmt) < 16:
        raise WavError(name, f"'fmt ' chunk is {len(fmt)} bytes, expected at least 16")
    # byte_rate and block_align (skipped) are redundant with rate, channels and bits;
    # libsndfile ignores both (a frame is channels x bits / 8 bytes), and so do we.
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == _EXTENSIBLE:
        if len(fmt) < 40:
            raise WavError(name, f"WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is {len(fmt)} bytes, < 40")
        valid_bits = struct.unpack_from("<H", fmt, 18)[0]
        guid = bytes(fmt[24:40])
        if guid[2:] != _GUID_TAIL or guid[:2] not in (b"\x01\x00", b"\x03\x00"):
            raise WavError(name, f"extensible sub-format {guid.hex()} is not PCM or IEEE float")
        if not 0 < valid_bits <= bits:
            raise WavError(name, f"valid bits per sample {valid_bits} not in 1..{bits}")
        tag = guid[0]
    if tag not in (_PCM, _FLOAT):
        codec = _CODEC_NAMES.get(tag, "unknown codec")
        raise WavError(
            name, f"format 0x{tag:04X} ({codec}) is not supported; only PCM and IEEE float"
        )
    allowed = (8, 16, 24, 32) if tag == _PCM else (32, 64)
    if bits not in allowed:
        kind = "PCM" if tag == _PCM else "IEEE float"
        raise WavError(name, f"{bits}-bit {kind} is not supported (expected one of {allowed})")
    if not 1 <= channels <= limits.max_channels:
        raise WavError(
            name,
            f"channel count {channels} not in 1..{limits.max_channels} "
            "(raise WavLimits.max_channels)",
        )
    if not limits.min_rate <= rate <= limits.max_rate:
        raise WavError(
            name,
            f"sample rate {rate} Hz not in {limits.min_rate}..{limits.max_rate} Hz "
            "(a corrupt header, or raise WavLimits.min_rate/max_rate)",
        )
    return tag, channels, rate, bits


def _decode(
    name: str,
    payload: memoryview,
    tag: int,
    channels: int,
    bits: int,
    rate: int,
    limits: WavLimits,
) -> np.ndarray:
    """Interleaved little-endian samples -> float32 array (frames, channels)."""
    width = bits // 8
    block = width * channels
    frames = len(payload) // block  # a trailing partial frame is dropped, as libsndfile does
    if frames == 0:
        raise WavError(name, f"'data' chunk holds no complete frame ({len(payload)} bytes)")
    if frames > limits.max_seconds * rate:
        raise WavError(
            name,
            f"{frames / rate:.1f} s of audio is longer than the {limits.max_seconds:g} s "
            "limit (split the recording, or raise WavLimits.max_seconds / --max-seconds)",
        )
    payload = payload[: frames * block]
    if tag == _FLOAT:
        raw = np.frombuffer(payload, dtype=f"<f{width}")
        with np.errstate(invalid="ignore"):
            bad = ~(np.abs(raw) <= limits.max_amplitude)  # NaN compares False
        if bad.any():
            index = int(np.argmax(bad))
            raise WavError(
                name,
                f"float sample {float(raw[index]):.6g} at index {index}: NaN, infinite or "
                f"beyond +-{limits.max_amplitude:g} (full scale is 1.0): corrupt float data",
            )
        out = raw.astype(np.float32)
    elif width == 1:  # 8-bit PCM is unsigned with a 128 offset
        out = np.frombuffer(payload, dtype=np.uint8).astype(np.float32)
        out -= 128.0
        out *= 2.0**-7
    elif width == 3:  # place the 3 bytes in the top of an int32: value * 256
        padded = np.zeros((len(payload) // 3, 4), dtype=np.uint8)
        padded[:, 1:] = np.frombuffer(payload, dtype=np.uint8).reshape(-1, 3)
        out = padded.view("<i4").astype(np.float32).ravel()
        out *= 2.0**-31
    else:  # int -> float32 rounds once; the power-of-two scale is exact
        out = np.frombuffer(payload, dtype=f"<i{width}").astype(np.float32)
        out *= 2.0 ** (1 - bits)
    return out.reshape(-1, channels)
