"""The contract every genlab family keeps.

A family is one `GenerativeModel` subclass with a nested `Config` dataclass. The training loop,
checkpoints, sampling and evaluation only use what is declared here, plus optional capabilities
that are detected by what a model has, never by its name:

- `loss(batch) -> dict`: `"loss"` is minimized; other keys are logged.
- `sample(n, *, generator=None, **options) -> Tensor`: new data in the family's output form.
- optional `nll(batch, *, generator=None, **options) -> Tensor`: per-example negative
  log-likelihood in nats (exact, or an estimate/bound as the family documents).
- optional `elbo(batch, *, generator=None) -> Tensor`: per-example evidence lower bound in nats.
- optional `encode(x) -> Tensor` / `decode(z) -> Tensor` / `reconstruct(x) -> Tensor`.
- discriminative families set `discriminative = True` and provide `predict(x) -> Tensor`.
- optional `representation(x) -> Tensor`: features (B, D) for probes and transfer learning; a
  family that only learns representations (simclr) keeps the base `sample`, so `generates()`
  is False for it.
- optional `configure_optimizers(train_cfg) -> dict[str, Optimizer]` together with
  `train_step(batch, helper, step) -> dict`: a family that must update its weights itself
  (adversarial training); the loop calls it instead of its own step and still owns the
  learning-rate schedule, seeding, NaN checks, EMA, logging and checkpoints. `helper` (an
  `Updates`) does each backward pass, gradient all-reduce, clipping and optimizer step.
- optional `health(val, *, generator, judge) -> dict`: figures the loop logs at every
  evaluation; a "warnings" list in it is printed as warning lines, and a true "collapsed" lets
  `train.on_collapse=restore` roll the run back to its last healthy checkpoint. `judge` is the
  frozen classifier of the data the run layer hands over when `judge_steps()` asks for one.
- `selection`: the validation figure that picks the best checkpoint and drives early stopping.

Inference runs without autograd: every method named in `INFERENCE` that a family defines
(sample, nll, elbo, reconstruct, predict...) is wrapped in `torch.no_grad()` when the class is
created, so `genlab.load(run).sample(16)` returns a plain tensor in every family. Training
code therefore never calls these methods: it calls `loss`, or a family's own helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from genlab.data import DataInfo
from genlab.errors import DataError, UsageError


@dataclass(frozen=True)
class NoOptions:
    """A family that takes no sampling (or evaluation) options."""


@dataclass(frozen=True)
class Selection:
    """What "the best checkpoint" means for a family, and what early stopping watches.

    `key`: a validation figure the loop computes (a key of the family's validation loss dict,
    or of its `health` figures); `mode`: "min" or "max" of it, or "last" when no figure ranks
    checkpoints (adversarial losses): the latest checkpoint is then the best, and training never
    stops early."""

    key: str = "loss"
    mode: Literal["min", "max", "last"] = "min"


# capabilities: what a family can do beyond loss() and sample(), declared by having the methods
@runtime_checkable
class Likelihood(Protocol):
    def nll(self, batch: dict[str, torch.Tensor], **options: Any) -> torch.Tensor:
        """Per-example negative log-likelihood in nats (exact, or a bound/estimate)."""
        ...


@runtime_checkable
class EvidenceBound(Protocol):
    def elbo(self, batch: dict[str, torch.Tensor], **options: Any) -> torch.Tensor:
        """Per-example evidence lower bound in nats."""
        ...


@runtime_checkable
class LatentSpace(Protocol):
    def prior(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of the latent prior, (n, D)."""
        ...

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (n, D) -> data in the model's form."""
        ...


@runtime_checkable
class Represents(Protocol):
    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> features (B, D): what probes score and what transfer learning reuses."""
        ...


@runtime_checkable
class Reconstructs(Protocol):
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> its reconstruction through the model's latent space."""
        ...


@runtime_checkable
class Predictor(Protocol):
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Discriminative output: class ids or regression values, (B,)."""
        ...


class Updates(Protocol):
    """What the training loop hands to a family's `train_step` (genlab.training.step.StepHelper):
    the one way a family steps its optimizers, so that every family gets gradient all-reduce
    across processes, clipping and bf16 autocast."""

    optimizers: dict[str, torch.optim.Optimizer]

    def update(self, name: str, loss: torch.Tensor) -> None:
        """Zero optimizer `name`'s gradients, backward `loss`, average the gradients across
        processes, clip them and step the optimizer."""
        ...

    def autocast(self) -> Any:
        """The run's bf16 autocast context (a no-op in float32)."""
        ...

    def randn(self, n: int, *shape: int, device: Any = None) -> torch.Tensor:
        """Normal noise (n, *shape) for this process's n examples, drawn as one process would
        draw it for the global batch."""
        ...

    def rand(self, n: int, *shape: int, device: Any = None) -> torch.Tensor:
        """Uniform [0, 1) noise (n, *shape), as `randn`."""
        ...


