"""Cross-validated experiments: corpus -> features -> folds x seeds -> metrics -> run folder.

`run_experiment` is what `dyser-train` runs. Every fold is checked for leakage before
training (`assert_no_leak`), model selection only sees the validation part carved out of
the training data, and the output folder holds everything needed to trust the number:

    results.json            config, versions, seeds, per-fold and pooled metrics, timings
    confusion_matrix.png    pooled over folds (and seeds)
    training_curves.png     loss and validation UA per epoch, per fold
    folds/<fold>/model.keras    with --save-models (the first seed's model of each fold)
    model.keras             protocol "all": one model trained on every utterance

Several corpora (`multi_corpus`): the protocol's folds are made on the target corpus, and
the other corpora's utterances join every fold's training part (never validation or
test); all labels are the common names of `keras_dyconv.labels`, the loss of each
utterance covers its own corpus's classes only, and each test corpus is scored in its own
label set and in the common one. Protocol "loco" (leave one corpus out) tests on each
corpus in turn, trained on the others, on the classes every corpus has.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge_runtime.config import FrontendConfig
from edge_runtime.metadata import ModelMetadata
from edge_runtime.windows import WindowPolicy
from keras_dyconv.corpora import Utterance
from keras_dyconv.distribute import data_parallel_devices
from keras_dyconv.features import extract_corpus
from keras_dyconv.feeding import predict_utterances
from keras_dyconv.labels import COMMON_LABELS, corpus_classes, mapping_record, to_common
from keras_dyconv.metrics import summarize
from keras_dyconv.modelio import save_model
from keras_dyconv.models import build_dycnn_bilstm, model_arguments
from keras_dyconv.normalization import FeatureSource
from keras_dyconv.pretraining import (
    Pretrained,
    assert_not_pretrained,
    pretrain_seeds,
    pretraining_record,
)
from keras_dyconv.protocols import (
    Fold,
    add_training,
    assert_no_leak,
    assert_test_partition,
    fixed_split,
    leave_one_corpus_out,
    leave_one_speaker_out,
    namespace_speakers,
    speaker_group_kfold,
    stratified_kfold,
)
from keras_dyconv.recipes import Recipe, model_kwargs
from keras_dyconv.results import (
    AllResults,
    FoldRecord,
    Prediction,
    Results,
    Summary,
    corpus_scores,
    score_folds,
    write_json,
)
from keras_dyconv.training import TrainResult, train_model

PROTOCOLS = ("loso", "group-kfold", "stratified", "split", "all", "loco")


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
    if spec.name == "loco":
        return list(leave_one_corpus_out(utts, val_speakers=spec.val_speakers))
    raise ValueError(f"unknown protocol {spec.name!r}; choose one of {PROTOCOLS}")


def multi_corpus(
    corpora: Mapping[str, Sequence[Utterance]], target: str | None
) -> tuple[list[Utterance], list[Utterance]]:
    """Several corpora as `run_experiment`'s `utts` and `extra`, in the common label space.

    Args:
        corpora: corpus name (a key of `keras_dyconv.labels.CORPUS_LABELS`) -> its
            utterances in its own labels, in training order.
        target: the corpus the protocol's folds are made on; None: protocol "loco" (every
            corpus is tested in turn, on the classes every corpus has).

    Returns:
        (utts, extra): with a target, its utterances (speaker ids unchanged, so its folds
        are those of a single-corpus run) and the other corpora's, speakers namespaced by
        corpus ("ravdess/01"); for "loco", every corpus's utterances of the shared classes,
        namespaced, and no extra.

    Raises:
        ValueError: an unknown target, a label with no common name, or (loco) fewer than
            two corpora or no class that all of them have.
    """
    if target is not None and target not in corpora:
        raise ValueError(f"target corpus {target!r} is not among the corpora {sorted(corpora)}")
    mapped = {name: to_common(utts, name) for name, utts in corpora.items()}
    if target is not None:
        extra = [
            u for name, us in mapped.items() if name != target for u in namespace_speakers(us, name)
        ]
        return mapped[target], extra
    shared = set(COMMON_LABELS)
    for name, utts in mapped.items():
        shared &= set(corpus_classes(name, {u.extra["original_label"] for u in utts}))
    if not shared:
        raise ValueError(f"the corpora {sorted(corpora)} have no class in common")
    utts = [
        u for name, us in mapped.items() for u in namespace_speakers(us, name) if u.label in shared
    ]
    return utts, []


def _versions() -> dict[str, str]:
    import librosa

    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
        "librosa": librosa.__version__,
    }


@dataclass(frozen=True)
class _Run:
    """What every fold of one `run_experiment` shares."""

    utts: Sequence[Utterance]
    feats: Sequence[FeatureSource]
    #: Class index of every utterance, into `labels`.
    y: np.ndarray
    labels: list[str]
    config: FrontendConfig
    recipe: Recipe
    policy: WindowPolicy
    out: Path
    checkpoint_dir: Path | None
    verbose: int | str
    log: Callable[[str], None]
    #: Several corpora: the target corpus (None for "loco") and the number of utterances
    #: of the protocol's own corpus (or corpora), which come first in `utts`; the rest are
    #: extra training corpora. None: one corpus, its own labels.
    target: str | None = None
    n_protocol: int | None = None

    @property
    def multi(self) -> bool:
        """Whether several corpora train (common labels, masked loss)."""
        return self.n_protocol is not None

    def corpora(self, indices: Sequence[int]) -> list[str] | None:
        """The corpus of each utterance at `indices` (None for a single-corpus run)."""
        return [self.utts[i].extra["corpus"] for i in indices] if self.multi else None

    def part(self, indices: Sequence[int]) -> tuple[list[FeatureSource], np.ndarray, list[str]]:
        """Features, class indices and speakers of the utterances at `indices`."""
        return (
            [self.feats[i] for i in indices],
            self.y[indices],
            [self.utts[i].speaker for i in indices],
        )

    def train(self, train: Sequence[int], val: Sequence[int], seed: int, **kwargs) -> TrainResult:
        """`train_model` on the utterances at `train`, selecting on those at `val`."""
        train_feats, train_y, train_speakers = self.part(train)
        val_feats, val_y, val_speakers = self.part(val)
        if self.multi:
            kwargs.update(
                train_corpora=self.corpora(train),
                val_corpora=self.corpora(val),
                target_corpus=self.target,
            )
        return train_model(
            train_feats,
            train_y,
            self.labels,
            self.config,
            self.recipe,
            self.policy,
            val_sources=val_feats,
            val_labels=val_y,
            seed=seed,
            verbose=self.verbose,
            train_speakers=train_speakers,
            val_speakers=val_speakers,
            **kwargs,
        )


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
    verbose: int | str = "auto",
    log: Callable[[str], None] = print,
    extra: Sequence[Utterance] = (),
    target: str | None = None,
) -> Results | AllResults:
    """Train and evaluate under `protocol` for each seed; write the run folder; return results.

    `config` must have normalization "none": the per-fold dataset statistics are computed
    on each fold's training data and stored in that fold's model. With protocol "all", one
    model is trained on every speaker except the validation speakers (held out for model
    selection) and saved as `out_dir/model.keras`; nothing is tested. `max_folds` and
    `only_folds` run a subset of the folds (e.g. to spread folds over processes;
    `keras_dyconv.results.merge_results` joins them). With `checkpoint_dir`, every epoch is
    checkpointed under `checkpoint_dir/<fold>/seed<seed>/` (protocol "all":
    `checkpoint_dir/all/seed<seed>/`) and a finished fold leaves its record there: running
    the same experiment again resumes it (finished folds are read back, an interrupted one
    continues from its last epoch). With `cache_dir` the features stay in the cache's `.npy`
    files and every window is read from them, memory-mapped (bit-identical to features held
    in memory, which they are without a cache), so corpora larger than memory train.

    Several corpora (`multi_corpus` makes `utts` and `extra`): `extra` holds the extra
    training corpora's utterances, added to every fold's training part; `target` names the
    corpus of `utts` (default: the first utterance's ``extra["corpus"]``). Every utterance
    is then in the common label space with its corpus in ``extra["corpus"]``, the labels
    default to the classes present in any corpus (`keras_dyconv.labels.COMMON_LABELS`
    order), and results.json adds "corpora", "label_mapping" and "corpus_scores". Protocol
    "loco" is always multi-corpus (`utts`: every corpus, `extra` empty). With
    `Recipe.pretrain_extra` the extra corpora pretrain one model per seed and each fold
    fine-tunes it on the target alone (`keras_dyconv.pretraining`; results.json adds
    "pretraining").
    """
    t_start = time.time()
    if recipe.data_parallel:
        data_parallel_devices(recipe.batch_size)  # refuse now, not after the features
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_protocol = None
    if extra or protocol.name == "loco":
        unmapped = [u.path for u in [*utts, *extra] if "original_label" not in u.extra]
        if unmapped:
            raise ValueError(
                f"{unmapped[0]}: several corpora train in the common label space: map every "
                "corpus with keras_dyconv.experiment.multi_corpus first"
            )
        n_protocol = len(utts)
        if extra and target is None:
            target = utts[0].extra["corpus"]
        stray = [u.path for u in utts if extra and u.extra["corpus"] != target]
        if stray:
            raise ValueError(f"{stray[0]}: not of the target corpus {target!r}")
        utts = [*utts, *extra]
    labels, y = _class_indices(utts, labels)
    log(f"extracting features of {len(utts)} utterances")
    feats = extract_corpus(
        [u.path for u in utts],
        config,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        as_paths=cache_dir is not None,
    )
    t_features = time.time() - t_start
    run = _Run(
        utts,
        feats,
        y,
        labels,
        config,
        recipe,
        policy or WindowPolicy(),
        out,
        None if checkpoint_dir is None else Path(checkpoint_dir),
        verbose,
        log,
        target,
        n_protocol,
    )
    extra_idx = np.arange(n_protocol or len(utts), len(utts))
    pretrained: dict[int, Pretrained] = {}
    if recipe.pretrain_extra:
        pretrained = pretrain_seeds(
            run,
            extra_idx,
            seeds[:1] if protocol.name == "all" else seeds,
            protocol.val_speakers,
            log,
        )
    if protocol.name == "all":
        return _train_all(run, protocol, seeds[0], t_start, pretrained.get(seeds[0]))
    folds = _chosen_folds(utts[: n_protocol or len(utts)], protocol, only_folds, max_folds)
    if len(extra_idx) and not pretrained:
        folds = [add_training(f, extra_idx) for f in folds]
    fold_records, curves = _run_folds(run, folds, seeds, save_models, pretrained)
    results = _results(run, protocol, folds, seeds, fold_records, t_features, t_start)
    if pretrained:
        results["pretraining"] = pretraining_record(pretrained)  # type: ignore[typeddict-unknown-key]
    _write_run_folder(results, curves, out)
    log(
        f"pooled over {results['folds_run']} folds x {len(seeds)} seeds: "
        f"WA {results['pooled']['wa']:.3f}  UA {results['pooled']['ua']:.3f}  -> {out}"
    )
    for corpus, both in results.get("corpus_scores", {}).items():
        own = both["own"]
        log(f"  {corpus} in its own labels: WA {own['wa']:.3f}  UA {own['ua']:.3f}")
    return results


def _results(
    run: _Run,
    protocol: ProtocolSpec,
    folds: Sequence[Fold],
    seeds: Sequence[int],
    fold_records: list[FoldRecord],
    t_features: float,
    t_start: float,
) -> Results:
    """The results.json of a cross-validated run: its settings, fold records and scores."""
    results: Results = {
        "protocol": {
            **protocol.__dict__,
            "speaker_independent": all(f.speaker_independent for f in folds),
        },
        "recipe": run.recipe.to_dict(),
        "architecture": architecture(run.recipe, run.config, len(run.labels)),
        "frontend": run.config.to_dict(),
        "window": run.policy.to_dict(),
        "labels": run.labels,
        "seeds": list(seeds),
        "versions": _versions(),
        "folds": fold_records,
        "timings": {"features_s": round(t_features, 1), "total_s": round(time.time() - t_start, 1)},
        **score_folds(fold_records, run.labels),
    }
    if run.multi:
        results.update(_corpus_record(run))  # type: ignore[typeddict-item]
        results["corpus_scores"] = corpus_scores(fold_records, run.labels)
    return results


def _corpus_record(run: _Run) -> dict[str, Any]:
    """What results.json and the saved model record of a multi-corpus run: the corpora
    (role, utterances and speakers of each), the target and the label mapping."""
    corpora: dict[str, dict[str, Any]] = {}
    for i, u in enumerate(run.utts):
        entry = corpora.setdefault(u.extra["corpus"], {"utterances": 0, "speakers": set()})
        entry["utterances"] += 1
        entry["speakers"].add(u.speaker)
        if run.target is None:
            entry["role"] = "loco"
        else:
            extra_role = "pretraining" if run.recipe.pretrain_extra else "extra training"
            entry["role"] = "target" if i < (run.n_protocol or 0) else extra_role
    return {
        "target_corpus": run.target,
        "corpora": {
            name: {"role": e["role"], "utterances": e["utterances"], "speakers": len(e["speakers"])}
            for name, e in corpora.items()
        },
        "label_mapping": mapping_record(corpora),
    }


def _class_indices(
    utts: Sequence[Utterance], labels: Sequence[str] | None
) -> tuple[list[str], np.ndarray]:
    """The class names (`labels`, or the utterances' labels sorted) and each utterance's
    class index into them."""
    labels = list(labels) if labels is not None else sorted({u.label for u in utts})
    unknown = {u.label for u in utts} - set(labels)
    if unknown:
        raise ValueError(f"utterances carry labels not in {labels}: {sorted(unknown)}")
    return labels, np.array([labels.index(u.label) for u in utts])


def _run_folds(
    run: _Run,
    folds: Sequence[Fold],
    seeds: Sequence[int],
    save_models: bool,
    pretrained: Mapping[int, Pretrained],
) -> tuple[list[FoldRecord], dict[str, dict[str, list[float]]]]:
    """Every fold with every seed: the fold records, and the training history of each
    ("<fold>/seed<seed>"). With `save_models` the first seed's model of each fold is saved
    as out/folds/<fold>/model.keras. `pretrained`: the model each seed's folds fine-tune
    (none: they train from scratch)."""
    fold_records, curves = [], {}
    for fold in folds:
        assert_no_leak(fold, run.utts)
        for p in pretrained.values():
            assert_not_pretrained(fold, run.utts, p)
        for seed in seeds:
            record, curves[f"{fold.name}/seed{seed}"], result = _run_fold(
                run, fold, seed, pretrained.get(seed)
            )
            fold_records.append(record)
            if result is None:  # read back from an earlier run
                continue
            if save_models and seed == seeds[0]:
                _save(
                    result,
                    run,
                    run.out / "folds" / fold.name / "model.keras",
                    {"fold": fold.name, "seed": seed, "recipe": run.recipe.name},
                )
            keras.backend.clear_session()
    return fold_records, curves


def _chosen_folds(
    utts: Sequence[Utterance],
    protocol: ProtocolSpec,
    only_folds: Sequence[str] | None,
    max_folds: int | None,
) -> list[Fold]:
    """The folds of `protocol` to run: those named in `only_folds` (all if None), the first
    `max_folds` of them (all if None)."""
    folds = make_folds(utts, protocol)
    assert_test_partition(folds, len(utts))
    if only_folds is not None:
        unknown = set(only_folds) - {f.name for f in folds}
        if unknown:
            raise ValueError(f"no folds named {sorted(unknown)}; folds: {[f.name for f in folds]}")
        folds = [f for f in folds if f.name in set(only_folds)]
    if max_folds is not None:
        folds = folds[:max_folds]
    return folds


def _run_fold(
    run: _Run, fold: Fold, seed: int, pretrained: Pretrained | None = None
) -> tuple[FoldRecord, dict[str, list[float]], TrainResult | None]:
    """Train (fine-tune `pretrained`, if given) and test one fold with one seed: its
    record, its training history, and the fitted model (None when the record was read back
    from a finished earlier run)."""
    t0 = time.time()
    # A fine-tune's checkpoints are those of its pretrained model's key only.
    tag = f"seed{seed}" + ("" if pretrained is None else f"-ft-{pretrained.record['key']}")
    ckpt = None if run.checkpoint_dir is None else run.checkpoint_dir / fold.name / tag
    if ckpt is not None and (ckpt / "record.json").exists():
        record = json.loads((ckpt / "record.json").read_text())
        history = record.pop("history")
        run.log(f"fold {fold.name} seed {seed}: finished in an earlier run, read back")
        return record, history, None
    run.log(
        f"fold {fold.name} seed {seed}: train {len(fold.train)}, val {len(fold.val)}, "
        f"test {len(fold.test)}"
    )
    result = run.train(
        fold.train,
        fold.val,
        seed,
        checkpoint_dir=ckpt,
        init_weights=None if pretrained is None else pretrained.weights,
    )
    metrics, predictions = _test(run, result, fold.test)
    run.log(
        f"  WA {metrics['metrics']['wa']:.3f}  UA {metrics['metrics']['ua']:.3f}  "
        f"(best epoch {result.best_epoch}, {result.epochs_run} run, "
        f"{time.time() - t0:.0f} s)"
    )
    record: FoldRecord = {
        "fold": fold.name,
        "seed": seed,
        "speaker_independent": fold.speaker_independent,
        "test_speakers": sorted({run.utts[i].speaker for i in fold.test}),
        "val_speakers": sorted({run.utts[i].speaker for i in fold.val}),
        "val_rule": fold.val_rule,
        "n_train": len(fold.train),
        "n_val": len(fold.val),
        "best_epoch": result.best_epoch,
        "averaged_epochs": result.averaged_epochs,
        "refit_epochs": result.refit_epochs,
        "epochs_run": result.epochs_run,
        "seconds": round(time.time() - t0, 1),
        **metrics,  # type: ignore[typeddict-item]
        "predictions": predictions,
    }
    if ckpt is not None:
        write_json(ckpt / "record.json", {**record, "history": result.history})
    return record, result.history, result


def _test(
    run: _Run, result: TrainResult, test: Sequence[int]
) -> tuple[dict[str, Summary], list[Prediction]]:
    """Score the fitted model on the test utterances at `test`: the metrics ("metrics"; for
    normalization "stream" also "metrics_independent" and "metrics_speaker_norm") and the
    predictions, as a fold record holds them."""
    sources, y, speakers = run.part(test)
    probs = predict_utterances(result.model, sources, result.config, run.policy, speakers=speakers)
    # Class index per test utterance, by the suffix of the record keys that hold them.
    predicted = {"": probs.argmax(axis=1)}
    if result.config.normalization == "stream":
        # Without adaptation (each utterance a fresh stream: what one file on a new device
        # gets) and the transductive reference (each test speaker's statistics over all
        # their audio, which a device cannot know in advance).
        for adapt, key in (("independent", "_independent"), ("speaker", "_speaker_norm")):
            predicted[key] = predict_utterances(
                result.model, sources, result.config, run.policy, speakers=speakers, adapt=adapt
            ).argmax(axis=1)
    metrics = {f"metrics{key}": summarize(y, pred, run.labels) for key, pred in predicted.items()}
    predictions: list[Prediction] = [
        {  # type: ignore[typeddict-item]
            "path": str(run.utts[i].path),
            "label": run.labels[run.y[i]],
            "predicted": run.labels[predicted[""][k]],
            "probabilities": [round(float(v), 5) for v in probs[k]],
            **{f"predicted{key}": run.labels[p[k]] for key, p in predicted.items() if key},
            **(
                {
                    "corpus": run.utts[i].extra["corpus"],
                    "original_label": run.utts[i].extra["original_label"],
                }
                if run.multi
                else {}
            ),
        }
        for k, i in enumerate(test)
    ]
    return metrics, predictions


def architecture(recipe: Recipe, config: FrontendConfig, num_classes: int) -> dict[str, Any]:
    """What results record of the model: every `build_dycnn_bilstm` argument and the
    parameter count."""
    kwargs = model_kwargs(recipe, config, num_classes)
    return {
        "arguments": model_arguments(**kwargs),
        "params": int(build_dycnn_bilstm(**kwargs).count_params()),
    }


def _train_all(
    run: _Run, protocol: ProtocolSpec, seed: int, t_start: float, pretrained: Pretrained | None
) -> AllResults:
    """Protocol "all": one model on every speaker but the validation speakers of the first
    LOSO fold (its "test" speaker goes back to training), saved as out/model.keras; with
    `pretrained`, fine-tuned from it on the target corpus alone."""
    own = run.utts[: run.n_protocol or len(run.utts)]  # extra corpora: training only
    folds = list(leave_one_speaker_out(own, val_speakers=protocol.val_speakers))
    val = folds[0].val
    if pretrained is not None:
        assert_not_pretrained(folds[0], own, pretrained)
    train = np.setdiff1d(np.arange(len(own) if pretrained else len(run.utts)), val)
    run.log(f"training on {len(train)} utterances, selecting on {len(val)} validation utterances")
    tag = f"seed{seed}" + ("" if pretrained is None else f"-ft-{pretrained.record['key']}")
    ckpt = None if run.checkpoint_dir is None else run.checkpoint_dir / "all" / tag
    result = run.train(
        train,
        val,
        seed,
        checkpoint_dir=ckpt,
        init_weights=None if pretrained is None else pretrained.weights,
    )
    path = _save(result, run, run.out / "model.keras", {"recipe": run.recipe.name})
    results: AllResults = {
        "protocol": {**protocol.__dict__},
        "recipe": run.recipe.to_dict(),
        "architecture": architecture(run.recipe, run.config, len(run.labels)),
        "labels": run.labels,
        "versions": _versions(),
        "model": str(path),
        "val_speakers": sorted({run.utts[i].speaker for i in val}),
        "val_rule": folds[0].val_rule,
        "best_epoch": result.best_epoch,
        "timings": {"total_s": round(time.time() - t_start, 1)},
    }
    if run.multi:
        results.update(_corpus_record(run))  # type: ignore[typeddict-item]
    if pretrained is not None:
        results["pretraining"] = pretraining_record({seed: pretrained})  # type: ignore[typeddict-unknown-key]
    write_json(run.out / "results.json", results)
    plot_curves({"all": result.history}, run.out / "training_curves.png")
    return results


def _save(result: TrainResult, run: _Run, path: Path, info: dict[str, Any]) -> Path:
    metadata = ModelMetadata(
        labels=tuple(run.labels),
        frontend=result.config,
        window=run.policy,
        info={
            **info,
            "best_epoch": result.best_epoch,
            "backend": keras.backend.backend(),
            **(_corpus_record(run) if run.multi else {}),
        },
    )
    return save_model(result.model, path, metadata)


def _write_run_folder(results: Results, curves: dict[str, dict[str, list[float]]], out: Path):
    """results.json and the plots of a cross-validated run."""
    write_json(out / "results.json", results)
    plot_confusion(results["pooled"], out / "confusion_matrix.png")
    plot_curves(curves, out / "training_curves.png")


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
