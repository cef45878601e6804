"""Fuzz the edge runtime's input path: WAV bytes -> read_wav -> EmotionRecognizer.predict_file.

    python bench/bench_fuzz.py --cases 100000            # the long run (one process)
    python bench/bench_fuzz.py --cases 2000 --no-write   # a quick look, nothing saved
    python bench/_report.py render fuzz                  # the section from the saved JSON

Each case is a byte string from a seeded generator (`generate`): valid WAVs of every
supported format, channel count and a spread of sample rates, then mutated as a hostile or
broken writer would (random header bytes, lying size/rate/channel fields, truncation,
trailing junk, extra chunks, streamed 0 / 0xFFFFFFFF sizes, float data with NaN, inf and
1e30), plus random bytes with and without a RIFF header and other formats' magic bytes.
Each case is written to one scratch file and classified with `predict_file`; the only
expected exception is `WavError` (a clean, file-naming refusal). Where soundfile is
installed, the samples of every case both readers accept are compared bit for bit.

Reports: outcome counts by exception type, unexpected exceptions (with a reproducer seed),
the slowest case, peak RSS, and the soundfile agreement; saved as JSON to
docs/results/bench/fuzz.json, from which bench/render_fuzz.py renders the "fuzz" section of
docs/benchmarks.md. tests/test_fuzz.py runs the same generator on a few thousand cases in
the default test run.
"""

from __future__ import annotations

import argparse
import io
import re
import resource
import struct
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from edge_runtime.recognizer import DEFAULT_MODEL, EmotionRecognizer
from edge_runtime.speech import SpeechGateConfig
from edge_runtime.wav import WavError, read_wav

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import add_output_options, machine_line, output_targets, publish

#: Rates a valid case is written at: common ones, plus (rarely) any rate in 3..400 kHz.
COMMON_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000, 192000)
#: Header fields a "lying" case overwrites: (offset, struct format) of the RIFF size, fmt
#: size, tag, channels, rate, byte rate, block align, bits, and the data size of a plain
#: 16-byte fmt chunk.
FIELDS = ((4, "<I"), (16, "<I"), (20, "<H"), (22, "<H"), (24, "<I"), (28, "<I"), (32, "<H"),
          (34, "<H"), (40, "<I"))  # fmt: skip
INTERESTING = (0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
               0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)  # fmt: skip
MAGICS = (b"fLaC", b"OggS", b"ID3\x04", b"\xff\xfb\x90", b"FORM", b"RIFX", b"RF64", b'{"a"')
KINDS = (
    "valid",
    "mutated bytes",
    "lying field",
    "truncated",
    "trailing junk",
    "extra chunk",
    "streamed sizes",
    "float specials",
    "random bytes",
    "riff + random",
    "other format",
)


def _chunk(cid: bytes, payload: bytes, size: int | None = None) -> bytes:
    head = cid + struct.pack("<I", len(payload) if size is None else size)
    return head + payload + (b"\0" if len(payload) % 2 else b"")


def _riff(chunks: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def valid_wav(rng: np.random.Generator) -> bytes:
    """A well-formed WAV: PCM 8/16/24/32 or float 32/64, plain or extensible header, 1-4
    channels (rarely up to 40), 0-4000 frames, a common rate (rarely any in 3..400 kHz)."""
    is_float = rng.random() < 0.3
    bits = int(rng.choice((32, 64) if is_float else (8, 16, 24, 32)))
    channels = int(rng.integers(1, 5)) if rng.random() < 0.97 else int(rng.integers(1, 41))
    if rng.random() < 0.97:
        rate = int(rng.choice(COMMON_RATES))
    else:
        rate = int(rng.integers(3000, 400_001))
    frames = int(rng.integers(0, 4001))
    width = bits // 8
    if is_float:
        values = rng.normal(0, 0.3, frames * channels)
        data = values.astype(f"<f{width}").tobytes()
    else:
        data = rng.bytes(frames * channels * width)
    tag = 3 if is_float else 1
    block = channels * width
    if rng.random() < 0.2:  # WAVE_FORMAT_EXTENSIBLE
        guid = struct.pack("<H", tag) + bytes.fromhex("000000001000800000aa00389b71")
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block & 0xFFFFFFFF,
                          block, bits, 22, bits, 0) + guid  # fmt: skip
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block & 0xFFFFFFFF, block, bits)
    extra = _chunk(b"LIST", rng.bytes(int(rng.integers(0, 40)))) if rng.random() < 0.2 else b""
    return _riff(_chunk(b"fmt ", fmt) + extra + _chunk(b"data", data))