@runtime_checkable
class TrainsItself(Protocol):
    def configure_optimizers(self, train_cfg: Any) -> dict[str, torch.optim.Optimizer]:
        """The family's named optimizers."""
        ...

    def train_step(
        self, batch: dict[str, torch.Tensor], helper: Updates, step: int
    ) -> dict[str, Any]:
        """One update of the family's own making (e.g. adversarial), every optimizer step
        through `helper.update`: returns logged values."""
        ...


@runtime_checkable
class ReportsHealth(Protocol):
    def health(
        self, val: dict[str, float], *, generator: torch.Generator, judge: nn.Module | None
    ) -> dict[str, Any]:
        """Figures logged at every evaluation; a "warnings" list is printed; a true "collapsed"
        triggers train.on_collapse. `judge`: the frozen classifier asked for by `judge_steps()`
        (None when it asks for none)."""
        ...


@runtime_checkable
class Freezes(Protocol):
    def freeze(self, k: int) -> None:
        """Fine-tuning: freeze the embeddings and the first k layers."""
        ...


@runtime_checkable
class UsesDataFiles(Protocol):
    def use_data_files(self, files: dict[str, bytes]) -> None:
        """Take what the model needs from the data's files (e.g. a text tokenizer)."""
        ...


@runtime_checkable
class Completes(Protocol):
    def complete(self, x: torch.Tensor, rows: int, **options: Any) -> torch.Tensor:
        """Keep the top `rows` rows of images x and generate the rest."""
        ...


@runtime_checkable
class Inpaints(Protocol):
    def inpaint(self, x: torch.Tensor, mask: torch.Tensor, **options: Any) -> torch.Tensor:
        """Fill the masked region of images x."""
        ...


