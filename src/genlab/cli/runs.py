"""`genlab runs DIR` and `genlab info RUN`: what runs there are and what one holds; and what the
sample and eval verbs need to know about a run before they load it."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

from genlab.cli.parser import common
from genlab.errors import RunError, UsageError
from genlab.io.manifest import manifest_file, read_json_file, read_manifest


def run_family(run_dir: str | Path) -> str:
    """The family of the run in `run_dir` (a run directory or one checkpoint folder), read from
    its manifest, so that the command line can offer that family's options before it loads
    anything."""
    path = Path(run_dir)
    file = manifest_file(path) if path.is_dir() else None
    if file is None:
        read_manifest(path)  # the one-line error for a folder that is not a run
        raise UsageError(f"{path} is not a genlab run directory")
    meta = read_json_file(file, "run manifest")
    family = meta.get("family") if isinstance(meta, dict) else None
    if family is None:  # a checkpoint folder described by its run directory
        family = read_manifest(path).get("family")
    if not isinstance(family, str) or not family:
        raise RunError(f"{run_dir} names no model family in its manifest; the run is damaged")
    return family


def run_data_kind(run_dir: str | Path) -> str | None:
    """The data kind of a run (image, text, ...) from its manifest; None when it does not say."""
    try:
        data = read_manifest(run_dir).get("data")
    except (RunError, UsageError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


# genlab runs / genlab info --------------------------------------------------------------------
RUNS_EPILOG = """examples:
  genlab runs                       # every run under ./runs, newest first
  genlab runs experiments --sort metric
  genlab runs --json
"""

INFO_EPILOG = """examples:
  genlab info runs/demo
  genlab info runs/demo --json | python -m json.tool
"""


def add_parsers(sub: Any) -> None:
    """The `runs` and `info` verbs."""
    from genlab.io.runs import SORTS

    r = sub.add_parser(
        "runs",
        help="list the runs under a folder: family, data, steps, best figure, time",
        epilog=RUNS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common()],
    )
    r.add_argument("dir", nargs="?", default="runs", metavar="DIR", help="folder (default runs)")
    r.add_argument(
        "--sort",
        choices=SORTS,
        default="time",
        help="newest first (time, default), by path (name), or best figure first (metric)",
    )
    r.add_argument("--json", action="store_true", help="print the table as JSON")
    i = sub.add_parser(
        "info",
        help="one run's data, training, checkpoints (verified), evaluations and config",
        epilog=INFO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common()],
    )
    i.add_argument("run_dir", metavar="RUN_DIR", help="run directory of 'genlab train'")
    i.add_argument("--json", action="store_true", help="print everything as JSON")


def duration(seconds: float | None) -> str:
    """Seconds as 42s, 3m05s or 2h07m ('-' when unknown)."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _figure(s: Any) -> str:
    if s.best is None:
        return "-"
    at = f" @{s.best_step}" if s.best_step is not None and s.mode != "last" else ""
    return f"{s.metric} {s.best:.4g}{at}"


def _steps(s: Any) -> str:
    return f"{s.step}/{s.total_steps}" if s.total_steps else str(s.step)


def list_runs(a: argparse.Namespace) -> int:
    from genlab.io.runs import find_runs, sort_runs, summarize

    runs = sort_runs([summarize(p) for p in find_runs(a.dir)], a.sort)
    if a.json:
        print(json.dumps([r.to_dict() for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs under {a.dir} (train one: genlab train FAMILY --data DATA --out RUN_DIR)")
        return 0
    head = ("run", "family", "data", "steps", "best", "time")
    rows = [
        (str(r.path), r.family, r.data, _steps(r), _figure(r), duration(r.wall_s))
        if not r.problem
        else (str(r.path), r.family, "-", "-", "-", f"damaged: {r.problem}")
        for r in runs
    ]
    widths = [max(len(row[k]) for row in (head, *rows)) for k in range(len(head) - 1)]
    for row in (head, *rows):
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)) + "  " + row[-1])
    return 0


def show_info(a: argparse.Namespace) -> int:
    from genlab.io.runs import describe

    d = describe(a.run_dir)
    if a.json:
        print(json.dumps(d, indent=2))
        return 0
    s, data = d["summary"], d["data"]
    params = f", {d['parameters']:,} parameters" if d.get("parameters") else ""
    print(f"run          {d['run']}")
    print(
        f"family       {d['family']} (genlab {d['genlab_version']}, run format {d['schema']})"
        f"{params}"
    )
    if d.get("init_from"):
        print(f"fine-tuned   from {d['init_from']}")
    shape = "x".join(str(n) for n in data.get("shape", []))
    classes = f", {data['num_classes']} classes" if data.get("num_classes") else ""
    splits = "/".join(str(data.get(f"n_{k}", "?")) for k in ("train", "val", "test"))
    print(
        f"data         {data.get('source')}: {data.get('kind')} {shape}, {data.get('task')}"
        f"{classes}; {splits} train/val/test examples"
    )
    steps = f"step {s['step']}" + (f" of {s['total_steps']}" if s["total_steps"] else "")
    spent = "time not recorded" if s["wall_s"] is None else f"{duration(s['wall_s'])} of training"
    line = f"training     {steps}, {spent}"
    if s["best"] is not None:
        if s["mode"] == "last":
            line += f"; last {s['metric']} {s['best']:.4g} (the latest checkpoint counts as best)"
        else:
            line += (
                f"; best {s['metric']} {s['best']:.4g} at step {s['best_step']} ({s['mode']}imum)"
            )
    print(line)
    print("checkpoints  (sha256 of every file checked against checkpoint.json)")
    if not d["checkpoints"]:
        print("  none yet")
    for c in d["checkpoints"]:
        links = f"  <- {', '.join(c['links'])}" if c["links"] else ""
        print(f"  {c['name']}  {c['bytes'] / 1e6:7.2f} MB  {c['status']}{links}")
    print("evaluations")
    if not d["evaluations"]:
        print(f"  none yet (genlab eval {d['run']})")
    for name, result in d["evaluations"].items():
        figures = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in result.items()
            if k not in ("run", "checkpoint") and not isinstance(v, dict | list)
        )
        print(
            textwrap.fill(f"{name}: {figures}", 100, initial_indent="  ", subsequent_indent="    ")
        )
    if d["samples"]:
        shown = ", ".join(d["samples"][-5:])
        more = f" (and {len(d['samples']) - 5} more)" if len(d["samples"]) > 5 else ""
        print(f"samples      {shown}{more}")
    print("config (as --set takes it)")
    for group, settings in d["config"].items():
        text = " ".join(f"{k}={_setting(v)}" for k, v in _flat(settings, group + "."))
        print(textwrap.fill(text, 100, initial_indent="  ", subsequent_indent="    "))
    return 0


def _flat(settings: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    """Nested settings as (dotted key, value) pairs: data.text.tokenizer, ..."""
    out = []
    for k, v in settings.items():
        if isinstance(v, dict):
            out += _flat(v, f"{prefix}{k}.")
        else:
            out.append((prefix + k, v))
    return out


def _setting(value: Any) -> str:
    """A setting as --set takes it: relu, [32,64], true."""
    if isinstance(value, str) and value and " " not in value:
        return value
    return json.dumps(value, separators=(",", ":"))
