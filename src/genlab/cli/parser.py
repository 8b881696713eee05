"""The top-level parser, the arguments verbs share, and flags built from option dataclasses.

A family's `SampleOptions` / `EvalOptions` dataclass becomes command-line flags: field `top_k`
is `--top-k` (or the spelling in its metadata, `{"flag": "--class"}`, plus any
`{"aliases": (...)}`), the docstring under the field is the flag's help, and the values given
are checked by the strict config code (`genlab.config.from_dict`) against the field's type.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import functools
import inspect
import textwrap
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

from genlab._version import __version__
from genlab.errors import UsageError

OPTION = "option:"
"""Namespace prefix of the flags built from option dataclasses (keeps them apart from the
verb's own arguments)."""


def common() -> argparse.ArgumentParser:
    """The arguments every verb takes after its name (--debug; SUPPRESS keeps one given before
    the verb)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors"
    )
    return p


def add_device(
    p: argparse.ArgumentParser | Any, *, what: str, default: str | None = "auto"
) -> None:
    """--device, the same on every verb (checked by genlab.hardware.resolve_device)."""
    p.add_argument(
        "--device",
        default=default,
        metavar="DEVICE",
        help=f"where to {what}: auto (default: a GPU when there is one), cpu, cuda, cuda:N or mps",
    )


def add_checkpoint_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--which",
        default="best",
        help="checkpoint to use: best (default: by the family's selection figure), latest, or "
        "step-N (one of the kept checkpoints)",
    )
    p.add_argument("--no-ema", action="store_true", help="use raw weights even if EMA was kept")


def top_parser() -> argparse.ArgumentParser:
    """`genlab` with its verbs. `sample` and `eval` are listed here but parsed by their modules,
    which first read the run's family to know its options. The verb modules imported here read
    no model code at import time (torch is imported when a verb runs), so `genlab --version`
    and `genlab --help` stay quick."""
    from genlab.cli import (
        anomaly,
        augment,
        bench,
        export,
        listing,
        plot,
        predict,
        runs,
        serve,
        store,
        train,
    )  # fmt: skip

    p = argparse.ArgumentParser(
        prog="genlab",
        description="Train, sample and evaluate generative neural networks with one loop.",
    )
    p.add_argument("--version", action="version", version=f"genlab {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = p.add_subparsers(dest="verb", metavar="VERB")
    listing.add_parser(sub)
    train.add_parser(sub)
    sub.add_parser("sample", help="generate from a trained run", add_help=False)
    sub.add_parser("eval", help="metrics of a trained run on held-out data", add_help=False)
    bench.add_parser(sub)
    runs.add_parsers(sub)
    plot.add_parser(sub)
    predict.add_parser(sub)
    export.add_parser(sub)
    anomaly.add_parser(sub)
    augment.add_parser(sub)
    store.add_parser(sub)
    serve.add_parser(sub)
    return p


# flags from option dataclasses ---------------------------------------------------------------
@dataclass(frozen=True)
class Flag:
    """One command-line flag of an option dataclass's field."""

    name: str
    """The field's name (the keyword the family's method takes)."""
    spellings: tuple[str, ...]
    """The flag, then its aliases."""
    switch: bool
    """A flag without a value (a bool field that defaults to False)."""
    metavar: str | None
    help: str

    @property
    def flag(self) -> str:
        return self.spellings[0]


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (and of its dataclass bases)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):  # no source (e.g. a frozen app): no help text
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, after in zip(body, body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(after.value.value.split())
    return docs


def _bare(tp: Any) -> Any:
    """`X | None` -> X."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        arms = [a for a in get_args(tp) if a is not type(None)]
        return arms[0] if len(arms) == 1 else tp
    return tp


def _metavar(tp: Any) -> str:
    tp = _bare(tp)
    if get_origin(tp) is Literal:
        return "{" + ",".join(map(str, get_args(tp))) + "}"
    return {int: "N", float: "X", str: "TEXT"}.get(tp, "VALUE")


def flags_of(cls: type) -> list[Flag]:
    """The flags of an option dataclass, in field order."""
    hints = get_type_hints(cls)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        switch = tp is bool and f.default is False
        default = f.default if f.default is not dataclasses.MISSING else None
        text = docs.get(f.name, "")
        if default not in (None, False, "") and not switch:
            text = f"{text} (default {default})".strip()
        out.append(
            Flag(
                name=f.name,
                spellings=(
                    f.metadata.get("flag", "--" + f.name.replace("_", "-")),
                    *f.metadata.get("aliases", ()),
                ),
                switch=switch,
                metavar=None if switch else f.metadata.get("metavar", _metavar(tp)),
                help=text.replace("%", "%%"),
            )
        )
    return out


def add_flags(p: argparse.ArgumentParser | Any, cls: type, *, quiet: bool = False) -> None:
    """Add the flags of option dataclass `cls` to a parser or argument group. Values stay
    strings until `options_from` checks them; an absent flag leaves no attribute."""
    for fl in flags_of(cls):
        kw: dict[str, Any] = {"dest": OPTION + fl.name, "default": argparse.SUPPRESS}
        kw["help"] = argparse.SUPPRESS if quiet else fl.help
        if fl.switch:
            kw["action"] = "store_true"
        else:
            kw["metavar"] = fl.metavar
        p.add_argument(*fl.spellings, **kw)


def given(ns: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of `cls` whose flags were given, as given."""
    return {
        f.name: getattr(ns, OPTION + f.name)
        for f in dataclasses.fields(cls)
        if hasattr(ns, OPTION + f.name)
    }


def options_from(ns: argparse.Namespace, cls: type) -> Any:
    """The option dataclass `cls` from the flags given: wrong types and values are one-line
    UsageErrors naming the flag."""
    from genlab.config import from_dict

    names = {fl.name: fl.flag for fl in flags_of(cls)}
    return from_dict(cls, given(ns, cls), spelling=names)


def refuse_extras(
    extras: Iterable[str],
    *,
    what: str,
    own: list[str],
    known: list[str],
    elsewhere: dict[str, list[str]],
) -> None:
    """A one-line UsageError for the first argument the parser did not take.

    `what`: e.g. "'vae' sampling"; `own`: the flags of what is being done (shown when the flag
    is another family's); `known`: every flag this command takes (for did-you-mean);
    `elsewhere`: flag -> the families that take it."""
    for word in extras:
        if not word.startswith("-") or word == "-":
            raise UsageError(f"unexpected argument '{word}' for {what}")
        flag = word.split("=", 1)[0]
        takes = ", ".join(own) or "no options"
        if flag in elsewhere:
            raise UsageError(
                f"{what} does not take {flag}; it takes {takes} "
                f"({flag} is for {', '.join(elsewhere[flag])} runs)"
            )
        close = [k for k in known if k.startswith(flag)]  # an abbreviation, spelt out
        if len(close) != 1:
            close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"it takes {takes}"
        raise UsageError(f"unknown option {flag} for {what}; {hint}")


def add_hidden_flags(p: argparse.ArgumentParser, classes: Iterable[type]) -> None:
    """Every flag of these option dataclasses, without help: a parser that must skip any
    family's flag (and its value) to find the run directory among the words."""
    seen = {s for action in p._actions for s in action.option_strings}
    for cls in classes:
        for fl in flags_of(cls):
            if seen & set(fl.spellings):
                continue
            seen.update(fl.spellings)
            kw: dict[str, Any] = {"action": "store_true"} if fl.switch else {}
            p.add_argument(*fl.spellings, dest="_" + fl.name, help=argparse.SUPPRESS, **kw)


def run_parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """The parser of a verb that acts on a run (sample, eval): RUN_DIR and its own --help, so
    the run's family can add its flags before the help is printed."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="\n".join(textwrap.fill(x, 88) for x in description.split("\n")),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common()],
        add_help=False,
        allow_abbrev=False,
    )
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="run directory of 'genlab train'")
    p.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    return p
