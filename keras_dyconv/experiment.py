"""Cross-validated experiments: corpus -> features -> folds x seeds -> metrics -> run folder.

`run_experiment` is what `dyser-train` runs. Every fold is checked for leakage before
training (`assert_no_leak`), model selection only sees the validation part carved out of
the training data, and the output folder holds everything needed to trust the number:

    results.json            config, versions, seeds, per-fold and pooled metrics, timings
    confusion_matrix.png    pooled over folds (and seeds)
    training_curves.png     loss and validation UA per epoch, per fold
    folds/<fold>/model.keras    with --save-models (the first seed's model of each fold)
    model.keras             protocol "all": one model trained on every utterance
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge_runtime.config import FrontendConfig
from edge_runtime.metadata import ModelMetadata
from edge_runtime.windows import WindowPolicy
from keras_dyconv.corpora import Utterance
from keras_dyconv.features import extract_corpus
from keras_dyconv.metrics import bootstrap_ci, pooled_and_mean, summarize
from keras_dyconv.modelio import save_model
from keras_dyconv.models import build_dycnn_bilstm, model_arguments
from keras_dyconv.protocols import (
    Fold,
    assert_no_leak,
    assert_test_partition,
    fixed_split,
    leave_one_speaker_out,
    speaker_group_kfold,
    stratified_kfold,
)
from keras_dyconv.training import Recipe, model_kwargs, predict_utterances, train_model

PROTOCOLS = ("loso", "group-kfold", "stratified", "split", "all")


@dataclass(frozen=True)
class ProtocolSpec:
    """Which folds to run: a protocol name and its options."""

    name: str = "loso"
    k: int = 5
    split_file: str | None = None
    val_speakers: int | str = "auto"
    seed: int = 0


def make_folds(utts: Sequence[Utterance], spec: ProtocolSpec) -> list[Fold]:
    """The folds of `spec` over `utts` (see `keras_dyconv.protocols`)."""
    if spec.name == "loso":
        return list(leave_one_speaker_out(utts, val_speakers=spec.val_speakers))
    if spec.name == "group-kfold":
        return list(speaker_group_kfold(utts, spec.k, val_speakers=spec.val_speakers))
    if spec.name == "stratified":
        return list(stratified_kfold(utts, spec.k, seed=spec.seed))
    if spec.name == "split":
        if not spec.split_file:
            raise ValueError("protocol 'split' needs a split file")
        return list(fixed_split(utts, spec.split_file))
    raise ValueError(f"unknown protocol {spec.name!r}; choose one of {PROTOCOLS}")


def _versions() -> dict[str, str]:
    import librosa

    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
        "librosa": librosa.__version__,
    }


def run_experiment(
    utts: Sequence[Utterance],
    out_dir: str | os.PathLike,
    config: FrontendConfig,
    recipe: Recipe,
    protocol: ProtocolSpec,
    seeds: Sequence[int] = (0,),
    policy: WindowPolicy | None = None,
    labels: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    n_jobs: int = 1,
    max_folds: int | None = None,
    only_folds: Sequence[str] | None = None,
    save_models: bool = False,
    checkpoint_dir: str | os.PathLike | None = None,
    stream_features: bool = False,
    verbose: int | str = "auto",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train and evaluate under `protocol` for each seed; write the run folder; return results.

    `config` must have normalization "none": the per-fold dataset statistics are computed
    on each fold's training data and stored in that fold's model. With protocol "all", one
    model is trained on every speaker except the validation speakers (held out for model
    selection) and saved as `out_dir/model.keras`; nothing is tested. `max_folds` and
    `only_folds` run a subset of the folds (e.g. to spread folds over processes;
    `merge_results` joins them). With `checkpoint_dir`, every epoch is checkpointed under
    `checkpoint_dir/<fold>/seed<seed>/` and a finished fold leaves its record there: running
    the same experiment again resumes it (finished folds are read back, an interrupted one
    continues from its last epoch). `stream_features` keeps the features in the cache's
    `.npy` files (memory-mapped) instead of memory; it needs `cache_dir`.
    """
    t_start = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    policy = policy or WindowPolicy()
    labels = list(labels) if labels is not None else sorted({u.label for u in utts})
    unknown = {u.label for u in utts} - set(labels)
    if unknown:
        raise ValueError(f"utterances carry labels not in {labels}: {sorted(unknown)}")
    y = np.array([labels.index(u.label) for u in utts])
    log(f"extracting features of {len(utts)} utterances")
    feats = extract_corpus(
        [u.path for u in utts],
        config,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        as_paths=stream_features,
    )
    t_features = time.time() - t_start

    if protocol.name == "all":
        return _train_all(
            utts,
            feats,
            y,
            labels,
            out,
            config,
            recipe,
            protocol,
            seeds[0],
            policy,
            verbose,
            log,
            t_start,
        )

    folds = make_folds(utts, protocol)
    assert_test_partition(folds, len(utts))
    if only_folds is not None:
        unknown = set(only_folds) - {f.name for f in folds}
        if unknown:
            raise ValueError(f"no folds named {sorted(unknown)}; folds: {[f.name for f in folds]}")
        folds = [f for f in folds if f.name in set(only_folds)]
    if max_folds is not None:
        folds = folds[:max_folds]
    fold_records, curves = [], {}
    for fold in folds:
        assert_no_leak(fold, utts)
        for seed in seeds:
            t0 = time.time()
            ckpt = (
                None if checkpoint_dir is None else Path(checkpoint_dir) / fold.name / f"seed{seed}"
            )
            if ckpt is not None and (ckpt / "record.json").exists():
                record = json.loads((ckpt / "record.json").read_text())
                curves[f"{fold.name}/seed{seed}"] = record.pop("history")
                fold_records.append(record)
                log(f"fold {fold.name} seed {seed}: finished in an earlier run, read back")
                continue
            log(
                f"fold {fold.name} seed {seed}: train {len(fold.train)}, val {len(fold.val)}, "
                f"test {len(fold.test)}"
            )
            result = train_model(
                [feats[i] for i in fold.train],
                y[fold.train],
                labels,
                config,
                recipe,
                policy,
                val_sources=[feats[i] for i in fold.val],
                val_labels=y[fold.val],
                seed=seed,
                checkpoint_dir=ckpt,
                verbose=verbose,
                train_speakers=[utts[i].speaker for i in fold.train],
                val_speakers=[utts[i].speaker for i in fold.val],
            )
            test_sources = [feats[i] for i in fold.test]
            test_speakers = [utts[i].speaker for i in fold.test]
            probs = predict_utterances(
                result.model, test_sources, result.config, policy, speakers=test_speakers
            )
            pred = probs.argmax(axis=1)
            summary = summarize(y[fold.test], pred, labels)
            extra, other = {}, {}
            if result.config.normalization == "stream":
                # Without adaptation (each utterance a fresh stream: what one file on a new
                # device gets) and the transductive reference (each test speaker's
                # statistics over all their audio, which a device cannot know in advance).
                for adapt, key in (("independent", "independent"), ("speaker", "speaker_norm")):
                    other[key] = predict_utterances(
                        result.model,
                        test_sources,
                        result.config,
                        policy,
                        speakers=test_speakers,
                        adapt=adapt,
                    ).argmax(axis=1)
                    extra[f"metrics_{key}"] = summarize(y[fold.test], other[key], labels)
            predictions = [
                {
                    "path": str(utts[i].path),
                    "label": labels[y[i]],
                    "predicted": labels[pred[k]],
                    "probabilities": [round(float(v), 5) for v in probs[k]],
                    **{f"predicted_{key}": labels[p[k]] for key, p in other.items()},
                }
                for k, i in enumerate(fold.test)
            ]
            log(
                f"  WA {summary['wa']:.3f}  UA {summary['ua']:.3f}  "
                f"(best epoch {result.best_epoch}, {result.epochs_run} run, "
                f"{time.time() - t0:.0f} s)"
            )
            fold_records.append(
                {
                    "fold": fold.name,
                    "seed": seed,
                    "speaker_independent": fold.speaker_independent,
                    "test_speakers": sorted({utts[i].speaker for i in fold.test}),
                    "val_speakers": sorted({utts[i].speaker for i in fold.val}),
                    "val_rule": fold.val_rule,
                    "n_train": len(fold.train),
                    "n_val": len(fold.val),
                    "best_epoch": result.best_epoch,
                    "averaged_epochs": result.averaged_epochs,
                    "refit_epochs": result.refit_epochs,
                    "epochs_run": result.epochs_run,
                    "seconds": round(time.time() - t0, 1),
                    "metrics": summary,
                    **extra,
                    "predictions": predictions,
                }
            )
            curves[f"{fold.name}/seed{seed}"] = result.history
            if ckpt is not None:
                _write_json(ckpt / "record.json", {**fold_records[-1], "history": result.history})
            if save_models and seed == seeds[0]:
                _save(
                    result,
                    labels,
                    policy,
                    out / "folds" / fold.name / "model.keras",
                    {"fold": fold.name, "seed": seed, "recipe": recipe.name},
                )
            keras.backend.clear_session()

    results = {
        "protocol": {
            **protocol.__dict__,
            "speaker_independent": all(f.speaker_independent for f in folds),
        },
        "recipe": recipe.to_dict(),
        "architecture": architecture(recipe, config, len(labels)),
        "frontend": config.to_dict(),
        "window": policy.to_dict(),
        "labels": labels,
        "seeds": list(seeds),
        "versions": _versions(),
        "folds": fold_records,
        "timings": {"features_s": round(t_features, 1), "total_s": round(time.time() - t_start, 1)},
    }
    results.update(score_folds(fold_records, labels))
    pooled = results["pooled"]
    _write_json(out / "results.json", results)
    plot_confusion(pooled, out / "confusion_matrix.png")
    plot_curves(curves, out / "training_curves.png")
    log(
        f"pooled over {results['folds_run']} folds x {len(seeds)} seeds: WA {pooled['wa']:.3f}  "
        f"UA {pooled['ua']:.3f}  -> {out}"
    )
    return results


