"""Family name -> model class and presets: the only module that imports every family.

Explicit imports, no discovery: adding a family is one import and one line here.
"""

from __future__ import annotations

import difflib
from typing import Any

from genlab.errors import UsageError
from genlab.models import (
    cnn,
    copula,
    ctgan,
    ddpm,
    diffwave,
    gan,
    gpt,
    melcnn,
    mlp,
    pixelcnn,
    rnn,
    simclr,
    tvae,
    vae,
    wavenet,
)
from genlab.models.base import GenerativeModel

FAMILIES: dict[str, tuple[type[GenerativeModel], dict[str, Any]]] = {
    "mlp": (mlp.MLP, mlp.PRESETS),
    "cnn": (cnn.CNN, cnn.PRESETS),
    "vae": (vae.VAE, vae.PRESETS),
    "gpt": (gpt.GPT, gpt.PRESETS),
    "rnn": (rnn.RNN, rnn.PRESETS),
    "ddpm": (ddpm.DDPM, ddpm.PRESETS),
    "gan": (gan.GAN, gan.PRESETS),
    "pixelcnn": (pixelcnn.PixelCNN, pixelcnn.PRESETS),
    "ctgan": (ctgan.CTGAN, ctgan.PRESETS),
    "tvae": (tvae.TVAE, tvae.PRESETS),
    "copula": (copula.Copula, copula.PRESETS),
    "simclr": (simclr.SimCLR, simclr.PRESETS),
    "wavenet": (wavenet.WaveNet, wavenet.PRESETS),
    "diffwave": (diffwave.DiffWave, diffwave.PRESETS),
    "melcnn": (melcnn.MelCNN, {}),
}


def get_family(name: str) -> tuple[type[GenerativeModel], dict[str, Any]]:
    """The model class and presets of a family, or a UsageError naming the closest families."""
    if name not in FAMILIES:
        close = difflib.get_close_matches(name, FAMILIES, n=2)
        hint = f"did you mean {' or '.join(close)}?" if close else "see 'genlab list'"
        raise UsageError(f"unknown family '{name}'; {hint} (families: {', '.join(FAMILIES)})")
    return FAMILIES[name]
