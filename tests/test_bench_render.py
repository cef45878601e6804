"""Each bench's second step, JSON -> Markdown: bench/render_<name>.py on canned results."""

from __future__ import annotations

import json

import render_baseline
import render_dynconv
import render_edge
import render_export
import render_frontend
import render_fuzz
import render_memory
import render_speech_gate
from bench_results import (
    ENV,
    MACHINE,
    dynconv_results,
    edge_results,
    export_results,
    frontend_results,
    fuzz_results,
    memory_results,
    speech_gate_results,
)

from keras_dyconv.labels import class_mask, common_label
from keras_dyconv.recipes import get_recipe
from keras_dyconv.results import ONLINE_ORDER, corpus_scores


def test_render_frontend():
    text = render_frontend.render(frontend_results())
    assert text.startswith(f"Script: `bench/bench_frontend.py`. {MACHINE} numpy 2.4.6, ")
    assert "Corpus: `/data/emodb/wav`, 2 files, 1.5 min at 16000 Hz." in text
    assert "decoders differed on 0 files). Target: log-mel max |diff| <= 0.001 dB: met." in text
    assert (
        "| feature | max abs diff | mean abs diff |\n|---|---|---|\n"
        "| log-mel (dB) | 1.5e-05 | 2.5e-07 |\n| MFCC-39 | 0.000122 | 1.5e-06 |"
    ) in text
    assert (
        "| 8 kHz | 82.2 | 84.4 / 70.2 | 0.406 / 0.0015 | 0.131 / 0.0038 | 1.5e-05 / 0.00012 "
        "| 0.90 / 0.14 |"
    ) in text
    assert "are process CPU time, which waiting for a core does not inflate; load average" in text
    assert "(1 min) at start / end of the run: 1.5 / 2.2." in text
    assert text.endswith(
        "| workload | edge | librosa | speed-up (librosa / edge) |\n|---|---|---|---|\n"
        "| 3 s clip, logmel (median of 300) | 0.500 | 1.500 | 3.00x |\n"
        "| corpus, logmel (2 files, median of 3 passes) | 0.200 | 0.500 | 2.50x |\n"
        "| 3 s clip, mfcc39 (median of 300) | 0.400 | 1.600 | 4.00x |\n"
        "| corpus, mfcc39 (2 files, median of 3 passes) | 0.250 | 1.000 | 4.00x |\n"
        "| corpus from WAV files, logmel (decode + features) | 0.250 | 0.750 | 3.00x |"
    )
    worse = frontend_results()
    worse["native"]["logmel"]["max"] = 0.002
    assert "<= 0.001 dB: **missed**." in render_frontend.render(worse)


def test_render_dynconv():
    text = render_dynconv.render(dynconv_results())
    assert text.startswith(
        f"`bench/bench_dynconv.py`. {MACHINE} Load average (1 min) at start / end of the run: "
        "5.7 / 5.5.\n\n**Summary.** Fastest path per backend: tensorflow aggregate (0.50x "
        "training, 1.10x inference); torch (1 thread) branches (1.50x training, 1.10x "
        "inference). Target (at most 1.5x a static Conv2D for training and 1.2x for batch-1 "
        "inference on at least one backend): met on tensorflow, torch (1 thread). Default "
        "model, mode auto: fastest backend tensorflow (264 ms per training step).\n\n"
    )
    assert "| tensorflow | aggregate (auto) | 100 ±20% | 0.50x | 2.2 ±20% | 1.10x |" in text
    assert "| torch (1 thread) | branches | 300 ±5% | 1.50x | 2.2 ±5% | 1.10x |" in text
    assert (
        "| tensorflow | intra_op = default (all cores) | 0.64 | 1.5e-06 | "
        "Conv2D 0.7, aggregate 1.6, branches 2.1 |"
    ) in text
    assert text.endswith(
        "| backend | conv_mode | train step ms | step / branches step | "
        "first step s (incl. compile) |\n|---|---|---|---|---|\n"
        "| tensorflow | auto (aggregate) | 264 ±13% | 0.85x | 5.4 |\n"
        "| tensorflow | branches | 310 ±15% | 1.00x | 2.4 |"
    )
    slow = dynconv_results()
    slow["results"][0]["infer"]["aggregate"]["ratio"] = 1.3
    slow["results"][0]["infer"]["branches"]["ratio"] = 1.3
    slow["results"][1]["train"]["branches"]["ratio"] = 1.6
    assert "inference on at least one backend): not met on any backend." in (
        render_dynconv.render(slow)
    )


