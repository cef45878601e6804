"""Cross-validated experiments: corpus -> features -> folds x seeds -> metrics -> run folder.

`run_experiment` is what `dyser-train` runs. Every fold is checked for leakage before
training (`assert_no_leak`), model selection only sees the validation part carved out of
the training data, each fold's test is scored by `keras_dyconv.scoring.score_test`
(normalization "stream": online, each test speaker's utterances in a random order seeded
by the training seed), and the output folder holds everything needed to trust the number:

    results.json            config, versions, seeds, per-fold and pooled metrics, timings
    confusion_matrix.png    pooled over folds (and seeds)
    training_curves.png     loss and validation UA per epoch, per fold
    folds/<fold>/model.keras    with --save-models (the first seed's model of each fold)
    model.keras             protocol "all": one model trained on every utterance

Several corpora (`keras_dyconv.multicorpus`): the protocol's folds are made on the target
corpus, and the other corpora's utterances join every fold's training part (never
validation or test); all labels are the common names of `keras_dyconv.labels`, the loss of
each utterance covers its own corpus's classes only, and each test corpus is scored in its
own label set and in the common one. Protocol "loco" (leave one corpus out) tests on each
corpus in turn, trained on the others, on the classes every corpus has. Target `POOLED`
("all") trains and tests every corpus: the folds are made on their union, validation
speakers are chosen within each corpus, and each corpus is scored on its own.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge_runtime.config import FrontendConfig
from edge_runtime.metadata import ModelMetadata
from edge_runtime.windows import WindowPolicy
from keras_dyconv.corpora import Utterance
from keras_dyconv.distribute import data_parallel_devices
from keras_dyconv.experiment_run import ExperimentRun
from keras_dyconv.features import extract_corpus
from keras_dyconv.folds import (  # make_folds: its old import path
    ProtocolSpec,
    UnknownFoldError,
    chosen_folds,
    make_folds,  # noqa: F401
)
from keras_dyconv.labels import class_indices
from keras_dyconv.modelio import save_model
from keras_dyconv.multicorpus import (  # multi_corpus: its old import here keeps working
    POOLED,
    check_corpus_statistics,
    join_corpora,
    multi_corpus,  # noqa: F401
)
from keras_dyconv.normalization import FeatureSource, neutral_class
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
    leave_one_speaker_out,
)
from keras_dyconv.recipes import Recipe
from keras_dyconv.results import (
    ONLINE_ORDER,
    AllResults,
    FoldRecord,
    Results,
    corpus_scores,
    score_folds,
    write_json,
)
from keras_dyconv.runfolder import (
    architecture,
    log_scores,
    plot_curves,
    versions,
    write_run_folder,
)
from keras_dyconv.scoring import score_test
from keras_dyconv.training import TrainResult


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
    `only_folds` (fold names as results.json names them, e.g. "loso-03") run a subset of
    the folds (e.g. to spread folds over processes; `keras_dyconv.results.merge_results`
    joins them); results.json then says which in ``protocol["partial"]``
    (`keras_dyconv.folds.subset_record`). An unknown fold name raises
    `keras_dyconv.folds.UnknownFoldError` before any feature is extracted. With
    `checkpoint_dir`, every epoch is checkpointed under `checkpoint_dir/<fold>/seed<seed>/`
    (protocol "all": `checkpoint_dir/all/seed<seed>/`) and a finished fold leaves its
    record there: running the same experiment again resumes it (finished folds are read
    back, an interrupted one continues from its last epoch). With `cache_dir` the features
    stay in the cache's `.npy` files and every window is read from them, memory-mapped
    (bit-identical to features held in memory, which they are without a cache), so corpora
    larger than memory train.

    Several corpora (`keras_dyconv.multicorpus.multi_corpus` makes `utts` and `extra`):
    `extra` holds the extra training corpora's utterances, added to every fold's training
    part; `target` names the corpus of `utts` (default: the first utterance's
    ``extra["corpus"]``). Every utterance is then in the common label space with its corpus
    in ``extra["corpus"]``, the labels default to the classes present in any corpus
    (`keras_dyconv.labels.COMMON_LABELS` order), and results.json adds "corpora",
    "label_mapping" and "corpus_scores". Protocol "loco" is always multi-corpus (`utts`:
    every corpus, `extra` empty). With `Recipe.pretrain_extra` the extra corpora pretrain
    one model per seed and each fold fine-tunes it on the target alone
    (`keras_dyconv.pretraining`; results.json adds "pretraining").

    Target `POOLED` ("all"; `multi_corpus(corpora, POOLED)` makes `utts`, `extra` empty):
    every corpus is trained and tested, the folds are made on the union of the corpora
    (speaker-independent protocols choose validation speakers within each corpus, and
    group-kfold balances its folds by corpus), the masked loss and the corpus balance apply
    as above with every corpus weighing the same, and "corpus_scores" scores each corpus.
    `Recipe.corpus_statistics` is refused (no corpus whose statistics the model would keep);
    `Recipe.pretrain_extra` changes nothing (no extra corpus to pretrain on).
    """
    t_start = time.time()
    if recipe.data_parallel:
        data_parallel_devices(recipe.batch_size)  # refuse now, not after the features
    utts, target, n_protocol = join_corpora(utts, extra, target, protocol.name)
    if n_protocol is not None:  # refuse now, not after the features
        check_corpus_statistics(target, recipe.corpus_statistics)
    # Which folds run is known before any feature or pretraining: a bad name fails now.
    folds, subset = _planned_folds(utts, n_protocol, target, protocol, only_folds, max_folds)
    labels, y = class_indices(utts, labels)
    if recipe.neutral_referenced:
        neutral_class(labels)  # no neutral class: refused now, not after the features
    feats = _features(utts, config, cache_dir, n_jobs, log)
    t_features = time.time() - t_start
    out = Path(out_dir)  # made once the input has passed every check: no empty run folder
    out.mkdir(parents=True, exist_ok=True)
    run = ExperimentRun(
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
    if len(extra_idx) and not pretrained:
        folds = [add_training(f, extra_idx) for f in folds]
    if subset is not None:
        log(
            f"partial run: folds {', '.join(subset['folds_run'])} of the protocol's "
            f"{subset['n_folds']}"
        )
    fold_records, curves = _run_folds(run, folds, seeds, save_models, pretrained)
    results = _results(run, protocol, folds, seeds, fold_records, t_features, t_start)
    if subset is not None:
        results["protocol"]["partial"] = subset
    if pretrained:
        results["pretraining"] = pretraining_record(pretrained)  # type: ignore[typeddict-unknown-key]
    write_run_folder(results, curves, out)
    log_scores(results, out, log)
    return results


def planned_fold_names(
    utts: Sequence[Utterance],
    protocol: ProtocolSpec,
    extra: Sequence[Utterance] = (),
    target: str | None = None,
) -> list[str]:
    """The names of every fold `run_experiment` makes of these arguments (as results.json
    and `only_folds` name them; protocol "all": none), with no feature or training: e.g. to
    spread a run's folds over processes."""
    joined, target, n_protocol = join_corpora(utts, extra, target, protocol.name)
    folds, _ = _planned_folds(joined, n_protocol, target, protocol, None, None)
    return [f.name for f in folds]


def _planned_folds(
    utts: Sequence[Utterance],
    n_protocol: int | None,
    target: str | None,
    protocol: ProtocolSpec,
    only_folds: Sequence[str] | None,
    max_folds: int | None,
) -> tuple[list[Fold], dict[str, Any] | None]:
    """`chosen_folds` of the protocol's own utterances (the first `n_protocol` of `utts`;
    target `POOLED`: folds per corpus); protocol "all": no folds, ([], None).

    Raises:
        UnknownFoldError: a name in `only_folds` that is not a fold of the protocol, or
            `only_folds` with protocol "all".
    """
    if protocol.name != "all":
        own = utts[: n_protocol or len(utts)]
        return chosen_folds(own, protocol, only_folds, max_folds, per_corpus=target == POOLED)
    if only_folds is not None:
        raise UnknownFoldError("protocol 'all' trains one model on every speaker: it has no folds")
    return [], None


def _features(
    utts: Sequence[Utterance],
    config: FrontendConfig,
    cache_dir: str | os.PathLike | None,
    n_jobs: int,
    log: Callable[[str], None],
) -> list[FeatureSource]:
    """Every utterance's features (`extract_corpus`); with `cache_dir`, the paths of their
    cache files, read memory-mapped."""
    log(f"extracting features of {len(utts)} utterances")
    return extract_corpus(
        [u.path for u in utts],
        config,
        cache_dir=cache_dir,
        n_jobs=n_jobs,
        as_paths=cache_dir is not None,
    )


def _results(
    run: ExperimentRun,
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
        "versions": versions(),
        "folds": fold_records,
        "timings": {"features_s": round(t_features, 1), "total_s": round(time.time() - t_start, 1)},
        **score_folds(fold_records, run.labels),
    }
    if run.recipe.normalization == "stream":  # how "predicted" ordered each test stream
        results["online_order"] = ONLINE_ORDER
    if run.multi:
        results.update(run.corpus_record())  # type: ignore[typeddict-item]
        results["corpus_scores"] = corpus_scores(fold_records, run.labels)
    return results


def _run_folds(
    run: ExperimentRun,
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


def _run_fold(
    run: ExperimentRun, fold: Fold, seed: int, pretrained: Pretrained | None = None
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
        if run.recipe.normalization == "stream" and "metrics_corpus_order" not in record:
            # Scored before the headline streamed each speaker in a random order.
            raise ValueError(
                f"{ckpt / 'record.json'} scored its stream model in corpus order (before "
                f'"online_order"); delete {ckpt} to train and score that fold again'
            )
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
    metrics, predictions = score_test(run, result, fold.test, seed)
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
        **run.neutral_record(result, fold.test),  # type: ignore[typeddict-item]
        **metrics,  # type: ignore[typeddict-item]
        "predictions": predictions,
    }
    if ckpt is not None:
        write_json(ckpt / "record.json", {**record, "history": result.history})
    return record, result.history, result


def _train_all(
    run: ExperimentRun,
    protocol: ProtocolSpec,
    seed: int,
    t_start: float,
    pretrained: Pretrained | None,
) -> AllResults:
    """Protocol "all": one model on every speaker but the validation speakers of the first
    LOSO fold (its "test" speaker goes back to training; pooled: validation speakers of
    every corpus), saved as out/model.keras; with `pretrained`, fine-tuned from it on the
    target corpus alone."""
    own = run.utts[: run.n_protocol or len(run.utts)]  # extra corpora: training only
    folds = list(
        leave_one_speaker_out(own, val_speakers=protocol.val_speakers, per_corpus=run.pooled)
    )
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
        "versions": versions(),
        "model": str(path),
        "val_speakers": sorted({run.utts[i].speaker for i in val}),
        "val_rule": folds[0].val_rule,
        "best_epoch": result.best_epoch,
        **run.neutral_record(result),  # type: ignore[typeddict-item]
        "timings": {"total_s": round(time.time() - t_start, 1)},
    }
    if run.multi:
        results.update(run.corpus_record())  # type: ignore[typeddict-item]
    if pretrained is not None:
        results["pretraining"] = pretraining_record({seed: pretrained})  # type: ignore[typeddict-unknown-key]
    write_json(run.out / "results.json", results)
    plot_curves({"all": result.history}, run.out / "training_curves.png")
    return results


def _save(result: TrainResult, run: ExperimentRun, path: Path, info: dict[str, Any]) -> Path:
    metadata = ModelMetadata(
        labels=tuple(run.labels),
        frontend=result.config,
        window=run.policy,
        info={
            **info,
            "best_epoch": result.best_epoch,
            "backend": keras.backend.backend(),
            **(run.corpus_record() if run.multi else {}),
        },
    )
    return save_model(result.model, path, metadata)
