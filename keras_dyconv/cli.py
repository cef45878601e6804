"""`dyser-train` and `dyser-eval`: train and score speech-emotion models from the shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from keras_dyconv.cli_inputs import (
    fold_names_option,
    folder_option,
    jobs_option,
    load_corpora,
    load_utterances,
    read_frontend,
    val_speakers_option,
    window_policy,
)
from keras_dyconv.console import native_logs
from keras_dyconv.corpora import CORPORA, Utterance
from keras_dyconv.folds import PROTOCOLS
from keras_dyconv.levers import chosen_recipe, recipe_options

CORPUS_CHOICES = list(CORPORA)
#: The --verbose option of both commands.
VERBOSE = click.option(
    "--verbose",
    is_flag=True,
    help="Show what TensorFlow's native code logs on stderr (CUDA probing, oneDNN notices).",
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--corpus",
    type=click.Choice(CORPUS_CHOICES),
    required=True,
    multiple=True,
    help="Layout of DATA: a corpus's own published layout, a folder per label, "
    "or a CSV manifest (path,label[,speaker,gender]). Repeat --corpus/--data pairs to train "
    "on several corpora: labels become the common names (docs: concepts/labels), the "
    "protocol's folds are made on the --target corpus and the others only add training "
    "utterances (--target all: every corpus is trained and tested; --protocol loco: each "
    "corpus is held out in turn); a manifest needs a 'corpus' column naming its corpus.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    multiple=True,
    help="Corpus root folder, or the manifest file for --corpus manifest; one per --corpus, "
    "in the same order.",
)
@click.option(
    "--target",
    help="With several corpora: the corpus the protocol's folds are made on and tested "
    "(default: the first --corpus). 'all': pool every corpus, each trained and tested: the "
    "folds are made on their union (all their classes), validation speakers are chosen "
    "within each corpus, group-kfold balances folds by corpus, and results.json scores "
    "each corpus on its own.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    callback=folder_option,
    help="Run folder: results.json, plots, models.",
)
@click.option(
    "--recipe",
    default="default",
    show_default=True,
    help="Training recipe: default (ours), paper (RMSProp 0.01, batch 200, "
    "1000 iterations), fast (smoke runs).",
)
@click.option(
    "--protocol",
    type=click.Choice(PROTOCOLS),
    default="loso",
    show_default=True,
    help="loso: leave one speaker out (speaker-independent, the honest number). "
    "group-kfold: speaker-grouped k folds. stratified: random stratified k "
    "folds (speaker-DEPENDENT, what many papers report). split: a fixed split "
    "file. all: train one deployable model on all but the validation speakers. "
    "loco: leave one corpus out (several corpora; each tested once, trained on the others, "
    "on the classes all of them have).",
)
@click.option(
    "--folds",
    "k",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="k for group-kfold and stratified.",
)
@click.option(
    "--split-file",
    type=click.Path(exists=True, path_type=Path),
    help="CSV path,split (train/val/test) for --protocol split.",
)
@click.option(
    "--val-speakers",
    default="auto",
    show_default=True,
    callback=val_speakers_option,
    help="Training speakers held out for early stopping: a number, or 'auto' (a fifth of "
    "the fold's training speakers, at least 1, never more than training keeps: 1 of 3 on "
    "CASIA, 2 of 9 on EmoDB; female and male alternately when genders are known). With "
    "--target all, chosen within each corpus, and with --protocol loco within each training "
    "corpus (a number: that many per corpus). The test "
    "fold is never used for selection.",
)
@click.option(
    "--seed",
    "seeds",
    type=click.IntRange(0, 2**32 - 1),  # the seeds NumPy and Keras accept
    multiple=True,
    default=(0,),
    show_default=True,
    help="Seed; repeat for several seeds (results report mean and spread).",
)
@recipe_options
@click.option(
    "--frontend",
    "frontend_file",
    type=click.Path(exists=True, path_type=Path),
    help="Frontend config JSON (default: 16 kHz, 25 ms / 10 ms, 64 log-mels).",
)
@click.option(
    "--window",
    type=float,
    default=3.0,
    show_default=True,
    help="Model input window in seconds (pad/crop; evaluation averages windows).",
)
@click.option(
    "--window-hop",
    type=float,
    default=1.0,
    show_default=True,
    help="Hop between evaluation windows in seconds.",
)
@click.option(
    "--cache",
    type=click.Path(path_type=Path),
    callback=folder_option,
    help="Feature cache folder (keyed by frontend config and file content). Training reads "
    "its windows from the cache's files, memory-mapped, instead of holding the corpus in "
    "memory: corpora larger than RAM train, with the same results.",
)
@click.option(
    "--jobs",
    type=int,
    default=1,
    show_default=True,
    callback=jobs_option,
    help="Feature-extraction processes (-1: all cores).",
)
@click.option(
    "--max-folds", type=click.IntRange(min=1), help="Run only the first N folds (partial result)."
)
@click.option(
    "--only-folds",
    multiple=True,
    callback=fold_names_option,
    help="Run only the folds named (as results.json names them, e.g. loso-03); repeat it or "
    "separate names with commas. Processes given different folds and the same --out share "
    "the pretraining of --pretrain-extra (partial result).",
)
@click.option(
    "--checkpoints",
    type=click.Path(file_okay=False, path_type=Path),
    callback=folder_option,
    help="Checkpoint every epoch under this folder. Run the same command again to resume "
    "after an interruption: finished folds are read back, the interrupted one (with "
    "--protocol all, the one fit) continues from its last complete epoch. A second run on "
    "the same folder while the first still trains stops with an error instead of "
    "corrupting its checkpoints.",
)
@click.option("--save-models", is_flag=True, help="Save each fold's model (first seed).")
@click.option("--quiet", is_flag=True, help="No Keras progress bars.")
@VERBOSE
def train(
    corpus,
    data,
    target,
    out,
    recipe,
    protocol,
    k,
    split_file,
    val_speakers,
    seeds,
    frontend_file,
    window,
    window_hop,
    cache,
    jobs,
    max_folds,
    only_folds,
    checkpoints,
    save_models,
    quiet,
    verbose,
    **levers,
):
    """Train and evaluate a DyCNN + Bi-LSTM speech-emotion model.

    Reads the corpus, computes log-mel features (cached), and runs the protocol: for every
    fold and seed it trains on the training speakers, selects the checkpoint on validation
    speakers carved out of the training data, and scores the held-out test fold. The run
    folder gets results.json (WA, UA, macro-F1, confusion, per fold and pooled, with a
    bootstrap 95% interval), confusion_matrix.png and training_curves.png.

    \b
    Examples:
      dyser-train --corpus emodb --data ../shared/datasets/emodb --out runs/emodb-loso
      dyser-train --corpus emodb --data ... --protocol all --out runs/emodb-model
      dyser-train --corpus manifest --data my.csv --protocol group-kfold --folds 5 --out runs/x
      dyser-train --corpus emodb --data .../emodb --corpus ravdess --data .../ravdess --out x

    Exit codes: 0 done, 1 training or evaluation failed, 2 bad arguments or corpus layout.
    """
    if protocol == "split" and split_file is None:
        raise click.UsageError("--protocol split needs --split-file (a CSV path,split)")
    if protocol != "split" and split_file is not None:
        raise click.BadParameter(
            f"is read only with --protocol split, got --protocol {protocol}",
            param_hint="--split-file",
        )
    with native_logs(verbose):
        config = read_frontend(frontend_file)
        chosen = chosen_recipe(recipe, levers, config)
        policy = window_policy(config, window, window_hop)
        utts, extra, target = load_corpora(corpus, data, target, loco=protocol == "loco")
        from keras_dyconv.experiment import run_experiment
        from keras_dyconv.folds import ProtocolSpec, UnknownFoldError

        spec = ProtocolSpec(
            protocol,
            k=k,
            split_file=str(split_file) if split_file else None,
            val_speakers=val_speakers,
            seed=seeds[0],
        )
        try:
            run_experiment(
                utts,
                out,
                config,
                chosen,
                spec,
                seeds=seeds,
                policy=policy,
                cache_dir=cache,
                n_jobs=jobs,
                max_folds=max_folds,
                only_folds=only_folds,
                checkpoint_dir=checkpoints,
                save_models=save_models,
                verbose=0 if quiet else "auto",
                log=lambda msg: click.echo(msg, err=True),
                extra=extra,
                target=target,
            )
        except UnknownFoldError as err:
            raise click.BadParameter(str(err), param_hint="--only-folds") from None
        except ValueError as err:
            click.echo(f"dyser-train: {err}", err=True)
            sys.exit(EXIT_FAILED)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--corpus",
    type=click.Choice(CORPUS_CHOICES),
    required=True,
    help="Layout of DATA (as for dyser-train).",
)
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Corpus root folder or manifest.",
)
@click.option("--speakers", help="Comma-separated speakers to score (default: all).")
@click.option(
    "--cache",
    type=click.Path(path_type=Path),
    callback=folder_option,
    help="Feature cache folder (the features are read from its files, memory-mapped).",
)
@click.option(
    "--stream-order",
    type=click.Choice(["random", "corpus"]),
    default="random",
    show_default=True,
    help='Models with normalization "stream", each speaker\'s utterances one stream: heard '
    "in a random order per speaker (seeded by --seed), as dyser-train scores its headline, "
    "or in corpus order (emotion-blocked where a corpus lists a speaker's files by emotion).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the random stream order (dyser-train: each fold's training seed).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON on stdout.")
@VERBOSE
def evaluate(model, corpus, data, speakers, cache, stream_order, seed, as_json, verbose):
    """Re-score a saved MODEL (.keras from dyser-train) on a corpus.

    Uses the model's own frontend config, normalisation statistics, labels and window
    policy, so the numbers are those of the trained model on this data. The model's classes
    and the corpus's labels meet in the common label space (docs: concepts/labels), so a
    model trained on one corpus scores another: on the classes both have, in common names
    (predicting a class the corpus lacks is an error) and, for a corpus with a label
    mapping, in the corpus's own label set. Utterances of classes the model cannot output
    are counted by class and skipped; the model's classes the corpus lacks are listed. A
    model with normalization "stream" adapts online, each speaker's utterances one stream
    (--stream-order).

    Exit codes: 0 done, 2 bad arguments, corpus layout, audio or model file.
    """
    from edge_runtime.metadata import MetadataError
    from keras_dyconv.evaluation import evaluate_model
    from keras_dyconv.multicorpus import corpus_of

    with native_logs(verbose):
        from keras_dyconv.modelio import load_model

        try:
            net, metadata = load_model(model)
        except MetadataError as err:
            raise click.UsageError(str(err)) from None
        utts = load_utterances(corpus, data)
        if speakers:
            utts = _speakers(utts, speakers, data)
        try:
            report = evaluate_model(
                net,
                metadata,
                utts,
                corpus_of(corpus, utts),
                cache,
                seed=seed if stream_order == "random" else None,
            )
        except ValueError as err:
            raise click.UsageError(str(err)) from None
    click.echo(json.dumps(report, indent=2) if as_json else _report_lines(report))


def _speakers(utts: list[Utterance], speakers: str, data: Path) -> list[Utterance]:
    """The utterances of `speakers` (comma-separated) in `utts` (of `data`); a usage error
    naming those the corpus lacks."""
    wanted = {name.strip() for name in speakers.split(",") if name.strip()}
    have = sorted({u.speaker for u in utts})
    missing = sorted(wanted - set(have))
    if not wanted or missing:
        raise click.BadParameter(
            f"expected speakers of {data} ({', '.join(have)}), got {missing or repr(speakers)}",
            param_hint="--speakers",
        )
    return [u for u in utts if u.speaker in wanted]


def _report_lines(report: dict[str, Any]) -> str:
    """`dyser-eval`'s summary of an `evaluate_model` report, for people."""
    lines = [
        f"{report['n']} utterances ({report['skipped_unknown_labels']} skipped): "
        f"WA {report['wa']:.3f}  UA {report['ua']:.3f}  macro-F1 {report['macro_f1']:.3f}"
    ]
    if "own" in report:
        own = report["own"]
        lines.append(
            f"  in {report['corpus']}'s own labels ({', '.join(own['labels'])}): "
            f"WA {own['wa']:.3f}  UA {own['ua']:.3f}  macro-F1 {own['macro_f1']:.3f}"
        )
    if "online_order" in report:
        lines.append(f"  online, each speaker one stream: {report['online_order']}")
    if report["not_in_model"]:
        counts = ", ".join(f"{k} ({n})" for k, n in report["not_in_model"].items())
        lines.append(f"  skipped, classes the model cannot output: {counts}")
    if report["not_in_corpus"]:
        lines.append(
            f"  the model's classes this corpus lacks (predicting them is an error): "
            f"{', '.join(report['not_in_corpus'])}"
        )
    return "\n".join(lines)