def test_render_export():
    text = render_export.render(export_results())
    assert text.startswith(
        "`bench/bench_export.py --epochs 20`: the default `build_dycnn_bilstm()` (398,234 "
        "parameters) trained 20 epochs (47 s) on EmoDB speakers other than 03/08;"
    )
    assert "parity on the 107 utterances (172 windows of 3 s, 1 s hop)" in text
    assert "median over 15 rounds of the median of 20 invokes" in text
    assert "(TensorFlow, eager): 42.39 ms." in text
    assert (
        "| tflite | none | 1600 | 100% | 2.00 | 1.00 | 100.0 | 0.012 | 61.0 / 61.0 | "
        "54.2 / 54.2 | yes | 8 |\n"
        "| tflite | int8 | 400 | 25% | 1.60 | 0.80 | 97.0 | 0.012 | 61.0 / 59.0 | "
        "54.2 / 54.2 | **no** | 8 |\n"
        "| onnx | none | 1600 | 100% | 1.80 | 1.00 |"
    ) in text
    assert (
        "Targets: int8 TFLite size <= 30% of float32: met; int8 TFLite latency < float32: met; "
        "int8 TFLite window accuracy within 1 point of Keras: **missed**; int8 TFLite "
        "utterance accuracy within 1 point of Keras: met; int8 TFLite top-1 agreement >= 98%: "
        "**missed**."
    ) in text
    assert MACHINE in text
    assert f"Load average (1 min) at the start: {ENV['load_1min']:.1f}. Absolute" in text
    assert "so its Bi-LSTM runs 18 steps per 3 s window" in text
    assert "pooling time 8x (trained the same way, 48 s) runs 37." in text
    assert "All 8 interpreters" in text
    assert text.endswith(
        "| 16x (default) | whole | 2.00 | 1.60 | 0.80 |\n"
        "| 16x (default) | convolutions | 1.75 | 0.70 | 0.40 |\n"
        "| 16x (default) | Bi-LSTM + head | 0.25 | 0.90 | 3.60 |\n"
        "| 8x | whole | 2.30 | 2.50 | 1.09 |\n"
        "| 8x | convolutions | 1.80 | 0.75 | 0.42 |\n"
        "| 8x | Bi-LSTM + head | 0.50 | 1.75 | 3.50 |"
    )


