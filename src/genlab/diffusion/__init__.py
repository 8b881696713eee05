"""Diffusion building blocks kept apart from any network: noise schedules (forward process),
sampler step functions (reverse process) and inpainting by resampling."""
