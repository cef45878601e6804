"""The benchmark scripts' wiring (their runs need EmoDB and hours; this checks the calls),
and the report CLI that renders each section of docs/benchmarks.md from its saved JSON.
The renderers are tested in test_bench_render.py, the measure -> JSON -> Markdown runs in
test_bench_round_trip.py."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import _report
import bench_ablation
import bench_training
import numpy as np
import pytest
import render_edge
import render_frontend
from bench_results import RESULTS, edge_results, frontend_results


def test_ablation_calls_bench_training_with_every_option(monkeypatch, tmp_path):
    calls = []

    def fake_run(args: bench_training.BenchRun) -> list[Path]:
        calls.append(args)
        raise SystemExit("stop before training")

    monkeypatch.setattr(bench_training, "run", fake_run)
    monkeypatch.setattr(bench_ablation, "ABLATION", tmp_path)
    with pytest.raises(SystemExit, match="stop before training"):
        bench_ablation.run_variant("dataset-norm+window2s", [0, 1], 2, "tensorflow", resume=True)
    options = {
        action.dest
        for action in bench_training.build_parser()._actions
        if action.help != argparse.SUPPRESS and action.dest not in ("help", "table_only")
    }
    (args,) = calls
    fields = {f.name for f in dataclasses.fields(args)}
    assert options <= fields, options - fields
    assert args.seeds == [0, 1] and args.resume and args.window == {"frames": 200, "hop_frames": 50}
    assert args.overrides["model"]["pool_size"] == [2, 2]  # ABLATION_MODEL pins the 8x model


def test_ablation_refuses_new_seeds_for_a_corpus_order_stream_file(monkeypatch, tmp_path):
    """A stream variant scored in corpus order (before "online_order") cannot take new
    seeds, which score in a random order: refused before any training."""
    monkeypatch.setattr(bench_training, "run", lambda _: pytest.fail("trained"))
    monkeypatch.setattr(bench_ablation, "ABLATION", tmp_path)
    old = {"seeds": [0], "recipe": {"normalization": "stream"}}
    (tmp_path / "stream-norm.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"stream-norm\.json scored its stream runs in corpus"):
        bench_ablation.run_variant("stream-norm", [0, 1], 2, "tensorflow")
    assert bench_ablation.run_variant("stream-norm", [0], 2, "tensorflow").exists()  # nothing to do


@pytest.mark.parametrize("name", list(bench_ablation.VARIANTS))
def test_every_ablation_variant_is_a_valid_recipe(name):
    from edge_runtime.config import FrontendConfig
    from edge_runtime.windows import WindowPolicy
    from keras_dyconv.models import model_arguments
    from keras_dyconv.recipes import get_recipe

    overrides = dict(bench_ablation.VARIANTS[name][0])
    FrontendConfig(**overrides.pop("frontend", {}))
    WindowPolicy(**overrides.pop("window", {}))
    recipe = get_recipe("default").with_overrides(**overrides)  # unknown fields raise
    model_arguments(num_classes=7, **{**bench_ablation.ABLATION_MODEL, **recipe.model})
    paired = bench_ablation.PAIRED_WITH.get(name, bench_ablation.BASELINE)
    assert paired in bench_ablation.VARIANTS


def test_seconds_per_epoch_counts_refit_epochs():
    folds = [
        {"seconds": 90.0, "epochs_run": 30, "refit_epochs": 0},
        {"seconds": 200.0, "epochs_run": 30, "refit_epochs": 20},  # 4 s: the median
        {"seconds": 500.0, "epochs_run": 45},  # older results have no refit_epochs
    ]
    assert bench_ablation.seconds_per_epoch({"folds": folds}) == pytest.approx(4.0)


def test_ablation_caption_says_how_each_stream_variant_ordered_its_online_streams():
    from keras_dyconv.results import ONLINE_ORDER

    stream = {"normalization": "stream"}
    runs = {
        "dataset-norm": {"recipe": {"normalization": "dataset"}},
        "stream-norm": {"recipe": stream},
    }
    # Runs written before "online_order": corpus order (the caption of the saved results).
    assert bench_ablation.online_orders(runs) == "in corpus order"
    runs["stream-online"] = {"recipe": stream, "online_order": ONLINE_ORDER}
    assert bench_ablation.online_orders(runs) == (
        "(`stream-norm`: in corpus order; `stream-online`: in a random order per speaker, "
        "seeded by the training seed)"
    )
    del runs["stream-norm"]
    text = "in a random order per speaker, seeded by the training seed"
    assert bench_ablation.online_orders(runs) == text
    assert bench_ablation.online_orders({}) == text  # no stream run: what runs do now


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_killing_the_bench_stops_its_workers(tmp_path):
    """A killed parent used to leave its workers training into the checkpoints that the
    restarted run resumed from."""
    worker = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    pid_files = [tmp_path / "worker0.pid", tmp_path / "worker1.pid"]
    parent = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(bench_training.__file__).parent)!r})
        import bench_training
        bench_training.exit_on_sigterm()
        workers = [[sys.executable, "-c", {worker!r}, p] for p in {list(map(str, pid_files))!r}]
        bench_training.run_workers(workers, dict(os.environ))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.monotonic() + 60
    while not all(p.exists() and p.read_text() for p in pid_files):
        assert time.monotonic() < deadline and proc.poll() is None, "workers did not start"
        time.sleep(0.1)
    proc.terminate()
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    for p in pid_files:
        with pytest.raises(ProcessLookupError):
            os.kill(int(p.read_text()), 0)


def test_every_section_has_a_renderer_and_a_test():
    assert set(_report.RENDERERS) == set(RESULTS)
    for name in _report.RENDERERS:
        module = _report.renderer(name)
        assert module.NAME == name and module.TITLE


def test_render_cli_rewrites_sections_from_saved_json_only(tmp_path):
    results = tmp_path / "results"
    for name in ("frontend", "edge"):
        _report.save_json(results / f"{name}.json", RESULTS[name]())
    markdown = tmp_path / "benchmarks.md"
    prose = "\n\n**Reading the numbers.** Hand-written, kept.\n\n"
    markdown.write_text(
        "# Benchmarks\n\n<!-- bench:frontend:start -->\nold\n<!-- bench:frontend:end -->"
        + prose
        + "<!-- bench:dynconv:start -->\nold dynconv\n<!-- bench:dynconv:end -->\n"
    )
    argv = ["--results", str(results), "--markdown", str(markdown)]
    assert _report.main(["check", *argv]) == 1  # frontend differs from its JSON
    assert _report.main(["render", *argv]) == 0
    text = markdown.read_text()
    frontend = _report.section_block(
        "frontend", render_frontend.TITLE, render_frontend.render(frontend_results())
    )
    assert text.startswith("# Benchmarks\n\n" + frontend + prose)
    assert "<!-- bench:dynconv:start -->\nold dynconv\n<!-- bench:dynconv:end -->" in text
    assert _report.read_section("edge", markdown) == _report.section_block(
        "edge", render_edge.TITLE, render_edge.render(edge_results())
    )
    assert _report.main(["check", *argv]) == 0
    with pytest.raises(SystemExit, match="unknown section 'nope'"):
        _report.main(["render", "nope", *argv])


def test_saved_results_match_the_docs():
    """Every section with saved results reads in docs/benchmarks.md exactly as its
    renderer makes it from that JSON (run `python bench/_report.py render` after editing a
    renderer)."""
    assert _report.stale_sections(list(_report.RENDERERS)) == []


def test_saved_baseline_results_match_the_docs():
    """The baseline section (the SVM's table and the paper's) reads as bench_baseline.py
    renders it from docs/results/baseline/ and the neural runs in docs/results/ (run
    `python bench/bench_baseline.py --render-only` after saving a neural run there)."""
    import bench_baseline

    body = bench_baseline.render_body(bench_baseline.load_results(), bench_baseline.NEURAL)
    expected = _report.section_block("baseline", bench_baseline.TITLE, body)
    assert _report.read_section("baseline") == expected


@pytest.mark.slow  # ~20 s of bootstrap intervals
def test_saved_multicorpus_results_match_the_docs():
    """The multi-corpus section reads as bench_multicorpus.py renders it from
    docs/results/multicorpus/ (run `python bench/bench_multicorpus.py` after saving a run)."""
    import bench_multicorpus

    body = bench_multicorpus.render()
    expected = _report.section_block(bench_multicorpus.NAME, bench_multicorpus.TITLE, body)
    assert _report.read_section(bench_multicorpus.NAME) == expected


def test_publish_renders_what_it_saved(tmp_path):
    data = frontend_results()
    data["corpus"]["seconds"] = np.float64(90.0)  # numpy scalars are saved as numbers
    data["settings"]["corpus"] = Path("/data/emodb/wav")
    out, markdown = tmp_path / "frontend.json", tmp_path / "b.md"
    body = _report.publish("frontend", data, results=out, markdown=markdown)
    assert json.loads(out.read_text()) == frontend_results()
    assert body == render_frontend.render(frontend_results())
    assert _report.stale_sections(["frontend"], results=tmp_path, markdown=markdown) == []
    assert _report.publish("frontend", data, results=None, markdown=None) == body
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.md", "frontend.json"]
