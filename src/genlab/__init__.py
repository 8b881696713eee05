"""genlab: train, sample and evaluate generative neural networks with one loop.

import genlab
run = genlab.train("vae", "digits", "runs/vae", steps=500)
model = genlab.load(run)
images = model.sample(16)
"""

__version__ = "0.1.0"

from genlab.run import load, train  # noqa: E402

__all__ = ["__version__", "load", "train"]
