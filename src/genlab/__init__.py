"""genlab: train, sample and evaluate generative neural networks with one loop.

import genlab
run = genlab.train("vae", "digits", "runs/vae", steps=500)
model = genlab.load(run)
images = model.sample(16)
"""

from genlab._version import __version__
from genlab.run import load, train

__all__ = ["__version__", "load", "train"]
