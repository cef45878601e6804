"""Marked tables in docs/ are compared with the code they describe: dataclass fields and
defaults, the edge CLI's options, JSON keys and engines."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import importlib.util
from collections.abc import Callable

import numpy as np
import pytest
from docs_checks import DOCS, TABLES, DocError, Table, _code, edge_parser


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _import(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def check_fields_table(table: Table) -> None:
    """`fields module.Class [+extra ...] [values=module.MAPPING]`: names, defaults, values."""
    args = table.marker.split()[1:]
    cls = _import(args[0])
    extra = [a[1:] for a in args[1:] if a.startswith("+")]
    values = next((_import(a.split("=", 1)[1]) for a in args[1:] if a.startswith("values=")), {})
    listed = [_code(row[0]) for row in table.rows]
    expected = _field_names(cls) + extra
    if sorted(listed) != sorted(expected):
        raise DocError(
            f"{table.id}: table lists {sorted(set(listed) - set(expected))} that "
            f"{cls.__name__} lacks, and misses {sorted(set(expected) - set(listed))}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for col, head in enumerate(table.header):
        head = head.strip().strip("`")
        if head in values:
            owner = values[head]
            actual = {name: getattr(owner, name) for name in fields}
        elif head == "default":
            actual = {name: f.default for name, f in fields.items()}
        else:
            continue
        for row in table.rows:
            name = _code(row[0])
            if name not in fields:
                continue
            documented = ast.literal_eval(_code(row[col]))
            value = actual[name]
            if dataclasses.is_dataclass(value):  # a nested options object: its fields
                value = dataclasses.asdict(value)
            if documented != value:
                raise DocError(
                    f"{table.id}: {name} is {actual[name]!r} in {head!r}, documented {documented!r}"
                )


def check_edge_cli_table(table: Table) -> None:
    """`edge-cli SUBCOMMAND`: the table lists exactly that subcommand's options and defaults."""
    (name,) = table.marker.split()[1:]
    sub = edge_parser()._subparsers._group_actions[0].choices[name]
    actions = {
        a.option_strings[-1]: a
        for a in sub._actions
        if a.option_strings and not isinstance(a, argparse._HelpAction)
    }
    listed = {_code(row[0]): row[1] for row in table.rows}
    if set(listed) != set(actions):
        raise DocError(
            f"{table.id}: `{name}` options are {sorted(actions)}, the table lists {sorted(listed)}"
        )
    for option, cell in listed.items():
        default = actions[option].default
        if cell in ("—", "-", ""):
            if default not in (None, False):
                raise DocError(f"{table.id}: {option} defaults to {default!r}, documented none")
        elif _code(cell) != str(default):
            raise DocError(f"{table.id}: {option} defaults to {default!r}, documented {cell}")


def check_json_keys_table(table: Table) -> None:
    """`json-keys predict|stream`: the keys the edge CLI prints with --json."""
    from edge_runtime.recognizer import Decision, Prediction

    (which,) = table.marker.split()[1:]
    if which == "predict":
        sample = Prediction("a", {"a": 1.0}, (0.0,), np.ones((1, 1))).to_dict()
        expected = {"file", *sample} | {f"windows[].{k}" for k in sample["windows"][0]}
    elif which == "stream":
        expected = set(_field_names(Decision))
    else:
        raise DocError(f"{table.id}: unknown json-keys {which!r}")
    listed = {_code(row[0]) for row in table.rows}
    if listed != expected:
        raise DocError(f"{table.id}: keys are {sorted(expected)}, the table lists {sorted(listed)}")


def check_engines_table(table: Table) -> None:
    from edge_runtime.engines import ENGINES

    listed = {_code(row[0]) for row in table.rows}
    if listed != set(ENGINES):
        raise DocError(
            f"{table.id}: engines are {sorted(ENGINES)}, the table lists {sorted(listed)}"
        )


TABLE_CHECKS: dict[str, Callable[[Table], None]] = {
    "fields": check_fields_table,
    "edge-cli": check_edge_cli_table,
    "json-keys": check_json_keys_table,
    "engines": check_engines_table,
}


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.id)
def test_table(table: Table) -> None:
    kind = table.marker.split()[0]
    assert kind in TABLE_CHECKS, f"{table.id}: unknown table marker {table.marker!r}"
    TABLE_CHECKS[kind](table)


def test_every_edge_subcommand_has_a_checked_table() -> None:
    subcommands = set(edge_parser()._subparsers._group_actions[0].choices)
    documented = {t.marker.split()[1] for t in TABLES if t.marker.startswith("edge-cli ")}
    assert documented == subcommands


def _table(marker: str, rows: list[list[str]], header: list[str]) -> Table:
    return Table(DOCS / "negative.md", 1, marker, header, rows)


def test_table_checks_catch_drift() -> None:
    """Wrong fields, defaults, options and keys are caught."""
    frontend = [
        [f"`{name}`", "`0`"] for name in _field_names(_import("edge_runtime.config.FrontendConfig"))
    ]
    with pytest.raises(DocError, match="sample_rate"):
        check_fields_table(
            _table("fields edge_runtime.config.FrontendConfig", frontend, ["field", "default"])
        )
    with pytest.raises(DocError, match="misses"):
        check_fields_table(
            _table("fields edge_runtime.config.FrontendConfig", frontend[1:], ["field", "x"])
        )
    with pytest.raises(DocError, match="--threads"):
        check_edge_cli_table(
            _table(
                "edge-cli info", [["`--json`", "—"], ["`--threads`", "`1`"]], ["option", "default"]
            )
        )
    stream = [["`--rate`", "`16000`"], ["`--hop`", "`9`"], ["`--smoothing`", "`0.5`"],
              ["`--json`", "—"], ["`--engine`", "`auto`"], ["`--threads`", "`1`"]]  # fmt: skip
    with pytest.raises(DocError, match="--hop"):
        check_edge_cli_table(_table("edge-cli stream", stream, ["option", "default"]))
    with pytest.raises(DocError):
        check_json_keys_table(_table("json-keys stream", [["`time_s`"], ["`label`"]], ["key"]))
    with pytest.raises(DocError):
        check_engines_table(_table("engines", [["`auto`"], ["`litert`"]], ["engine"]))