def generate(rng: np.random.Generator) -> tuple[str, bytes]:
    """One fuzz case: (kind, WAV-ish bytes)."""
    kind = KINDS[int(rng.integers(len(KINDS)))]
    raw = bytearray(valid_wav(rng))
    if kind == "mutated bytes":
        for _ in range(int(rng.integers(1, 9))):
            raw[int(rng.integers(0, min(len(raw), 80)))] = int(rng.integers(256))
    elif kind == "lying field":
        offset, form = FIELDS[int(rng.integers(len(FIELDS)))]
        if offset + struct.calcsize(form) <= len(raw):
            value = int(rng.choice(INTERESTING)) if rng.random() < 0.5 else int(rng.integers(2**32))
            struct.pack_into(form, raw, offset, value & (0xFFFF if form == "<H" else 0xFFFFFFFF))
    elif kind == "truncated":
        raw = raw[: int(rng.integers(0, len(raw) + 1))]
    elif kind == "trailing junk":
        raw += rng.bytes(int(rng.integers(1, 64)))
    elif kind == "extra chunk":
        cid = bytes(rng.integers(0x20, 0x7F, 4, dtype=np.uint8))
        body = rng.bytes(int(rng.integers(0, 30)))
        size = int(rng.integers(2**32)) if rng.random() < 0.3 else None
        pos = 12 if rng.random() < 0.5 else len(raw)
        raw[pos:pos] = _chunk(cid, body, size)
    elif kind == "streamed sizes":
        if rng.random() < 0.7:
            struct.pack_into("<I", raw, 4, int(rng.choice((0, 0xFFFFFFFF))))
        data = raw.find(b"data")
        if data > 0 and rng.random() < 0.7:
            struct.pack_into("<I", raw, data + 4, int(rng.choice((0, 0xFFFFFFFF))))
    elif kind == "float specials":
        specials = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 7e4, 1e-45], np.float32)
        n = int(rng.integers(0, 2000))
        values = rng.normal(0, 0.3, n).astype(np.float32)
        values[rng.random(n) < 0.01] = rng.choice(specials)
        fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
        raw = bytearray(_riff(_chunk(b"fmt ", fmt) + _chunk(b"data", values.tobytes())))
    elif kind == "random bytes":
        raw = bytearray(rng.bytes(int(rng.integers(0, 600))))
    elif kind == "riff + random":
        raw = bytearray(b"RIFF" + rng.bytes(4) + b"WAVE" + rng.bytes(int(rng.integers(0, 300))))
    elif kind == "other format":
        raw = bytearray(MAGICS[int(rng.integers(len(MAGICS)))] + rng.bytes(200))
    return kind, bytes(raw)


def soundfile_read(raw: bytes) -> np.ndarray | None:
    """soundfile's float32 frames (n, channels), or None where it refuses or is absent."""
    try:
        import soundfile
    except ImportError:
        return None
    try:
        data, _ = soundfile.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except Exception:  # libsndfile's refusals come as several types
        return None
    return data


