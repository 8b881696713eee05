"""genlab's command line: list | train | sample | eval | bench | runs | info | plot | predict |
export | anomaly | augment | store | serve.

Exit status: 0 success, 1 data or run-time error, 2 usage or configuration error, 130 stopped
by Ctrl-C (after saving a checkpoint). Errors print one line; --debug shows the traceback.

One module per verb; `parser` holds the top-level parser and the flags that families'
option dataclasses become. `sample` and `eval` read the run's family before they parse, so
that each run takes its own family's options.
"""

from __future__ import annotations

import os
import sys
import traceback

from genlab.errors import GenlabError

RUN_VERBS = ("sample", "eval")
"""Verbs whose options depend on the run's family: parsed by their own modules."""


def _verb_words(argv: list[str], verb: str) -> list[str]:
    """The words after the verb (top-level options before it take no value)."""
    for i, word in enumerate(argv):
        if word == verb:
            return argv[i + 1 :]
    return []


VERBS = {
    "list": ("listing", "run"),
    "train": ("train", "run"),
    "sample": ("sample", "run"),
    "eval": ("evaluation", "run"),
    "bench": ("bench", "run"),
    "runs": ("runs", "list_runs"),
    "info": ("runs", "show_info"),
    "plot": ("plot", "run"),
    "predict": ("predict", "run"),
    "export": ("export", "run"),
    "anomaly": ("anomaly", "run"),
    "augment": ("augment", "run"),
    "store": ("store", "run"),
    "serve": ("serve", "run"),
}
"""verb -> (its module in genlab.cli, the function that runs it), imported when the verb runs:
`genlab --version` imports no verb's dependencies (torch among them)."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    import importlib

    from genlab.cli import parser

    argv = list(sys.argv[1:] if argv is None else argv)
    top = parser.top_parser()
    args, _ = top.parse_known_args(argv)
    if args.verb is None:
        top.print_help()
        return 2
    debug = args.debug
    module, function = VERBS[args.verb]
    verb_run = getattr(importlib.import_module(f"genlab.cli.{module}"), function)
    if args.verb in RUN_VERBS:
        words = _verb_words(argv, args.verb)
        debug = debug or "--debug" in words

        def call() -> int:
            return verb_run(words)
    else:
        args = top.parse_args(argv)  # strict: an unknown word is argparse's usage error

        def call() -> int:
            return verb_run(args)

    try:
        return call()
    except GenlabError as e:
        if debug:
            traceback.print_exc()
        print(f"genlab {args.verb}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"genlab {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `genlab train ... --print-config | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a folder that cannot be written, a full disk: the system's word
        if debug:
            traceback.print_exc()
        where = f": {e.filename}" if e.filename else ""
        print(
            f"genlab {args.verb}: error: {e.strerror or e}{where}; check the path and its "
            "permissions (and free disk space)",
            file=sys.stderr,
        )
        return 1