def test_render_edge():
    text = render_edge.render(edge_results())
    assert text.startswith(
        "`bench/bench_edge.py`: model `runs/default-model/model.keras` exported with "
        "`export.pipeline.export_model` (int8 calibrated on every 6th file of "
        "`/data/emodb/wav`, 25% of them held out for the parity column). Clip: the first 3 s "
        "of `03a05Aa.wav` as a 16-bit WAV."
    )
    assert "3 processes per model, round-robin over the models, each 40 timed runs" in text
    assert (
        "| decode ms | speech gate ms / CPU ms | frontend ms | inference ms | "
        "model path (no gate) ms / CPU ms |"
    ) in text
    assert (
        "| tflite | int8 | litert (ai_edge_litert) + XNNPACK (6 partitions) | 416 | 10 | "
        "**3.00** | 3.10 | 3.00 | 0.040 | 0.75 / 0.75 | 0.40 | 2.40 | 2.25 / 2.25 | 34 | 59 | "
        "97.7 | fear |\n"
        "| onnx | float16 | export failed | - | - | - | - | - | - | - | - | - | - | - | - | - | "
        "- |\n"
        "| numpy | none | numpy 2.4.6 | 416 | 10 | **120** | 120 | 120 | 0.040 | 30.00 / 30.00 |"
    ) in text
    assert (
        "Targets (this x86 CPU, one thread): int8 LiteRT end-to-end <= 10 ms: met (3.00 ms: the "
        "speech gate 0.75 ms, the model path (the same call without the gate) 2.25 ms); "
        "numpy engine <= 100 ms: **missed** (120.0 ms); streaming (int8 LiteRT, 0.5 s hop) < "
        "5% of one core: met (0.40%)."
    ) in text
    assert (
        "| tflite int8 | litert (ai_edge_litert) + XNNPACK (6 partitions) | 600 | 1195 | "
        "0.0040 | 0.0040 | **0.40** | 2.00 / 2.50 | 58.2 | 58.5 | +0.3 |"
    ) in text
    assert "installed there: none; imported by the runtime: none." in text
    assert "printed `clip-3s.wav: fear  (fear 0.93)`." in text
    assert (
        "| tflite int8 | litert (ai_edge_litert), builtin kernels only | 3.00 | 600 | 200x | "
        "20.00 / 570 | "
    ) in text
    assert (
        "**Raspberry Pi 4 (estimate, not measured)**: the x86 CPU times above scaled by 5-10x. "
        "Streaming with int8 LiteRT at the slow end (4.0% of one core) within the 5% budget: "
        "met.\n\n"
        "| model | ms per 3 s clip | % of the clip's duration (slow end) | "
        "% of one core streaming |\n|---|---|---|---|\n"
        "| int8 LiteRT | 15-30 | 1.0 | 2.0-4.0 |\n| numpy | 600-1200 | 40.0 | - |"
    ) in text
    assert (
        "**Derived figures.**\n\n"
        "- Model windows per 3 s clip: 2; inference is 80%, the speech gate 25% of the tflite "
        "int8 end-to-end time.\n"
        "- DELEGATE nodes in the LiteRT graph (one per partition a delegate took), default "
        "delegates / builtin kernels only: float32 5 / 0, int8 6 / 0. The runtime passes no "
        "delegate, so the default graph's are XNNPACK's.\n"
        "- One window through LiteRT, default delegates (XNNPACK) / builtin kernels only: "
        "float32 2.00 / 9.00 ms (XNNPACK 4.5x faster), int8 1.60 / 4.00 ms (XNNPACK 2.5x "
        "faster); int8 / float32 with XNNPACK: 0.80x. `reset_all_variables()` (called before "
        "each invoke, included): 0.3 us.\n"
        "- Fastest end to end: tflite dynamic (2.50 ms). Fastest LiteRT model: dynamic "
        "(2.50 ms), against 3.00 ms for the int8 model the runtime ships.\n"
        "- Streaming decision with int8 LiteRT: 2.00 ms median, of which the features of the "
        "3 s window take about 0.40 ms (the predict's frontend time).\n"
        "- XNNPACK on x86 but not under emulation: tflite int8. Like for like: tflite int8 one "
        "window on builtin kernels: x86 4.00 ms, emulated 280 ms (70x).\n\n"
    ) in text
    assert text.endswith(
        f"{MACHINE} CPU: Test CPU. Load average (1 min) at start / end: 0.1 / 0.9. "
        "Whole run: 2.0 min."
    )
    no_emulator = edge_results()
    for m in no_emulator["models"]:
        m["emulated"] = None
    assert "(arm64 emulation skipped.)" in render_edge.render(no_emulator)


def test_render_edge_results_saved_before_the_gate_was_timed():
    """Results saved before the gate and the delegate nodes were measured still render:
    their cells say "-" and the engine claims no delegate."""
    old = edge_results()
    for m in old["models"]:
        for part in ("predict", "stream", "emulated"):
            if m.get(part):
                m[part].pop("delegate_nodes")
                for stats in ("median", "p90"):
                    if stats in m[part]:
                        for name in ("gate", "gate_cpu", "model_path", "model_path_cpu"):
                            del m[part][stats][name]
        if m.get("predict"):
            for key in ("default_nodes", "builtin_nodes"):
                m["predict"]["window_ms"].pop(key, None)
    text = render_edge.render(old)
    assert "+ XNNPACK (6" not in text and "builtin kernels only |" not in text
    assert (
        "| tflite | int8 | litert (ai_edge_litert) | 416 | 10 | **3.00** | 3.10 | 3.00 | "
        "0.040 | - | 0.40 | 2.40 | - | 34 |"
    ) in text
    assert "int8 LiteRT end-to-end <= 10 ms: met (3.00 ms);" in text
    assert "inference is 80% of the tflite int8 end-to-end time." in text
    assert "- DELEGATE nodes in the LiteRT graph" not in text
    assert "XNNPACK on x86 but not under emulation" not in text


