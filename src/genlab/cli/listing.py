"""`genlab list`: families (with their sampling and evaluation options), presets, data sets."""

from __future__ import annotations

import argparse
from typing import Any

from genlab.cli.parser import common, flags_of


def add_parser(sub: Any) -> None:
    sub.add_parser(
        "list",
        help="families with their options, presets and built-in datasets",
        parents=[common()],
    )


def _flags(cls: type) -> str:
    return ", ".join(fl.flag if fl.switch else f"{fl.flag} {fl.metavar}" for fl in flags_of(cls))


def run(_: argparse.Namespace) -> int:
    from genlab.cli.sample import modes_of, trigger
    from genlab.data import BUILTINS, KINDS
    from genlab.registry import FAMILIES

    print("families:")
    for name, (cls, presets) in FAMILIES.items():
        kind = "discriminative" if cls.discriminative else "generative"
        if not cls.discriminative and not cls.generates():
            kind = "representation"
        extra = f" (presets: {', '.join(presets)})" if presets else ""
        print(f"  {name:<10} {kind:<15} {cls.description}{extra}")
        if cls.generates():
            modes = ", ".join(trigger(m) for m in modes_of(cls))
            print(f"      sample: {_flags(cls.SampleOptions) or '-'}")
            if modes:
                print(f"      modes: {modes}")
        if flags_of(cls.EvalOptions):
            print(f"      eval: {_flags(cls.EvalOptions)}")
    print("  ('genlab sample RUN --help' and 'genlab eval RUN --help' explain a run's options)")
    print("built-in datasets:")
    for name, desc in BUILTINS.items():
        print(f"  {name:<13} {desc}")
    print("data kinds (--data takes a path of any of them; 'genlab sample --out' their suffixes):")
    for name, kind in KINDS.items():
        print(f"  {name:<13} {kind.description}; samples as {', '.join(kind.suffixes)}")
    return 0