@runtime_checkable
class Streams(Protocol):
    # not `sample(..., stream=)`: a Protocol matches by method name, and every family has `sample`
    def stream(
        self,
        emit: Callable[[str], None],
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> str:
        """One sample handed to `emit` piece by piece as it is generated (text); returns it."""
        ...


@runtime_checkable
class DescribesNll(Protocol):
    def nll_method(self, **options: Any) -> str:
        """Which estimate `nll(batch, **options)` computes (exact, a bound, K samples...)."""
        ...


@runtime_checkable
class CountsUnits(Protocol):
    def units(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sequence models: the tokens, characters, bytes... that `nll` scores per example."""
        ...


INFERENCE = (
    "sample",
    "stream",
    "nll",
    "elbo",
    "prior",
    "encode",
    "decode",
    "reconstruct",
    "complete",
    "inpaint",
    "predict",
    "sequence_nll",
    "representation",
)
"""The methods that run without autograd in every family (see the module docstring)."""


def _without_grad(fn: Callable) -> Callable:
    wrapped = torch.no_grad()(fn)
    wrapped.without_grad = True  # type: ignore[attr-defined]
    return wrapped


@runtime_checkable
class ScoresSequences(Protocol):
    def sequence_nll(self, ids: torch.Tensor) -> torch.Tensor:
        """(L,) token ids of one whole sequence -> (L - 1,) NLL in nats of each token after the
        first, each conditioned on as much of what precedes it as the model reads."""
        ...


class GenerativeModel(nn.Module):
    """Base class: holds the config and the description of the data it was built for."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in INFERENCE:  # a family's inference methods run without autograd
            fn = cls.__dict__.get(name)
            if callable(fn) and not getattr(fn, "without_grad", False):
                setattr(cls, name, _without_grad(fn))

    family: ClassVar[str] = ""
    description: ClassVar[str] = ""
    discriminative: ClassVar[bool] = False
    Config: ClassVar[type]
    SampleOptions: ClassVar[type] = NoOptions
    """Dataclass of the family's sampling options: `genlab sample` builds its flags from it."""
    EvalOptions: ClassVar[type] = NoOptions
    """Dataclass of the family's evaluation options: `genlab eval` builds its flags from it."""
    selection: ClassVar[Selection] = Selection()
    """The validation figure that picks the best checkpoint and drives early stopping."""
    tiny: ClassVar[tuple[str, ...]] = ()
    """`--set` overrides of the smallest configuration that still learns: the contract and
    golden tests train every family with it, so a new family needs no test-fixture edit."""
    tiny_data: ClassVar[str] = "digits"
    """The data the contract tests train `tiny` on: a built-in name, "text" for a small corpus
    the tests write, or "audio" for small WAV clips they write."""
    one_pass_decode: ClassVar[bool] = False
    """Whether `decode(z)` (a `LatentSpace`) is one forward pass of a network, with no sampling
    loop: `genlab export` then exports it (latent codes -> data) as the family's generator."""
    data_kinds: ClassVar[tuple[str, ...]] = ()
    """The data kinds the family learns (genlab.data.kinds); () = any. `genlab train` checks
    it before reading the data."""
    defaults: ClassVar[tuple[str, ...]] = ()
    """`--set` overrides that make the family's default run configuration (applied before a
    preset and the user's --set), e.g. the data codec a family reads or its batch size."""

    def __init__(self, cfg: Any, info: DataInfo) -> None:
        super().__init__()
        self.cfg = cfg
        self.info = info
        self.choices: list[str] = []
        """Settings the family chose from the data (an "auto" value it resolved in `cfg`, which
        the run's config then records), one line each for the run summary."""

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss dict, so that DistributedDataParallel sees the training computation."""
        return self.loss(batch)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any):
        if self.discriminative:
            raise UsageError(
                f"'{self.family}' is a discriminative model (it predicts labels, it does not "
                "generate data): nothing to sample; use 'genlab eval RUN_DIR' for its accuracy"
            )
        if not self.generates():
            raise UsageError(
                f"'{self.family}' learns representations, it does not generate data: nothing to "
                "sample; use 'genlab eval RUN_DIR' for its probes"
            )
        raise NotImplementedError

    @classmethod
    def generates(cls) -> bool:
        """Whether the family samples new data: it has a `sample` of its own."""
        return cls.sample is not GenerativeModel.sample

    @property
    def conditional(self) -> bool:
        """Whether the model is class-conditional: a family whose Config has a `conditional`
        setting learns from the batch's labels and samples a requested class when it is on."""
        return bool(getattr(self.cfg, "conditional", False))

    def batch_labels(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The batch's class labels "y" for a conditional model; None otherwise."""
        return batch["y"] if self.conditional else None

    def sample_labels(
        self, n: int, class_label: int | None, generator: torch.Generator | None
    ) -> torch.Tensor | None:
        """Class labels (n,) for conditional sampling: all `class_label`, or drawn uniformly;
        None for an unconditional model, which refuses a class with a UsageError."""
        if not self.conditional:
            if class_label is not None:
                raise UsageError(
                    f"this '{self.family}' run is unconditional: --class needs a run trained "
                    "with --set model.conditional=true on labelled data"
                )
            return None
        k = self.info.num_classes
        if class_label is None:  # a uniform draw of classes
            return torch.randint(k, (n,), generator=generator, device=self.device)
        if not 0 <= class_label < k:
            raise UsageError(f"--class must be between 0 and {k - 1}; got {class_label}")
        return torch.full((n,), class_label, dtype=torch.long, device=self.device)

    def judge_steps(self) -> int:
        """Training steps of the frozen judge (a `cnn` classifier of the data, genlab.judges)
        that `health` needs; 0 when it needs none."""
        return 0

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # helpers shared by families -------------------------------------------------------------
    def require(self, *, kind: str | None = None, labels: bool = False) -> None:
        """Stop with a clear DataError when the data does not suit this family."""
        if kind is not None and self.info.kind != kind:
            raise DataError(
                f"'{self.family}' needs {kind} data but '{self.info.source}' is {self.info.kind} "
                "data; pick another family or data set (see 'genlab list')"
            )
        if labels and self.info.task == "none":
            raise DataError(
                f"'{self.family}' learns to predict labels but '{self.info.source}' has none; "
                "use class sub-folders, IDX label files or a CSV target column"
            )

    @property
    def dims(self) -> int:
        """Number of scalar dimensions of one example (for bits/dim)."""
        d = 1
        for s in self.info.shape:
            d *= s
        return d
