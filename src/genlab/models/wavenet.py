"""WaveNet (van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio"): an
exact-likelihood autoregressive model of mu-law audio, one sample at a time.

p(x) = prod_t p(x_t | x_<t, c), x_t one of 256 mu-law levels (`data.audio.encoding=mulaw`), c an
optional global condition: the class (a spoken digit) and/or the speaker, each an embedding
added to the gate inputs of every layer.

The network: the previous sample's token embedding, then `stacks` x `layers` residual layers
with dilations 1, 2, 4, ..., 2^(layers-1) in each stack. A layer is a dilated causal
convolution (kernel `kernel`) into gated units tanh(a) * sigmoid(b), then a 1x1 convolution
split into a residual output (added to the layer's input) and a skip output. The skips are
summed, and relu -> 1x1 -> relu -> 1x1 gives 256 logits per time step.

Training reads random crops of `crop` samples of each clip (the whole clip with `crop=0`); the
first sample of a crop is predicted from silence. `nll` is exact over whole clips: the sum of
the per-sample negative log-probabilities in nats (bits per sample = nll / (T ln 2), the
`bits_per_dim` of `genlab eval`).

Generation is incremental: per layer a ring buffer holds the layer's last (kernel - 1) x
dilation inputs, so each new sample costs one matrix product per layer instead of a pass over
the receptive field. `sample(..., cached=False)` recomputes the network on the last
receptive-field window at every step instead (the reference the cache is tested against).
Sampling draws Gumbel noise ahead, so both paths draw the same samples from the same logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import DataInfo
from genlab.errors import DataError, UsageError
from genlab.models.base import GenerativeModel

NOISE_CHUNK = 1024
"""Time steps of Gumbel noise drawn at once while sampling (bounds memory for long clips)."""


@dataclass
class Config:
    residual_channels: int = 32
    """Channels of the residual stream (and of the token embedding)."""
    gate_channels: int = 32
    """Gated units per layer (the dilated convolution outputs twice this many)."""
    skip_channels: int = 64
    """Channels of the skip connections and the output head."""
    layers: int = 10
    """Layers per stack; dilations 1, 2, ..., 2^(layers-1)."""
    stacks: int = 2
    """Stacks of dilated layers."""
    kernel: int = 2
    """Kernel size of the dilated causal convolutions."""
    conditional: bool = False
    """Condition on the class (needs labelled data): `genlab sample RUN --class K`."""
    speaker_conditional: bool = False
    """Condition on the speaker (needs speaker labels, e.g. `{speaker}` in data.audio.pattern):
    `genlab sample RUN --speaker NAME`."""
    crop: int = 4000
    """Samples per training example: a random crop of each clip (0 = the whole clip)."""
    temperature: float = 1.0
    """Default sampling temperature (0 = greedy: the likeliest level each step)."""

    def validate(self) -> None:
        for name in ("residual_channels", "gate_channels", "skip_channels", "layers", "stacks"):
            if getattr(self, name) < 1:
                raise UsageError(f"model.{name} must be at least 1; got {getattr(self, name)}")
        if self.kernel < 2:
            raise UsageError(f"model.kernel must be at least 2; got {self.kernel}")
        if self.crop < 0:
            raise UsageError(f"model.crop must be 0 (whole clips) or positive; got {self.crop}")
        if self.temperature < 0:
            raise UsageError(f"model.temperature must be 0 or more; got {self.temperature}")

    @property
    def receptive_field(self) -> int:
        """Samples one prediction sees: the previous one and (kernel - 1) x dilation more per
        layer."""
        return 1 + (self.kernel - 1) * self.stacks * (2**self.layers - 1)


@dataclass(frozen=True)
class SampleOptions:
    class_label: int | None = field(default=None, metadata={"flag": "--class", "metavar": "K"})
    """The class to generate (class-conditional runs); default: classes drawn uniformly."""
    speaker: str | None = field(default=None, metadata={"metavar": "NAME"})
    """The speaker to generate, by name or index (speaker-conditional runs); default: drawn
    uniformly."""
    seconds: float | None = field(default=None, metadata={"metavar": "S"})
    """Length of each sample in seconds (default: the data's clip length)."""
    temperature: float | None = None
    """Sampling temperature: 0 greedy, below 1 safer, 1 the model (default: model.temperature)."""

    def validate(self) -> None:
        if self.seconds is not None and not self.seconds > 0:
            raise UsageError(f"--seconds must be positive; got {self.seconds}")
        if self.temperature is not None and self.temperature < 0:
            raise UsageError(f"--temperature must be 0 or more; got {self.temperature}")


class Layer(nn.Module):
    """One residual layer: dilated causal conv -> gate -> 1x1 into residual and skip."""

    def __init__(self, cfg: Config, dilation: int, cond_dim: int) -> None:
        super().__init__()
        r, g = cfg.residual_channels, cfg.gate_channels
        self.dilation, self.kernel = dilation, cfg.kernel
        self.conv = nn.Conv1d(r, 2 * g, cfg.kernel, dilation=dilation)
        self.cond = nn.Linear(cond_dim, 2 * g, bias=False) if cond_dim else None
        self.out = nn.Conv1d(g, r + cfg.skip_channels, 1)

    def forward(
        self, h: torch.Tensor, cond: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, R, T) residual stream -> (new stream (B, R, T), skip (B, S, T))."""
        z = self.conv(F.pad(h, ((self.kernel - 1) * self.dilation, 0)))  # (B, 2G, T), causal
        if cond is not None:
            z = z + self.cond(cond).unsqueeze(-1)
        a, b = z.chunk(2, dim=1)
        res, skip = self.out(torch.tanh(a) * torch.sigmoid(b)).split(
            [h.shape[1], self.out.out_channels - h.shape[1]], dim=1
        )
        return h + res, skip


class WaveNet(GenerativeModel):
    family = "wavenet"
    description = "WaveNet: dilated causal convolutions on mu-law audio, cached generation"
    Config = Config
    SampleOptions = SampleOptions
    tiny = (
        "model.residual_channels=16",
        "model.gate_channels=16",
        "model.skip_channels=16",
        "model.layers=4",
        "model.stacks=1",
        "model.crop=128",
        "model.conditional=true",
    )
    tiny_data = "audio"

    def __init__(self, cfg: Config, info: DataInfo) -> None:
        super().__init__(cfg, info)
        self.require(kind="audio", labels=cfg.conditional)
        record = info.record
        if record.encoding != "mulaw":
            raise DataError(
                f"wavenet models mu-law tokens but the data was read as {record.encoding} "
                "waveforms; remove data.audio.encoding or set it to mulaw"
            )
        self.levels = int(record.levels)
        self.num_speakers = len(record.speaker_names) if cfg.speaker_conditional else 0
        if cfg.speaker_conditional and not self.num_speakers:
            raise DataError(
                f"model.speaker_conditional needs speaker labels but '{info.source}' has none; "
                "name the files after a data.audio.pattern with {speaker}"
            )
        r, s = cfg.residual_channels, cfg.skip_channels
        cond_dim = r if (cfg.conditional or self.num_speakers) else 0
        self.embed = nn.Embedding(self.levels, r)
        self.class_embed = nn.Embedding(info.num_classes, r) if cfg.conditional else None
        self.speaker_embed = nn.Embedding(self.num_speakers, r) if self.num_speakers else None
        self.layers = nn.ModuleList(
            Layer(cfg, 2**i, cond_dim) for _ in range(cfg.stacks) for i in range(cfg.layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv1d(s, s, 1), nn.ReLU(), nn.Conv1d(s, self.levels, 1)
        )

    @property
    def silence(self) -> int:
        """The token of a zero sample (what the first sample is predicted from)."""
        return self.levels // 2

    # the network ------------------------------------------------------------------------------
    def condition(
        self, labels: torch.Tensor | None, speakers: torch.Tensor | None
    ) -> torch.Tensor | None:
        """The global condition vector (B, R) of class and speaker ids; None when unconditional."""
        parts = []
        if self.class_embed is not None:
            parts.append(self.class_embed(labels))
        if self.speaker_embed is not None:
            parts.append(self.speaker_embed(speakers))
        return sum(parts) if parts else None  # type: ignore[return-value]

    def logits(self, inputs: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """(B, T) input tokens (each the sample before the predicted one) -> (B, V, T) logits."""
        h = self.embed(inputs).transpose(1, 2)  # (B, T, R) -> (B, R, T)
        skips = 0
        for layer in self.layers:
            h, skip = layer(h, cond)
            skips = skips + skip
        return self.head(skips)

    def _shifted(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T) -> the network's inputs: silence, then x_0 .. x_{T-2}."""
        first = torch.full_like(x[:, :1], self.silence)
        return torch.cat([first, x[:, :-1]], dim=1)

    def _cond_of(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        return self.condition(
            self.batch_labels(batch), batch.get("speaker") if self.num_speakers else None
        )

    # training and likelihood ------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["x"].long()  # (B, T)
        crop = self.cfg.crop
        if self.training and 0 < crop < x.shape[1]:  # one random window per clip
            start = torch.randint(0, x.shape[1] - crop + 1, (x.shape[0], 1), device=x.device)
            x = x.gather(1, start + torch.arange(crop, device=x.device))
        logits = self.logits(self._shifted(x), self._cond_of(batch))
        return {"loss": F.cross_entropy(logits.float(), x)}

    def nll(self, batch: dict[str, torch.Tensor], *, generator=None) -> torch.Tensor:
        """Exact negative log-likelihood in nats of each whole clip, (B,)."""
        x = batch["x"].long()
        logits = self.logits(self._shifted(x), self._cond_of(batch))
        return F.cross_entropy(logits.float(), x, reduction="none").sum(1)

    def nll_method(self) -> str:
        return "exact"

    # sampling ---------------------------------------------------------------------------------
    def speaker_ids(
        self, n: int, speaker: str | int | None, generator: torch.Generator | None
    ) -> torch.Tensor | None:
        """Speaker ids (n,) for sampling: the one named (or indexed), or drawn uniformly."""
        names = list(self.info.record.speaker_names)
        if not self.num_speakers:
            if speaker is not None:
                raise UsageError(
                    "this wavenet run is not speaker-conditional: --speaker needs a run trained "
                    "with --set model.speaker_conditional=true on data with speaker labels"
                )
            return None
        if speaker is None:
            return torch.randint(self.num_speakers, (n,), generator=generator, device=self.device)
        text = str(speaker)
        if text in names:
            k = names.index(text)
        elif text.isdigit() and int(text) < len(names):
            k = int(text)
        else:
            raise UsageError(f"unknown --speaker {text!r}; the speakers are {', '.join(names)}")
        return torch.full((n,), k, dtype=torch.long, device=self.device)

    def length(self, seconds: float | None) -> int:
        """Samples per generated clip: `seconds` at the data's rate, or the data's clip length."""
        if seconds is None:
            return int(self.info.shape[0])
        return max(1, round(seconds * self.info.record.sample_rate))

    @torch.inference_mode()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        class_label: int | None = None,
        speaker: str | int | None = None,
        seconds: float | None = None,
        temperature: float | None = None,
        cached: bool = True,
    ) -> torch.Tensor:
        """n clips (n, T) of mu-law tokens (T = `seconds` at the data's rate, or the data's
        length), for `class_label` and `speaker` or drawn ones; `cached=False` recomputes the
        receptive field every step (the slow reference)."""
        SampleOptions(seconds=seconds, temperature=temperature).validate()
        temp = self.cfg.temperature if temperature is None else temperature
        labels = self.sample_labels(n, class_label, generator)
        speakers = self.speaker_ids(n, speaker, generator)
        cond = self.condition(labels, speakers)
        steps = self.length(seconds)
        step = self._cached_step(n, cond) if cached else self._naive_step(n, cond, steps)
        prev = torch.full((n,), self.silence, dtype=torch.long, device=self.device)
        out = torch.empty((n, steps), dtype=torch.long, device=self.device)
        for start in range(0, steps, NOISE_CHUNK):
            m = min(NOISE_CHUNK, steps - start)
            gumbel = None
            if temp > 0:
                u = torch.rand((m, n, self.levels), generator=generator, device=self.device)
                gumbel = -torch.log(-torch.log(u.clamp_min(1e-20)))
            for i in range(m):
                logits = step(prev)  # (n, V)
                if gumbel is not None:
                    logits = logits / temp + gumbel[i]
                prev = logits.argmax(-1)
                out[:, start + i] = prev
        return out

    def _naive_step(self, n: int, cond: torch.Tensor | None, steps: int):
        """step(prev token (n,)) -> logits (n, V) by a full pass over the receptive field."""
        rf = self.cfg.receptive_field
        history = torch.full((n, steps), self.silence, dtype=torch.long, device=self.device)
        t = 0

        def step(prev: torch.Tensor) -> torch.Tensor:
            nonlocal t
            history[:, t] = prev
            t += 1
            window = history[:, max(0, t - rf) : t]
            return self.logits(window, cond)[:, :, -1]

        return step

    def _cached_step(self, n: int, cond: torch.Tensor | None):
        """step(prev token (n,)) -> logits (n, V), one new column per layer from ring buffers.

        The skip outputs are linear in the gated units, so the gated units of all layers are
        kept side by side and multiplied by the stacked skip weights once per step."""
        dev, dtype = self.device, self.embed.weight.dtype
        r = self.cfg.residual_channels
        plans = []
        for layer in self.layers:
            k, d = layer.kernel, layer.dilation
            # taps oldest first: conv weight (2G, R, k) -> one (k R, 2G) matrix
            w_in = layer.conv.weight.permute(2, 1, 0).reshape(-1, layer.conv.out_channels)
            bias = layer.conv.bias.expand(n, -1)
            if cond is not None:
                bias = bias + layer.cond(cond)
            w_res = layer.out.weight[:r, :, 0].t().contiguous()  # (G, R)
            size = (k - 1) * d
            # starts as zeros: the causal padding a full pass sees before the first input
            buf = torch.zeros((size, n, r), dtype=dtype, device=dev)
            plans.append((k, d, size, w_in, bias.contiguous(), w_res, layer.out.bias[:r], buf))
        w_skip = torch.cat([layer.out.weight[r:, :, 0].t() for layer in self.layers])  # (L G, S)
        b_skip = sum(layer.out.bias[r:] for layer in self.layers)
        gate = self.cfg.gate_channels
        gated = torch.empty((len(plans), n, gate), dtype=dtype, device=dev)  # (L, n, G)
        head = self.head
        w1, b1 = head[1].weight[:, :, 0].t(), head[1].bias
        w2, b2 = head[3].weight[:, :, 0].t(), head[3].bias
        t = 0

        def step(prev: torch.Tensor) -> torch.Tensor:
            nonlocal t
            h = self.embed(prev)  # (n, R)
            for i, (k, d, size, w_in, bias, w_res, b_res, buf) in enumerate(plans):
                taps = [buf[(t - j * d) % size] for j in range(k - 1, 0, -1)]  # oldest first
                z = torch.addmm(bias, torch.cat([*taps, h], dim=1), w_in)  # (n, 2G)
                buf[t % size] = h
                a, b = z.chunk(2, dim=1)
                torch.mul(torch.tanh(a), torch.sigmoid(b), out=gated[i])
                h = torch.addmm(b_res, gated[i], w_res).add_(h)  # (n, R)
            t += 1
            skips = torch.addmm(b_skip, gated.transpose(0, 1).reshape(n, -1), w_skip)  # (n, S)
            y = torch.addmm(b1, torch.relu(skips), w1)
            return torch.addmm(b2, torch.relu(y), w2)

        return step


def fsdd_preset(run):
    """The Free Spoken Digit Dataset at 8 kHz, 1-second clips (the seeded random split),
    conditioned on the digit: two stacks of ten layers (a receptive field of 2,047 samples,
    about 0.26 s) sized for a CPU."""
    run.data.audio.seconds = 1.0
    run.model.conditional = True
    run.model.crop = 2000
    run.train.batch_size = 8
    run.train.lr = 2e-3
    run.train.warmup_steps = 100
    run.train.eval_every = 250
    run.train.eval_batches = 4
    run.train.steps = 3000
    return run


PRESETS = {"fsdd": fsdd_preset}
