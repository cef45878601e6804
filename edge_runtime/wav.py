"""A strict, allocation-bounded WAV reader written on the RIFF format (numpy + stdlib only).

Supported: PCM 8/16/24/32-bit, IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE wrapping either,
any channel count up to 1024 (downmixed to mono by the mean, as librosa does). Samples are
scaled like libsndfile/soundfile: integers divided by 2**(bits-1) (8-bit is unsigned,
offset 128) into [-1, 1] (float32 rounds the 32-bit maximum up to 1.0); float data is
returned unchanged (not clipped), so training (soundfile) and the edge see the same numbers.

Everything else raises `WavError` naming the source and the problem. Sizes are checked
against the bytes actually present before anything is allocated, so a lying header can
neither hang the reader nor make it allocate more than a small multiple of the file size.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

import numpy as np

__all__ = ["MAX_CHANNELS", "MAX_SAMPLE_RATE", "WavError", "read_wav"]

MAX_CHANNELS = 1024  # libsndfile's limit
MAX_SAMPLE_RATE = 10_000_000  # Hz; anything above is a corrupt header, not audio

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

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


class WavError(ValueError):
    """A WAV source that cannot be decoded; the message names the source and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


def read_wav(source: Source, *, mono: bool = True) -> tuple[np.ndarray, int]:
    """Decode a WAV file into float32 samples and its sample rate (Hz).

    `source` is a path, the file's bytes, or a binary file object (read to its end).
    Returns samples of shape (n,) when `mono` (channels averaged) or (n, channels)
    otherwise, and the sample rate. Raises `WavError` for anything it cannot decode and
    TypeError for a source of the wrong type.
    """
    name, data = _read_source(source)
    buf = memoryview(data).cast("B")
    fmt, payload = _find_chunks(name, buf)
    tag, channels, rate, bits = _parse_fmt(name, fmt)
    samples = _decode(name, payload, tag, channels, bits)
    if mono:
        samples = samples[:, 0].copy() if channels == 1 else samples.mean(axis=1, dtype=np.float32)
    return samples, rate


def _read_source(source: Source) -> tuple[str, bytes | bytearray | memoryview]:
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>", source
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        try:
            with open(name, "rb") as f:
                return str(name), f.read()
        except OSError as err:
            raise WavError(str(name), f"cannot read file ({err.strerror or err})") from None
    if hasattr(source, "read"):
        name = str(getattr(source, "name", "<stream>"))
        try:
            data = source.read()
        except OSError as err:
            raise WavError(name, f"cannot read stream ({err})") from None
        if not isinstance(data, bytes | bytearray):
            raise WavError(name, f"stream returned {type(data).__name__}, expected bytes")
        return name, data
    raise TypeError(f"read_wav needs a path, bytes or binary file object, got {type(source)}")


def _find_chunks(name: str, buf: memoryview) -> tuple[memoryview, memoryview]:
    """Walk the RIFF chunk list; return the bodies of the 'fmt ' and 'data' chunks."""
    size = len(buf)
    if size < 12:
        raise WavError(name, f"too short for a RIFF/WAVE header ({size} bytes)")
    magic = bytes(buf[:4])
    if magic != b"RIFF":
        hint = {b"RIFX": "big-endian RIFX", b"RF64": "RF64 (64-bit WAV)"}.get(magic)
        problem = f"{hint} is not supported" if hint else f"not a RIFF file (starts {magic!r})"
        raise WavError(name, problem)
    if bytes(buf[8:12]) != b"WAVE":
        raise WavError(name, f"RIFF form type is {bytes(buf[8:12])!r}, expected b'WAVE'")
    (riff_size,) = struct.unpack_from("<I", buf, 4)
    end = riff_size + 8
    if end > size:
        raise WavError(name, f"RIFF header claims {end} bytes but the file has {size} (truncated?)")

    chunks: dict[bytes, memoryview] = {}
    pos = 12
    while pos + 8 <= end:
        cid = bytes(buf[pos : pos + 4])
        (length,) = struct.unpack_from("<I", buf, pos + 4)
        if not all(0x20 <= c <= 0x7E for c in cid):
            raise WavError(
                name, f"invalid chunk id {cid!r} at offset {pos} (corrupt file or missing pad byte)"
            )
        body = pos + 8
        if length > end - body:
            raise WavError(
                name,
                f"chunk {cid.decode()!r} at offset {pos} claims {length} bytes "
                f"but only {end - body} remain (truncated or corrupt header)",
            )
        if cid in (b"fmt ", b"data"):
            if cid in chunks:
                raise WavError(name, f"more than one {cid.decode()!r} chunk")
            chunks[cid] = buf[body : body + length]
        pos = body + length + (length & 1)  # chunks are padded to even length
    for cid in (b"fmt ", b"data"):
        if cid not in chunks:
            raise WavError(name, f"no {cid.decode()!r} chunk")
    return chunks[b"fmt "], chunks[b"data"]


def _parse_fmt(name: str, fmt: memoryview) -> tuple[int, int, int, int]:
    """Validate the fmt chunk; return (format tag PCM/FLOAT, channels, rate Hz, bits)."""
    if len(fmt) < 16:
        raise WavError(name, f"'fmt ' chunk is {len(fmt)} bytes, expected at least 16")
    # byte_rate (skipped) is redundant with rate * block_align; decoders ignore it.
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", fmt)
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
    if not 1 <= channels <= MAX_CHANNELS:
        raise WavError(name, f"channel count {channels} not in 1..{MAX_CHANNELS}")
    if not 1 <= rate <= MAX_SAMPLE_RATE:
        raise WavError(name, f"sample rate {rate} Hz not in 1..{MAX_SAMPLE_RATE}")
    if block_align != channels * bits // 8:
        raise WavError(
            name,
            f"block align {block_align} does not match {channels} channels x {bits} bits "
            f"(expected {channels * bits // 8})",
        )
    return tag, channels, rate, bits


def _decode(name: str, payload: memoryview, tag: int, channels: int, bits: int) -> np.ndarray:
    """Interleaved little-endian samples -> float32 array (frames, channels)."""
    width = bits // 8
    block = width * channels
    if len(payload) == 0:
        raise WavError(name, "'data' chunk is empty (no audio)")
    if len(payload) % block:
        raise WavError(
            name, f"'data' chunk has {len(payload)} bytes, not a multiple of the {block}-byte frame"
        )
    if tag == _FLOAT:
        out = np.frombuffer(payload, dtype=f"<f{width}").astype(np.float32)
        if not np.isfinite(out).all():
            raise WavError(name, "float data contains NaN or infinite samples")
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
