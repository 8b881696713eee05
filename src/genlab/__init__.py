"""genlab: train, sample and evaluate generative neural networks with one loop.

import genlab
run = genlab.train("vae", "digits", "runs/vae", steps=500)
model = genlab.load(run)
images = model.sample(16)
"""

from typing import Any

from genlab._version import __version__

__all__ = ["__version__", "evaluations", "load", "train"]


def __getattr__(name: str) -> Any:
    """`genlab.train`, `genlab.load` and `genlab.evaluations` (genlab.run), imported on first
    use, so that importing a lower layer (e.g. genlab.models.gan) does not import the loop."""
    if name in ("train", "load", "evaluations"):
        from genlab import run

        return getattr(run, name)
    raise AttributeError(f"module 'genlab' has no attribute '{name}'")
