"""The one training loop, its optimizers and learning-rate schedule."""
