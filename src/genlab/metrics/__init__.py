"""Honest metrics: likelihoods in nats and bits/dim, accuracy, RMSE, feature-based scores."""