def test_render_speech_gate():
    text = render_speech_gate.render(speech_gate_results())
    assert text.startswith(f"Script: `bench/bench_speech_gate.py`. {MACHINE} numpy 2.4.6, ")
    assert "**Real speech gated out: 1 of 2** (target 0 of 2: **missed**)" in text
    assert "| emodb | 2 | 1 | 50.00 % | 0.3 | 1.2 | 0.3 | 0.3 | 0.3 | -46.8 | 20.0 |" in text
    assert "- `emodb/wav/a.wav`: too quiet (0.1 s voiced)" in text
    assert (
        '"no speech": 2 of 3**' in text and "| pure tone | 100 Hz | 2 | 2 (100 %) | 0.0 |" in text
    )
    assert "- melody: harmonic notes (seed 0, 2.35 s)" in text
    assert "40.0 ms to gate a 3 s clip" in text and "10.0 ms per 0.5 s hop" in text
    assert "2.0 % of a core" in text
    assert "(60 ms every 10 ms; periodicity, pitch and harmonics every 20 ms, held between)" in text
    before = speech_gate_results()
    del before["settings"]["config"]["pitch_every"]  # saved before it existed
    assert "(60 ms every 10 ms) above" in render_speech_gate.render(before)
    kept = speech_gate_results()
    kept["corpora"]["emodb"].update(rejected=0, rejections=[])
    assert "(target 0 of 2: met)" in render_speech_gate.render(kept)
    partial = speech_gate_results()
    partial["corpora"]["emodb"].update(expected=535, rejected=0, rejections=[])
    assert "(target 0 of 535: **missed**)" in render_speech_gate.render(partial)


def test_render_memory():
    text = render_memory.render(memory_results())
    assert "utterances of 1.5-5 s" in text and "batch 32" in text
    assert "300-frame windows every 100 frames" in text
    assert "| 1 | 1107 | 88 | 961 | 875 | 1011 | 925 | 2.5 | 3.0 | yes |" in text
    assert "| 4 | 4430 | 352 | 1231 | 876 | 1281 | 926 | 9.5 | 11.0 | yes |" in text
    assert "grows by 90 MB per hour of features in RAM and by 0.5 MB per hour" in text
    assert "with the scoring, by 90 and 0.5 MB per hour" in text
    assert "imports alone: 860-860 MB" in text
    assert f"load average {ENV['load_1min']:.1f} at the start" in text


def test_render_fuzz():
    text = render_fuzz.render(fuzz_results())
    assert text.startswith(
        "`bench/bench_fuzz.py --cases 1000 --seed 0` (model: emodb-int8.tflite, speech gate on"
    )
    assert "Raw numbers: `docs/results/bench/fuzz.json`." in text
    assert "| of them 'no speech' (gated; the model did not run) | 390 |  |" in text
    assert "| unexpected exceptions | 0 | 0: met |" in text
    assert "| slowest case | 0.012 s (valid, 96044 bytes) | < 2 s: met |" in text
    assert "| identical to soundfile where both read | 400 of 400 | all |" in text
    assert "| `sample rate N Hz not in N Hz` | 3 |" in text
    data = {**fuzz_results(), "outcomes": {"ok": 400, "WavError": 599}}
    assert "| unexpected exceptions | 1 | 0: **missed** |" in render_fuzz.render(data)


# ------------------------------------------------------------------ the paper's table
#: Two stratified folds of four CASIA utterances, all named 201.wav (as CASIA repeats file
#: names across speakers and emotions): (speaker, emotion) per fold.
CASIA_FOLDS = {
    "stratified-1of2": [("liuchang", "angry"), ("wangzhe", "sad")],
    "stratified-2of2": [("wangzhe", "angry"), ("liuchang", "sad")],
}


def _casia_folds(root, ua, folds=CASIA_FOLDS):
    """Fold records as `dyser-train` and the SVM save them: each fold's test utterances
    under `root` (predicted right) and its per-fold UA (`ua`, one per fold)."""
    return [
        {
            "fold": name,
            "seed": 0,
            "metrics": {"ua": u},
            "predictions": [
                {"path": f"{root}/casia/{s}/{e}/201.wav", "label": e, "predicted": e}
                for s, e in tested
            ],
        }
        for (name, tested), u in zip(folds.items(), ua, strict=True)
    ]


