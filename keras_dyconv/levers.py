"""Recipe levers as command-line options: one `dyser-train` option per `Recipe` field.

Every field of `keras_dyconv.recipes.Recipe` (but its name) and of its `Augmentation` is a
lever; `recipe_options` adds an option for each to a click command, typed from the field's
annotation and documented by the field's own docstring (`keras_dyconv.recipes.field_docs`),
and `chosen_recipe` applies the ones given to a named recipe. Adding a recipe field adds
its option: nothing here names a field but the few older option spellings of
`OPTION_NAMES`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable
from typing import Any

import click

from edge_runtime.config import FrontendConfig
from keras_dyconv.augment import Augmentation
from keras_dyconv.recipes import Recipe, field_docs, get_recipe, model_kwargs

__all__ = [
    "METAVARS",
    "OPTION_NAMES",
    "chosen_recipe",
    "lever_option",
    "recipe_levers",
    "recipe_options",
]


def _json_object(text: str) -> dict:
    """`text` parsed as a JSON object; a ValueError saying what it got otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object such as '{{\"num_kernels\": 8}}', got {text!r}")
    return value


#: Option names from before the options were generated (docs and scripts use them); any
#: other field `a_b` is `--a-b`.
OPTION_NAMES = {"mixup_alpha": "--mixup", "snr_db": "--noise-snr", "rt60_s": "--reverb-rt60"}
#: How the values of fields that take several are shown in the help.
METAVARS = {"temperature": "START END EPOCHS", "spec_augment": "TM TW FM FW"}


def recipe_levers() -> list[tuple[type, dataclasses.Field, Any]]:
    """(owner, field, type) of every recipe lever: the fields of `Recipe` but its name, with
    `augmentation` replaced by the fields of `Augmentation`."""
    levers = []
    for owner in (Recipe, Augmentation):
        hints = typing.get_type_hints(owner)
        for f in dataclasses.fields(owner):
            if f.name not in ("name", "augmentation"):
                levers.append((owner, f, hints[f.name]))
    return levers


def lever_option(name: str) -> str:
    """The `dyser-train` option that sets the recipe field (or augmentation field) `name`."""
    return OPTION_NAMES.get(name, "--" + name.replace("_", "-"))


def _option(owner: type, f: dataclasses.Field, hint: Any, doc: str) -> Callable:
    """The click option of one lever: its type from the field's, its help from its doc."""
    option, kwargs = lever_option(f.name), {"help": doc[:1].upper() + doc[1:]}
    values = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(values) == 1:
        hint = values[0]  # "X | None": the option sets an X
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return click.option(f"{option}/--no-{option[2:]}", f.name, default=None, **kwargs)
    if origin is typing.Literal:
        kwargs["type"] = click.Choice([str(a) for a in args])
    elif origin is tuple:
        kwargs["type"] = args
        kwargs["metavar"] = METAVARS.get(f.name, " ".join(["LOW", "HIGH"][: len(args)]))
    elif origin is dict:
        kwargs["metavar"] = "JSON"
        kwargs["help"] += " A JSON object, merged into the recipe's."
    elif hint in (int, float, str):
        kwargs["type"] = hint
    else:
        raise TypeError(f"{owner.__name__}.{f.name}: no command-line option for {hint}")
    return click.option(option, f.name, **kwargs)


def recipe_options(command: Callable) -> Callable:
    """Add an option for every recipe lever (`recipe_levers`) to a click command; each
    overrides the chosen recipe's field when given (`chosen_recipe`)."""
    docs = {owner: field_docs(owner) for owner in (Recipe, Augmentation)}
    for owner, f, hint in reversed(recipe_levers()):  # click lists the last added first
        command = _option(owner, f, hint, docs[owner][f.name])(command)
    return command


def chosen_recipe(name: str, levers: dict[str, Any], config: FrontendConfig) -> Recipe:
    """The recipe called `name` with the levers given on the command line (None: not
    given); a bad value is a usage error naming its option."""
    try:
        recipe = get_recipe(name)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--recipe") from None
    given = {
        (owner, f.name): levers[f.name]
        for owner, f, _ in recipe_levers()
        if levers.get(f.name) is not None
    }
    augmentation = {n: v for (owner, n), v in given.items() if owner is Augmentation}
    try:
        recipe = dataclasses.replace(
            recipe, augmentation=dataclasses.replace(recipe.augmentation, **augmentation)
        )
    except ValueError as err:
        hint = "/".join(lever_option(n) for n in augmentation)
        raise click.BadParameter(str(err), param_hint=hint) from None
    for (owner, name), value in given.items():
        if owner is not Recipe:
            continue
        try:
            if isinstance(getattr(recipe, name), dict):
                value = {**getattr(recipe, name), **_json_object(value)}
            recipe = dataclasses.replace(recipe, **{name: value})
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint=lever_option(name)) from None
    if "model" in levers and levers["model"] is not None:
        _check_model(recipe, config, levers["model"])
    return recipe


def _check_model(recipe: Recipe, config: FrontendConfig, text: str) -> None:
    """Build the recipe's model once: a wrong value type given with --model would otherwise
    fail deep inside the first fit."""
    from keras_dyconv.models import build_dycnn_bilstm

    try:
        build_dycnn_bilstm(**model_kwargs(recipe, config, num_classes=2))
    except (TypeError, ValueError) as err:
        raise click.BadParameter(f"{text}: {err}", param_hint=lever_option("model")) from None