def run_case(raw: bytes, scratch: Path, recognizer: EmotionRecognizer) -> dict:
    """Classify one case from the scratch file: outcome ("ok", "WavError" or the type of an
    unexpected exception), wall and process CPU seconds, and how `read_wav` compares with
    soundfile where soundfile reads audio ("identical", "different", "refused, soundfile
    reads it"; None where soundfile reads nothing)."""
    scratch.write_bytes(raw)
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        speech = recognizer.predict_file(scratch).has_speech
        outcome, message = "ok", ""
    except WavError as err:
        outcome, message, speech = "WavError", err.problem, None
    except Exception as err:  # what the fuzzer is looking for
        outcome, message, speech = type(err).__name__, str(err)[:200], None
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    try:
        ours = read_wav(raw, mono=False)[0]
    except WavError:
        ours = None
    theirs = soundfile_read(raw)
    if theirs is None or not len(theirs):
        agrees = None  # soundfile refuses it or reads no audio: nothing to compare
    elif ours is None:
        agrees = "refused, soundfile reads it"
    elif ours.shape == theirs.shape and np.array_equal(ours, theirs):
        agrees = "identical"
    else:
        agrees = "different"
    return {
        "outcome": outcome,
        "message": message,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "agrees": agrees,
        "speech": speech,
    }


def reason(message: str) -> str:
    """A refusal's message with its numbers and quoted values blanked: its kind."""
    return re.sub(r"-?\d[\d.e+]*|'[^']*'|b'[^']*'", "N", message.split(" (")[0])[:90]


def fuzz(
    cases: int, seed: int, recognizer: EmotionRecognizer, scratch: Path, progress: int = 0
) -> dict:
    """Run `cases` seeded cases; case i uses the generator seeded with (seed, i). With
    `progress`, a line on stderr every `progress` cases."""
    outcomes, kinds, unexpected = Counter(), Counter(), []
    gated = 0  # classified as "no speech" by the speech gate: the model did not run
    slowest = {"cpu_seconds": 0.0}  # CPU time: not inflated by waiting for a busy core
    agreement, refusals = Counter(), Counter()
    started = time.perf_counter()
    for i in range(cases):
        kind, raw = generate(np.random.default_rng((seed, i)))
        result = run_case(raw, scratch, recognizer)
        outcomes[result["outcome"]] += 1
        gated += result["speech"] is False
        kinds[f"{kind}: {result['outcome']}"] += 1
        if result["outcome"] not in ("ok", "WavError"):
            unexpected.append({"case": i, "kind": kind, **result})
        if result["cpu_seconds"] > slowest["cpu_seconds"]:
            slowest = {"case": i, "kind": kind, "bytes": len(raw), **result}
        if result["agrees"] is not None:
            agreement[result["agrees"]] += 1
        if result["agrees"] == "refused, soundfile reads it":
            refusals[reason(result["message"])] += 1
        if progress and (i + 1) % progress == 0:
            elapsed = time.perf_counter() - started
            print(
                f"{i + 1:,} cases, {elapsed:.0f} s, {dict(outcomes)}", file=sys.stderr, flush=True
            )
    return {
        "cases": cases,
        "seed": seed,
        "outcomes": dict(outcomes),
        "no_speech": gated,
        "by_kind": dict(sorted(kinds.items())),
        "unexpected": unexpected,
        "slowest_case": slowest,
        "soundfile": dict(agreement),
        "refused_where_soundfile_reads": dict(refusals.most_common()),
        "seconds": time.perf_counter() - started,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="exported model to run")
    parser.add_argument(
        "--no-speech-gate", action="store_true", help="run the model on every decoded case"
    )
    add_output_options(parser, "fuzz")
    args = parser.parse_args(argv)
    gate = None if args.no_speech_gate else SpeechGateConfig()
    recognizer = EmotionRecognizer(args.model, speech_gate=gate)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "case.wav"
        report = fuzz(args.cases, args.seed, recognizer, scratch, progress=5000)
    report["model"] = Path(args.model).name
    report["speech_gate"] = not args.no_speech_gate
    report["machine"] = machine_line()
    print(publish("fuzz", report, **output_targets(args)))
    return 0 if not report["unexpected"] else 1


if __name__ == "__main__":
    sys.exit(main())