def score_folds(fold_records: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Pooled, per-seed and across-seed metrics of fold records (from their predictions).

    Also, when present: "pooled_independent" and "pooled_speaker_norm" (normalization
    "stream" without adaptation, and its transductive per-speaker reference) and
    "ensemble" (class probabilities averaged over the seeds of each fold: what a seed
    ensemble scores).
    """
    seeds = sorted({r["seed"] for r in fold_records})

    def pairs(records, key="predicted"):
        return [
            (
                np.array([labels.index(p["label"]) for p in r["predictions"]]),
                np.array([labels.index(p[key]) for p in r["predictions"]]),
            )
            for r in records
        ]

    def pooled(records, key="predicted"):
        all_pairs = pairs(records, key)
        t_all = np.concatenate([t for t, _ in all_pairs])
        p_all = np.concatenate([p for _, p in all_pairs])
        return summarize(t_all, p_all, labels), {
            m: list(bootstrap_ci(t_all, p_all, m)) for m in ("wa", "ua")
        }

    per_seed = {
        str(seed): pooled_and_mean(pairs([r for r in fold_records if r["seed"] == seed]))
        for seed in seeds
    }
    summary, ci = pooled(fold_records)
    scores = {
        "folds_run": len({r["fold"] for r in fold_records}),
        "pooled": summary,
        "pooled_ci95": ci,
        "per_seed": per_seed,
        "seed_mean": {
            m: float(np.mean([r["pooled"][m] for r in per_seed.values()])) for m in ("wa", "ua")
        },
        "seed_std": {
            m: float(np.std([r["pooled"][m] for r in per_seed.values()])) for m in ("wa", "ua")
        },
    }
    predictions = [p for r in fold_records for p in r["predictions"]]
    for key in ("independent", "speaker_norm"):
        if predictions and all(f"predicted_{key}" in p for p in predictions):
            summary, ci = pooled(fold_records, f"predicted_{key}")
            scores[f"pooled_{key}"], scores[f"pooled_{key}_ci95"] = summary, ci
    if len(seeds) > 1 and predictions and all("probabilities" in p for p in predictions):
        summary, ci = pooled(_ensemble(fold_records, labels))
        scores["ensemble"] = {"pooled": summary, "pooled_ci95": ci}
    return scores


def _ensemble(fold_records: Sequence[dict[str, Any]], labels: Sequence[str]) -> list[dict]:
    """One record per fold whose predictions average the class probabilities of its seeds."""
    by_fold: dict[str, list[dict[str, Any]]] = {}
    for record in fold_records:
        by_fold.setdefault(record["fold"], []).append(record)
    out = []
    for name, records in by_fold.items():
        mean = np.mean([[p["probabilities"] for p in r["predictions"]] for r in records], axis=0)
        out.append(
            {
                "fold": name,
                "predictions": [
                    {**p, "predicted": labels[int(m.argmax())], "probabilities": list(m)}
                    for p, m in zip(records[0]["predictions"], mean, strict=True)
                ],
            }
        )
    return out


def merge_results(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Join results of the same experiment run over disjoint fold subsets (or seeds)."""
    if not parts:
        raise ValueError("nothing to merge")
    first = parts[0]

    def canonical(part: dict[str, Any], key: str) -> str:
        value = part[key]
        if key == "recipe":  # fields added since the run take their defaults
            value = Recipe(**value).to_dict()
        return json.dumps(value, sort_keys=True, default=list)

    for part in parts[1:]:
        for key in ("labels", "recipe", "architecture", "frontend", "window"):
            # Results written before a key existed (e.g. "architecture") merge with any.
            if key in part and key in first and canonical(part, key) != canonical(first, key):
                raise ValueError(f"cannot merge runs that differ in {key!r}")
    records = [r for part in parts for r in part["folds"]]
    keys = [(r["fold"], r["seed"]) for r in records]
    if len(set(keys)) != len(keys):
        raise ValueError("the runs to merge overlap (same fold and seed twice)")
    merged = {**first, "folds": records, "seeds": sorted({r["seed"] for r in records})}
    recorded = [p["architecture"] for p in parts if "architecture" in p]
    if recorded:
        merged["architecture"] = recorded[0]
    merged["protocol"] = {
        **first["protocol"],
        "speaker_independent": all(p["protocol"]["speaker_independent"] for p in parts),
    }
    merged["timings"] = {
        "total_s": round(sum(p["timings"]["total_s"] for p in parts), 1),
        "max_part_s": max(p["timings"]["total_s"] for p in parts),
    }
    merged.update(score_folds(records, first["labels"]))
    return merged


def architecture(recipe: Recipe, config: FrontendConfig, num_classes: int) -> dict[str, Any]:
    """What results record of the model: every `build_dycnn_bilstm` argument and the
    parameter count."""
    kwargs = model_kwargs(recipe, config, num_classes)
    return {
        "arguments": model_arguments(**kwargs),
        "params": int(build_dycnn_bilstm(**kwargs).count_params()),
    }


def _train_all(
    utts, feats, y, labels, out, config, recipe, protocol, seed, policy, verbose, log, t_start
) -> dict[str, Any]:
    folds = list(leave_one_speaker_out(utts, val_speakers=protocol.val_speakers))
    # Validation speakers of the first LOSO fold; the "test" speaker goes back to training.
    val = folds[0].val
    train = np.setdiff1d(np.arange(len(utts)), val)
    log(f"training on {len(train)} utterances, selecting on {len(val)} validation utterances")
    result = train_model(
        [feats[i] for i in train],
        y[train],
        labels,
        config,
        recipe,
        policy,
        val_sources=[feats[i] for i in val],
        val_labels=y[val],
        seed=seed,
        verbose=verbose,
        train_speakers=[utts[i].speaker for i in train],
        val_speakers=[utts[i].speaker for i in val],
    )
    path = _save(result, labels, policy, out / "model.keras", {"recipe": recipe.name})
    results = {
        "protocol": {**protocol.__dict__},
        "recipe": recipe.to_dict(),
        "architecture": architecture(recipe, config, len(labels)),
        "labels": labels,
        "versions": _versions(),
        "model": str(path),
        "val_speakers": sorted({utts[i].speaker for i in val}),
        "val_rule": folds[0].val_rule,
        "best_epoch": result.best_epoch,
        "timings": {"total_s": round(time.time() - t_start, 1)},
    }
    _write_json(out / "results.json", results)
    plot_curves({"all": result.history}, out / "training_curves.png")
    return results


def _save(result, labels, policy, path: Path, info: dict[str, Any]) -> Path:
    metadata = ModelMetadata(
        labels=tuple(labels),
        frontend=result.config,
        window=policy,
        info={**info, "best_epoch": result.best_epoch, "backend": keras.backend.backend()},
    )
    return save_model(result.model, path, metadata)


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default))
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def plot_confusion(summary: dict[str, Any], path: Path) -> None:
    """Row-normalised confusion matrix (rows = true class) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(summary["confusion"], dtype=np.float64)
    rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    labels = summary["labels"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.8 * len(labels)))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(
            j,
            i,
            int(v),
            ha="center",
            va="center",
            color="white" if rows[i, j] > 0.5 else "black",
            fontsize=8,
        )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"WA {summary['wa']:.3f}  UA {summary['ua']:.3f}  (n={summary['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(curves: dict[str, dict[str, list[float]]], path: Path) -> None:
    """Training loss and validation UA per epoch, one line per fold/seed, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, history in curves.items():
        axes[0].plot(history.get("loss", []), label=name, lw=1)
        if history.get("val_ua"):
            axes[1].plot(history["val_ua"], label=name, lw=1)
    axes[0].set(title="training loss", xlabel="epoch")
    axes[1].set(title="validation UA (training speakers only)", xlabel="epoch")
    if len(curves) <= 12:
        axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
