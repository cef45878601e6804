"""`dyser-train` and `dyser-eval`: train and score speech-emotion models from the shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge_runtime.config import FrontendConfig
from edge_runtime.windows import WindowPolicy

CORPUS_CHOICES = ["emodb", "casia", "iemocap", "ravdess", "folders", "manifest"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _load_utterances(corpus: str, data: Path):
    from keras_dyconv.corpora import CorpusError, load_corpus

    try:
        return load_corpus(corpus, data)
    except CorpusError as err:
        raise click.UsageError(str(err)) from None


def _val_speakers(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    from keras_dyconv.protocols import parse_val_speakers

    try:
        return parse_val_speakers(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _frontend(path: Path | None) -> FrontendConfig:
    if path is None:
        return FrontendConfig()
    try:
        return FrontendConfig.from_json(path.read_text())
    except (OSError, ValueError) as err:
        raise click.BadParameter(f"{path}: {err}", param_hint="--frontend") from None


def _json_object(text: str) -> dict:
    """`text` parsed as a JSON object; a ValueError saying what it got otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object such as '{{\"num_kernels\": 8}}', got {text!r}")
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--corpus",
    type=click.Choice(CORPUS_CHOICES),
    required=True,
    help="Layout of DATA: a corpus's own published layout, a folder per label, "
    "or a CSV manifest (path,label[,speaker,gender]).",
)
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Corpus root folder, or the manifest file for --corpus manifest.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
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
    type=click.Choice(["loso", "group-kfold", "stratified", "split", "all"]),
    default="loso",
    show_default=True,
    help="loso: leave one speaker out (speaker-independent, the honest number). "
    "group-kfold: speaker-grouped k folds. stratified: random stratified k "
    "folds (speaker-DEPENDENT, what many papers report). split: a fixed split "
    "file. all: train one deployable model on all but the validation speakers.",
)
@click.option(
    "--folds", "k", type=int, default=5, show_default=True, help="k for group-kfold and stratified."
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
    callback=_val_speakers,
    help="Training speakers held out for early stopping: a number, or 'auto' (a fifth of "
    "the fold's training speakers, at least 1, never more than training keeps: 1 of 3 on "
    "CASIA, 2 of 9 on EmoDB; female and male alternately when genders are known). The test "
    "fold is never used for selection.",
)
@click.option(
    "--seed",
    "seeds",
    type=int,
    multiple=True,
    default=(0,),
    show_default=True,
    help="Seed; repeat for several seeds (results report mean and spread).",
)
@click.option("--epochs", type=int, help="Override the recipe's maximum epochs.")
@click.option("--batch-size", type=int, help="Override the recipe's batch size.")
@click.option("--learning-rate", type=float, help="Override the recipe's learning rate.")
@click.option(
    "--class-weighting/--no-class-weighting",
    default=None,
    help="Weight classes by inverse frequency.",
)
@click.option("--mixup", type=float, help="Mixup alpha (0 disables).")
@click.option(
    "--spec-augment",
    type=int,
    nargs=4,
    metavar="TM TW FM FW",
    help="SpecAugment masks per training window: time masks, max width (frames), frequency "
    "masks, max width (mel bands); 0 0 0 0 turns them off.",
)
@click.option(
    "--vtlp",
    type=float,
    help="Vocal-tract-length perturbation: frequency scale drawn from [1-x, 1+x] (e.g. 0.1).",
)
@click.option(
    "--speed",
    type=float,
    help="Speed perturbation: time and frequency scaled by [1-x, 1+x] (e.g. 0.15).",
)
@click.option(
    "--noise-snr",
    type=float,
    nargs=2,
    metavar="LOW HIGH",
    help="Add noise to half the training windows at an SNR drawn from LOW..HIGH dB.",
)
@click.option(
    "--reverb-rt60",
    type=float,
    nargs=2,
    metavar="LOW HIGH",
    help="Add room reverberation to half the training windows: RT60 drawn from LOW..HIGH "
    "seconds (e.g. 0.3 0.8), direct-to-reverberant ratio 0..12 dB.",
)
@click.option(
    "--normalization",
    type=click.Choice(["dataset", "gain", "stream"]),
    help="Feature normalisation: dataset (training-set mean/std), gain (utterance level "
    "removed first), stream (online CMVN: running statistics of each stream; trained per "
    "speaker, evaluated online per test speaker, plus a transductive reference).",
)
@click.option(
    "--stream-training",
    type=click.Choice(["speaker", "online"]),
    help="With --normalization stream, train on each speaker's whole-audio statistics "
    "(speaker) or on running statistics drawn at random points of their stream (online: "
    "the model also learns a voice it has just started hearing).",
)
@click.option(
    "--average-checkpoints",
    type=int,
    help="Average the weights of the N best validation epochs (1: best epoch only).",
)
@click.option(
    "--refit/--no-refit",
    default=None,
    help="After the validation speakers choose the epoch, train again on the training and "
    "validation speakers together for that many epochs (about twice the time).",
)
@click.option(
    "--distill",
    type=int,
    help="Train N teacher models (other seeds) first and distil their mean predictions into "
    "the one model that is evaluated and exported (N+1 trainings per fold).",
)
@click.option("--patience", type=int, help="Early-stopping patience in epochs.")
@click.option(
    "--temperature",
    type=(float, float, int),
    metavar="START END EPOCHS",
    help="Attention softmax temperature of the dynamic convolutions: START, lowered linearly "
    "to END over the first EPOCHS epochs (default recipe: 30 1 10, as Chen et al.; 1 1 0 keeps "
    "it at 1 throughout).",
)
@click.option(
    "--model",
    "model_json",
    metavar="JSON",
    help="Architecture: build_dycnn_bilstm keyword arguments as a JSON object, merged into the "
    "recipe's, e.g. '{\"num_kernels\": 8}' (K kernels per dynamic convolution) or "
    "'{\"conv_filters\": [32, 64, 128]}' (channels per block; its length is the depth). The "
    "classes and feature sizes come from the data.",
)
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
    help="Feature cache folder (keyed by frontend config and file content).",
)
@click.option(
    "--jobs",
    type=int,
    default=1,
    show_default=True,
    help="Feature-extraction processes (-1: all cores).",
)
@click.option("--max-folds", type=int, help="Run only the first N folds (partial result).")
@click.option(
    "--checkpoints",
    type=click.Path(file_okay=False, path_type=Path),
    help="Checkpoint every epoch under this folder. Run the same command again to resume "
    "after an interruption: finished folds are read back, the interrupted one continues "
    "from its last epoch. A second run on the same folder while the first still trains "
    "stops with an error instead of corrupting its checkpoints.",
)
@click.option(
    "--stream-features",
    is_flag=True,
    help="Read features from the --cache files (memory-mapped) instead of holding the "
    "corpus in memory: for corpora larger than RAM.",
)
@click.option("--save-models", is_flag=True, help="Save each fold's model (first seed).")
@click.option("--quiet", is_flag=True, help="No Keras progress bars.")
def train(
    corpus,
    data,
    out,
    recipe,
    protocol,
    k,
    split_file,
    val_speakers,
    seeds,
    epochs,
    batch_size,
    learning_rate,
    class_weighting,
    mixup,
    spec_augment,
    vtlp,
    speed,
    noise_snr,
    reverb_rt60,
    normalization,
    stream_training,
    average_checkpoints,
    refit,
    distill,
    patience,
    temperature,
    model_json,
    frontend_file,
    window,
    window_hop,
    cache,
    jobs,
    max_folds,
    checkpoints,
    stream_features,
    save_models,
    quiet,
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

    Exit codes: 0 done, 1 training or evaluation failed, 2 bad arguments or corpus layout.
    """
    import dataclasses

    from keras_dyconv.experiment import ProtocolSpec, run_experiment
    from keras_dyconv.training import get_recipe

    try:
        base = get_recipe(recipe)
        augmentation = dataclasses.replace(
            base.augmentation,
            **{
                k: v
                for k, v in {
                    "vtlp": vtlp,
                    "speed": speed,
                    "snr_db": noise_snr,
                    "rt60_s": reverb_rt60,
                }.items()
                if v is not None
            },
        )
    except ValueError as err:
        hint = "--vtlp/--speed/--noise-snr/--reverb-rt60"
        raise click.BadParameter(str(err), param_hint=hint) from None
    try:
        if model_json:
            base = base.with_overrides(model={**base.model, **_json_object(model_json)})
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--model") from None
    try:
        base = base.with_overrides(temperature=temperature)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--temperature") from None
    chosen = base.with_overrides(
        augmentation=augmentation,
        normalization=normalization,
        stream_training=stream_training,
        average_checkpoints=average_checkpoints,
        refit=refit,
        distill=distill,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        class_weighting=class_weighting,
        mixup_alpha=mixup,
        spec_augment=tuple(spec_augment) if spec_augment else None,
        patience=patience,
    )
    config = _frontend(frontend_file)
    if config.normalization != "none":
        raise click.BadParameter(
            "training computes dataset statistics itself: use a "
            "frontend config with normalization 'none'",
            param_hint="--frontend",
        )
    if model_json:  # a wrong value type would otherwise fail deep inside the first fit
        from keras_dyconv.models import build_dycnn_bilstm
        from keras_dyconv.training import model_kwargs

        try:
            build_dycnn_bilstm(**model_kwargs(chosen, config, num_classes=2))
        except (TypeError, ValueError) as err:
            raise click.BadParameter(f"{model_json}: {err}", param_hint="--model") from None
    frames_per_s = config.sample_rate / config.hop_length
    policy = WindowPolicy(
        frames=round(window * frames_per_s), hop_frames=max(1, round(window_hop * frames_per_s))
    )
    if stream_features and cache is None:
        raise click.BadParameter(
            "needs --cache (the feature files to stream from)", param_hint="--stream-features"
        )
    utts = _load_utterances(corpus, data)
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
            checkpoint_dir=checkpoints,
            stream_features=stream_features,
            save_models=save_models,
            verbose=0 if quiet else "auto",
            log=lambda msg: click.echo(msg, err=True),
        )
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
@click.option("--cache", type=click.Path(path_type=Path), help="Feature cache folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON on stdout.")
def evaluate(model, corpus, data, speakers, cache, as_json):
    """Re-score a saved MODEL (.keras from dyser-train) on a corpus.

    Uses the model's own frontend config, normalisation statistics, labels and window
    policy, so the numbers are those of the trained model on this data. Utterances whose
    label the model does not know are reported and skipped.

    Exit codes: 0 done, 2 bad arguments, corpus layout or model file.
    """
    from edge_runtime.metadata import MetadataError
    from keras_dyconv.features import extract_corpus
    from keras_dyconv.metrics import summarize
    from keras_dyconv.modelio import load_model
    from keras_dyconv.training import predict_utterances

    try:
        net, metadata = load_model(model)
    except MetadataError as err:
        raise click.UsageError(str(err)) from None
    utts = _load_utterances(corpus, data)
    if speakers:
        wanted = set(speakers.split(","))
        utts = [u for u in utts if u.speaker in wanted]
    known = [u for u in utts if u.label in metadata.labels]
    skipped = len(utts) - len(known)
    if not known:
        raise click.UsageError(f"no utterances with labels the model knows ({metadata.labels})")
    raw = FrontendConfig.from_dict(
        {**metadata.frontend.to_dict(), "normalization": "none", "mean": None, "std": None}
    )
    feats = extract_corpus([u.path for u in known], raw, cache_dir=cache)
    # normalization "stream": each speaker's utterances are one stream, in corpus order.
    speaker_of = [u.speaker for u in known]
    probs = predict_utterances(net, feats, metadata.frontend, metadata.window, speakers=speaker_of)
    y = [metadata.labels.index(u.label) for u in known]
    summary = summarize(y, probs.argmax(axis=1), metadata.labels)
    summary["skipped_unknown_labels"] = skipped
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{len(known)} utterances ({skipped} skipped): WA {summary['wa']:.3f}  "
            f"UA {summary['ua']:.3f}  macro-F1 {summary['macro_f1']:.3f}"
        )
