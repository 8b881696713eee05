"""`genlab plot RUN [RUN...]`: training and validation curves from metrics.jsonl as a PNG, several
runs on one figure to compare them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from genlab.cli.parser import common
from genlab.errors import UsageError

EPILOG = """examples:
  genlab plot runs/demo                               # writes runs/demo/curves-loss.png
  genlab plot runs/vae runs/vae-wide --out compare.png
  genlab plot runs/lenet --metric accuracy
  genlab plot runs/shakespeare --log --out loss.png
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plot",
        help="training and validation curves of one or more runs as a PNG",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common()],
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories to draw")
    p.add_argument(
        "--metric",
        help="the figure to draw (default: the first run's selection figure, e.g. loss); a "
        "name the runs did not log is an error that lists those they did",
    )
    p.add_argument(
        "--out",
        help="PNG to write (default: RUN_DIR/curves-METRIC.png for one run, "
        "curves-METRIC.png here for several)",
    )
    p.add_argument("--log", action="store_true", help="logarithmic y axis")


def _default_metric(run: Path, logged: dict[str, Any]) -> str:
    from genlab.io.runs import trainer_state

    state = trainer_state(run) or {}
    key = state.get("best_key")
    return key if key in logged else "loss" if "loss" in logged else next(iter(logged), "loss")


def run(a: argparse.Namespace) -> int:
    from genlab.io.runs import curves

    runs = [Path(r) for r in a.runs]
    logged = [curves(r) for r in runs]
    metric = a.metric or _default_metric(runs[0], logged[0])
    for r, figures in zip(runs, logged):
        if metric not in figures:
            raise UsageError(
                f"{r} logged no '{metric}'; it has {', '.join(figures) or 'nothing yet'}"
            )
    out = Path(a.out) if a.out else (runs[0] if len(runs) == 1 else Path()) / f"curves-{metric}.png"
    if out.suffix.lower() != ".png":
        raise UsageError(f"genlab plot writes a PNG; --out {out.name} has another suffix")
    if a.log:
        bad = [
            str(r)
            for r, figures in zip(runs, logged)
            if any(v <= 0 for points in figures[metric].values() for _, v in points)
        ]
        if bad:
            raise UsageError(f"--log needs positive values; {metric} of {bad[0]} is not")
    draw(runs, [f[metric] for f in logged], metric, out, log=a.log)
    print(f"wrote {out}")
    return 0


def draw(
    runs: list[Path],
    series: list[dict[str, list[tuple[int, float]]]],
    metric: str,
    out: Path,
    *,
    log: bool = False,
) -> Path:
    """One figure: per run, its training curve (solid) and validation curve (dashed, dots) in
    one colour; written atomically as a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")  # files only: no window, no display needed
    import matplotlib.pyplot as plt

    from genlab.io.atomic import write_bytes_atomic

    names = _labels(runs)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    try:
        for k, (name, by_split) in enumerate(zip(names, series)):
            colour = f"C{k % 10}"
            for split, style in (("train", {"ls": "-"}), ("val", {"ls": "--", "marker": "o"})):
                points = by_split.get(split)
                if points:
                    steps, values = zip(*points)
                    if len(points) == 1:  # a lone point draws no line: show it as a dot
                        style = {**style, "marker": "o"}
                    ax.plot(steps, values, color=colour, ms=3, label=f"{name} {split}", **style)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title(f"{metric}: training (solid) and validation (dashed)")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    write_bytes_atomic(out, buffer.getvalue())
    return out


def _labels(runs: list[Path]) -> list[str]:
    """Short names that tell the runs apart: their folder names, else their paths."""
    names = [r.name or str(r) for r in runs]
    return names if len(set(names)) == len(names) else [str(r) for r in runs]