def _scores(wa, ua, key="pooled"):
    """A run's pooled WA / UA (fractions) under `key`, each with a +-0.1 interval."""
    return {
        key: {"wa": wa, "ua": ua},
        f"{key}_ci95": {"wa": [wa - 0.1, wa + 0.1], "ua": [ua - 0.1, ua + 0.1]},
    }


def _casia_neural(ua, recipe=None, folds=CASIA_FOLDS):
    """A results.json of `dyser-train --corpus casia --data ../shared/datasets/casia
    --protocol stratified --folds 2 --seed 0`, as a single-corpus run writes it (its own
    labels; no "corpora"), the data given as a relative path."""
    return {
        "protocol": {"name": "stratified", "k": 2, "split_file": None, "val_speakers": "auto"}
        | {"seed": 0, "speaker_independent": False},
        "recipe": recipe or {"name": "default"},
        "labels": ["angry", "sad"],
        "seeds": [0],
        "folds": _casia_folds("../shared/datasets", ua, folds),
        "folds_run": 2,
        **_scores(0.75, 0.75),
    }


def test_paper_table_reads_single_corpus_runs_by_their_folds_and_variant(tmp_path):
    """A CASIA run of `dyser-train` is read against the SVM on the same folds, checked
    when rendering; a run testing other utterances under the same file names is not; a
    stream variant is named by what it changed and its scores are said to be online, with
    its other scores (those it saved) under the table."""
    svm = {
        "corpus": "casia",
        "protocol": {"name": "stratified", "k": 2, "seed": 0, "description": "stratified 2-fold"},
        "folds": _casia_folds("/work/shared/datasets", [0.5, 0.5]),
        "folds_run": 2,
        **_scores(0.5, 0.5),
    }
    speaker = {**svm, **_scores(0.6, 0.6), "folds": _casia_folds("/x", [1.0, 1.0])}
    (tmp_path / "casia-stratified-default.json").write_text(json.dumps(_casia_neural([1.0, 0.5])))
    # The same file names in each fold, but fold 1 tests fold 2's speakers and emotions.
    swapped = dict(zip(CASIA_FOLDS, reversed(CASIA_FOLDS.values()), strict=True))
    other = _casia_neural([0.5, 1.0], folds=swapped)
    (tmp_path / "casia-stratified-other.json").write_text(json.dumps(other))
    stream = {"name": "default", "normalization": "stream", "stream_training": "online"}
    streamed = _casia_neural([0.5, 0.5], recipe=stream)
    for key, wa in [("corpus_order", 0.25), ("independent", 0.5), ("speaker_norm", 0.875)]:
        streamed.update(_scores(wa, wa, f"pooled_{key}"))
    streamed["online_order"] = ONLINE_ORDER
    (tmp_path / "casia-stratified-streamonline.json").write_text(json.dumps(streamed))
    by_job = {"casia-stratified": {"none": svm, "speaker": speaker}}

    text = render_baseline.paper_table(by_job, ["casia-stratified"], tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| CASIA | stratified 2-fold")]
    # Per fold UA minus the SVM's: +50 and +0 -> mean +25; the bootstrap over two folds
    # draws means of 0, 25 or 50: its 2.5% and 97.5% quantiles are 0 and 50.
    assert rows[0] == (
        "| CASIA | stratified 2-fold | ours, neural: default recipe (same folds) | 2 x 1 "
        "| 75.0 [65.0, 85.0] | 75.0 [65.0, 85.0] | +25.0 [+0.0, +50.0] |"
    )
    assert rows[1] == (
        "| CASIA | stratified 2-fold | ours, neural: default recipe | 2 x 1 "
        "| 75.0 [65.0, 85.0] | 75.0 [65.0, 85.0] | — |"
    )
    assert rows[2] == (
        "| CASIA | stratified 2-fold | ours, neural: recipe `default`, normalization stream, "
        "stream_training online (same folds); scored online per test speaker (note below) "
        "| 2 x 1 | 75.0 [65.0, 85.0] | 75.0 [65.0, 85.0] | +0.0 [+0.0, +0.0] |"
    )
    # The SVM speaker-normalised: per fold +50 and +50 over the SVM without.
    assert rows[3:] == [
        "| CASIA | stratified 2-fold | eGeMAPS + linear SVM | 2 x 1 | 50.0 [40.0, 60.0] "
        "| 50.0 [40.0, 60.0] | — |",
        "| CASIA | stratified 2-fold | eGeMAPS + linear SVM (speaker-norm.) | 2 x 1 "
        "| 60.0 [50.0, 70.0] | 60.0 [50.0, 70.0] | +50.0 [+50.0, +50.0] |",
    ]
    assert text.endswith(
        "\n\nCASIA, stratified 2-fold, `casia-stratified-streamonline.json`: Normalisation "
        '"stream": the scores above are online, each test speaker\'s utterances one stream in '
        "a random order per speaker, seeded by the training seed; in corpus order "
        "(emotion-blocked where a corpus lists a speaker's files by emotion) WA / UA are "
        "25.0 [15.0, 35.0] / 25.0 [15.0, 35.0]; on each utterance alone (a fresh stream from "
        "the training prior, as a device scores one clip) WA / UA are 50.0 [40.0, 60.0] / "
        "50.0 [40.0, 60.0]; with each test speaker's own statistics (all of their audio, "
        "transductive) WA / UA are 87.5 [77.5, 97.5] / 87.5 [77.5, 97.5] (see the section on "
        "stream normalisation)."
    )
    # Saved without its scores on each clip alone and with each speaker's own statistics
    # (an older file): the note says nothing of them.
    for key in ("pooled_independent", "pooled_speaker_norm"):
        del streamed[key], streamed[f"{key}_ci95"]
    note = render_baseline.stream_note("casia", "stratified 2-fold", "s.json", streamed)
    assert note.endswith(
        "by emotion) WA / UA are 25.0 [15.0, 35.0] / 25.0 [15.0, 35.0] (see the section on "
        "stream normalisation)."
    )


def test_paper_table_keeps_named_recipes_names():
    # A results.json saves every field of its recipe.
    paper = {"recipe": get_recipe("paper").to_dict()}
    assert render_baseline.neural_model("x.json", paper) == "ours, neural: paper recipe"
    run = {"recipe": {**get_recipe("fast").to_dict(), "epochs": 1}}
    assert render_baseline.neural_model("x.json", run) == "ours, neural: recipe `fast`, epochs 1"
    retired = {"recipe": {"name": "paper-v0", "epochs": 30}}  # no longer a recipe
    assert render_baseline.neural_model("x.json", retired) == (
        "ours, neural: recipe `paper-v0` (retired recipe; `default`, epochs 30)"
    )
    ablation = {"recipe": {"name": "dataset-norm+time-pool16"}}  # not a recipe name today
    assert render_baseline.neural_model("ablation/d.json", ablation) == (
        "ours, neural: default today (dataset-norm+time-pool16) recipe"
    )


# ------------------------------------------------- the paper's table: pooled corpora
POOLED_LABELS = ["anger", "calm", "neutral", "sadness"]  # the common space; EmoDB lacks calm
#: A pooled job's folds: (corpus, speaker, own label) of each test utterance. EmoDB: two
#: speakers tested in the first fold, one in the second; RAVDESS: one in each.
POOLED_FOLDS = {
    "speaker-1of2": [
        ("emodb", "03", "anger"),
        ("emodb", "08", "neutral"),
        ("ravdess", "01", "angry"),
    ],
    "speaker-2of2": [
        ("emodb", "09", "anger"),
        ("emodb", "09", "neutral"),
        ("ravdess", "02", "calm"),
    ],
}


def _pooled_records(root, seed, said, prediction):
    """Fold records of `POOLED_FOLDS`, utterances under `root`: each prediction
    `prediction(said(corpus, common label), corpus, common label)` plus its path, corpus,
    labels and test speakers."""
    records = []
    for name, tested in POOLED_FOLDS.items():
        predictions = []
        for corpus, speaker, own in tested:
            label = common_label(corpus, own)
            predictions.append(
                {"path": f"{root}/{corpus}/{speaker}/{own}.wav", "corpus": corpus}
                | {"label": label, "original_label": own}
                | prediction(said(corpus, label), corpus, label)
            )
        speakers = sorted({f"{c}/{s}" for c, s, _ in tested})
        records.append(
            {"fold": name, "seed": seed, "test_speakers": speakers} | {"predictions": predictions}
        )
    return records


def _pooled_neural(seed, said, recipe=None):
    """A results.json of `dyser-train --corpus emodb ... --corpus ravdess ... --target all
    --protocol group-kfold --folds 2 --seed <seed>`: `said(corpus, label)` the class of
    highest probability (0.6), the true one next (0.3)."""

    def prediction(guess, corpus, label):
        p = [0.05] * len(POOLED_LABELS)
        p[POOLED_LABELS.index(label)] = 0.3
        p[POOLED_LABELS.index(guess)] = 0.6
        return {"predicted": guess, "probabilities": p}

    folds = _pooled_records("../shared/datasets", seed, said, prediction)
    return {
        "protocol": {"name": "group-kfold", "k": 2, "speaker_independent": True},
        "recipe": recipe or {"name": "default"},
        "labels": POOLED_LABELS,
        "target_corpus": "all",
        "corpora": {"emodb": {"role": "pooled"}, "ravdess": {"role": "pooled"}},
        "seeds": [seed],
        "folds": folds,
        "folds_run": 2,
        "timings": {"total_s": 60.0},
        "corpus_scores": corpus_scores(folds, POOLED_LABELS),
    }


def _pooled_svm(said, own):
    """A pooled eGeMAPS+SVM result (`bench_baseline.py --jobs pooled-...`) on
    `POOLED_FOLDS`: own-label scores 1 for `said(corpus, label)`, 0 for the corpus's other
    classes; `own`: {corpus: (WA, UA, interval of both)} as its "corpus_scores" record."""

    def prediction(guess, corpus, label):
        allowed = class_mask(corpus, POOLED_LABELS)
        scores = [
            float(c == guess) if a else None for c, a in zip(POOLED_LABELS, allowed, strict=True)
        ]
        return {"scores_own": scores}

    return {
        "job": "pooled-group2",
        "corpora": {"emodb": {}, "ravdess": {}},
        "protocol": {"name": "group-kfold", "k": 2, "description": "2 speaker-grouped folds"},
        "speaker_independent": True,
        "labels": POOLED_LABELS,
        "folds": _pooled_records("/work/shared/datasets", 0, said, prediction),
        "folds_run": 2,
        "corpus_scores": {
            c: {"own": {"wa": wa, "ua": ua, "ci95": {"wa": ci, "ua": ci}}}
            for c, (wa, ua, ci) in own.items()
        },
    }


def test_paper_table_reads_pooled_runs_per_corpus_against_the_pooled_svm(tmp_path, monkeypatch):
    """Each corpus of a pooled job gets the pooled neural runs of `PAPER_POOLED_RUNS` (their
    seed files merged) and the pooled SVMs, in its own label set, with the paired UA
    difference from the per-corpus-z SVM on the same utterances; other pooled runs are
    not read, and a run on other utterances is not paired."""
    monkeypatch.setattr(render_baseline, "POOLED_JOBS", {"pooled-group2": None})
    runs = tmp_path / "multicorpus"
    runs.mkdir()
    right = lambda corpus, label: label  # noqa: E731
    # Seed 1 says "calm" (not EmoDB's) for EmoDB's neutral: wrong in the common labels,
    # right in EmoDB's own (its arg-max over anger, neutral, sadness: neutral).
    calm = lambda corpus, label: "calm" if label == "neutral" else label  # noqa: E731
    (runs / "pooled-group-kfold-valrule4-seed0.json").write_text(
        json.dumps(_pooled_neural(0, right))
    )
    (runs / "pooled-group-kfold-valrule4-seed1.json").write_text(
        json.dumps(_pooled_neural(1, calm))
    )
    # The stream run says "sadness" for EmoDB's neutral, right elsewhere.
    sad = lambda corpus, label: "sadness" if label == "neutral" else label  # noqa: E731
    stream = {"name": "default", "normalization": "stream", "stream_training": "online"}
    streamed = _pooled_neural(0, sad, stream) | {"online_order": ONLINE_ORDER}
    for record in streamed["folds"]:
        for p in record["predictions"]:
            p |= dict.fromkeys(
                ["predicted_corpus_order", "predicted_independent", "predicted_speaker_norm"],
                p["label"],
            )
    stream_file = runs / "pooled-group-kfold-streamonline-valrule4-seed0.json"
    stream_file.write_text(json.dumps(streamed))
    # Not one of the paper's pooled runs: not read (all wrong, it would show).
    (runs / "pooled-group-kfold-seed0.json").write_text(json.dumps(_pooled_neural(0, sad)))
    # The SVM per corpus says "sadness" for every EmoDB utterance (own UA 0); per speaker
    # it is right on all. Both right on RAVDESS.
    every_sad = lambda corpus, label: "sadness" if corpus == "emodb" else label  # noqa: E731
    corpus = _pooled_svm(every_sad, {"emodb": (0, 0, [0, 0]), "ravdess": (1, 1, [1, 1])})
    speaker = _pooled_svm(right, {"emodb": (1, 1, [1, 1]), "ravdess": (1, 1, [1, 1])})
    by_job = {"pooled-group2": {"corpus": corpus, "speaker": speaker}}

    text = render_baseline.paper_table(by_job, [], tmp_path)
    protocol = "EmoDB+RAVDESS pooled, 2 speaker-grouped folds (speaker-independent; "
    emodb = [line for line in text.splitlines() if line.startswith("| EmoDB |")]
    on = f"| EmoDB | {protocol}1-2 EmoDB speakers tested per fold) |"
    # Both seeds right in EmoDB's own labels (seed 1's "calm" would be wrong in the common
    # ones: 75); the per-corpus SVM wrong on all: +100 on every resample.
    stream_model = (
        "ours, neural: recipe `default`, normalization stream, stream_training online (same "
        "folds); scored online per test speaker (note below)"
    )
    assert emodb[1:] == [
        f"{on} ours, neural: default recipe (same folds) | 2 x 2 | 100.0 [100.0, 100.0] "
        "| 100.0 [100.0, 100.0] | +100.0 [+100.0, +100.0] |",
        # Anger right, neutral wrong: 50, a resample of only one class 0 or 100.
        f"{on} {stream_model} | 2 x 1 | 50.0 [0.0, 100.0] | 50.0 [0.0, 100.0] "
        "| +50.0 [+0.0, +100.0] |",
        f"{on} eGeMAPS + linear SVM (per-corpus z) | 2 x 1 | 0.0 [0.0, 0.0] | 0.0 [0.0, 0.0] | — |",
        f"{on} eGeMAPS + linear SVM (per-speaker z) | 2 x 1 | 100.0 [100.0, 100.0] "
        "| 100.0 [100.0, 100.0] | +100.0 [+100.0, +100.0] |",
    ]
    ravdess = [line for line in text.splitlines() if line.startswith("| RAVDESS |")]
    zero = "+0.0 [+0.0, +0.0] |"  # every model right on RAVDESS
    assert [line.split(" | ")[1] for line in ravdess] == [
        f"{protocol}1 RAVDESS speaker tested per fold)"
    ] * 4
    assert [line.split(" | ")[-1] for line in ravdess] == [zero, zero, "— |", zero]
    assert "paired bootstrap interval over those utterances, not folds" in text
    assert (
        "\n\nEmoDB+RAVDESS pooled, "
        "`multicorpus/pooled-group-kfold-streamonline-valrule4-seed0.json`: Normalisation "
        '"stream": the scores above are online, each test speaker\'s utterances one stream in '
        "a random order per speaker"
    ) in text

    # A run on other utterances (fold 2 tests another EmoDB file): not paired.
    streamed["folds"][1]["predictions"][0]["path"] = "../shared/datasets/emodb/09/x.wav"
    stream_file.write_text(json.dumps(streamed))
    text = render_baseline.paper_table(by_job, [], tmp_path)
    assert "online (same folds)" not in text
    assert f"{on} {stream_model.replace(' (same folds)', '')} | 2 x 1 | 50.0 [0.0, 100.0] " in (
        text
    )
    assert "| 50.0 [0.0, 100.0] | — |" in text
