"""What `dyser-train` and `dyser-eval` read from the shell, checked at the boundary: the
corpora and their classes, option callbacks (folders, jobs, folds, validation speakers) and
the frontend and window options; each bad value a click usage error naming it."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import click

from edge_runtime.config import FrontendConfig
from edge_runtime.windows import MAX_FRAMES, WindowPolicy
from keras_dyconv.corpora import Utterance


def load_utterances(corpus: str, data: Path):
    from keras_dyconv.corpora import CorpusError, load_corpus

    try:
        return load_corpus(corpus, data)
    except CorpusError as err:
        raise click.UsageError(str(err)) from None


def val_speakers_option(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    from keras_dyconv.protocols import parse_val_speakers

    try:
        return parse_val_speakers(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def folder_option(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """A folder option (--out, --cache, --checkpoints): an existing folder or a path where
    one can be made; a usage error naming the file in the way otherwise."""
    if value is not None:
        path = Path(value)  # a str where the type is a plain click.Path (the docs checks)
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            raise click.BadParameter(f"{value}: expected a folder, but {existing} is a file")
    return value


def jobs_option(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """--jobs: a process count as joblib takes it (n >= 1; -1 all cores, -2 all but one)."""
    if value == 0:
        raise click.BadParameter("expected 1 or more processes, or -1 for all cores, got 0")
    return value


def fold_names_option(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> list[str] | None:
    """--only-folds: the fold names of every use of the option, comma-separated or not
    (None when not given)."""
    names = [name.strip() for item in value for name in item.split(",") if name.strip()]
    if value and not names:
        raise click.BadParameter("no fold name given")
    return names or None


def read_frontend(path: Path | None) -> FrontendConfig:
    """The --frontend config (default: `FrontendConfig()`), with normalization "none" (a
    usage error otherwise): training computes the statistics."""
    try:
        config = FrontendConfig() if path is None else FrontendConfig.from_json(path.read_text())
    except (OSError, ValueError) as err:
        raise click.BadParameter(f"{path}: {err}", param_hint="--frontend") from None
    if config.normalization != "none":
        raise click.BadParameter(
            "training computes dataset statistics itself: use a "
            "frontend config with normalization 'none'",
            param_hint="--frontend",
        )
    return config


def window_policy(config: FrontendConfig, window_s: float, hop_s: float) -> WindowPolicy:
    """The model's input window and the evaluation hop, given in seconds, in frames of
    `config`; a usage error naming the option for one that is not a whole number of frames
    in `WindowPolicy`'s range once rounded."""
    frames_per_s = config.sample_rate / config.hop_length
    frames = {}
    for option, seconds in (("--window", window_s), ("--window-hop", hop_s)):
        n = round(seconds * frames_per_s) if math.isfinite(seconds) else 0
        if not 1 <= n <= MAX_FRAMES:
            raise click.BadParameter(
                f"expected 1 to {MAX_FRAMES} frames of {1000 / frames_per_s:g} ms "
                f"({1 / frames_per_s:g} to {MAX_FRAMES / frames_per_s:g} s), got {seconds:g} s",
                param_hint=option,
            )
        frames[option] = n
    return WindowPolicy(frames=frames["--window"], hop_frames=frames["--window-hop"])


def _corpus_name(loader: str, utts) -> str:
    """The label-mapping name of a corpus loaded with `loader` (`corpus_of`); a usage error
    when it has none."""
    from keras_dyconv.labels import CORPUS_LABELS
    from keras_dyconv.multicorpus import corpus_of

    name = corpus_of(loader, utts)
    if name is None:
        names = sorted({str(u.extra.get("corpus") or "") for u in utts})
        raise click.UsageError(
            f"training on several corpora maps each corpus's labels to common names: "
            f"--corpus {loader} needs to be one of {sorted(CORPUS_LABELS)}, or a manifest "
            f"with a 'corpus' column naming one of them (got {names or 'none'})"
        )
    return name


def load_corpora(
    corpora: tuple[str, ...], data: tuple[Path, ...], target: str | None, loco: bool
) -> tuple[list[Utterance], list[Utterance], str | None]:
    """`dyser-train`'s corpora: (utts, extra, target) for `run_experiment`.

    One --corpus/--data pair (and not --protocol loco): its utterances in their own labels,
    no extra, no target. Several: `keras_dyconv.multicorpus.multi_corpus` of them (target
    "all", `POOLED`: every corpus trained and tested, no extra).
    """
    from keras_dyconv.multicorpus import POOLED, check_pooled_protocol, multi_corpus

    if len(corpora) != len(data):
        raise click.UsageError(
            f"give --corpus and --data in pairs: got {len(corpora)} --corpus and {len(data)} --data"
        )
    try:
        check_pooled_protocol(target, loco)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--target") from None
    if loco and target is not None:
        raise click.BadParameter("--protocol loco tests on every corpus", param_hint="--target")
    if loco and len(corpora) < 2:
        raise click.BadParameter(
            f"loco (leave one corpus out) needs 2 --corpus/--data pairs or more, "
            f"got {len(corpora)}",
            param_hint="--protocol",
        )
    if len(corpora) == 1 and not loco:
        if target is not None:
            raise click.BadParameter("needs several corpora", param_hint="--target")
        utts = load_utterances(corpora[0], data[0])
        _check_classes(utts, data[0])
        return utts, [], None
    loaded: dict[str, Any] = {}
    for loader, root in zip(corpora, data, strict=True):
        utts = load_utterances(loader, root)
        name = _corpus_name(loader, utts)
        if name in loaded:
            raise click.UsageError(f"corpus {name!r} is given twice")
        loaded[name] = utts
    target = None if loco else (target or next(iter(loaded)))
    if target not in (None, POOLED) and target not in loaded:
        raise click.BadParameter(
            f"{target!r} is not one of the corpora {list(loaded)}", param_hint="--target"
        )
    try:
        utts, extra = multi_corpus(loaded, target)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    _check_classes(utts, ", ".join(map(str, data)))
    return utts, extra, target


def _check_classes(utts: list[Utterance], where: Path | str) -> None:
    """Refuse training data (`utts`, from `where`) that cannot be trained and tested: fewer
    than 2 classes, or a class of 1 utterance (often a typo in a label); a usage error
    naming the class and its file."""
    counts = Counter(u.label for u in utts)
    if len(counts) < 2:
        raise click.UsageError(
            f"{where}: training needs 2 classes or more, found {len(counts)}: {sorted(counts)}"
        )
    single = next((u for u in utts if counts[u.label] == 1), None)
    if single is not None:
        raise click.UsageError(
            f"{where}: every class needs 2 utterances or more (to train on one, test another), "
            f"found 1 of class {single.label!r} ({single.path}; a typo in its label?)"
        )
