"""The recipe: typed, validated configuration of one experiment.

A recipe has four sections — `data`, `model`, `train`, `techniques` — and, with a seed,
fully determines a run. Named components (dataset, model, optimizer, loss, schedule,
technique) are written either as a bare name (`optimizer: adam`) or as a mapping with
a `name` and that component's parameters (`optimizer: {name: sgd, momentum: 0.9}`);
the parameters are validated against the component's registry entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from trainlab.data.options import PreprocessingConfig
from trainlab.errors import RecipeError
from trainlab.names import check_safe_name
from trainlab.params import StrictModel
from trainlab.registry import Registry, format_validation_error


class Spec(BaseModel):
    """A named component plus its parameters, validated against a registry entry."""

    model_config = ConfigDict(extra="allow", validate_assignment=False)
    registry_getter: ClassVar[Callable[[], Registry]]

    name: str
    _params: BaseModel | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        return value

    @model_validator(mode="after")
    def _validate_params(self) -> Spec:
        registry = type(self).registry_getter()
        if self.name not in registry:
            raise ValueError(registry.unknown_message(self.name))
        entry = registry.get(self.name)
        try:
            self._params = entry.params(**(self.model_extra or {}))
        except ValidationError as exc:
            raise ValueError(format_validation_error(exc, nested=True)) from None
        return self

    @property
    def params(self) -> BaseModel:
        """The validated parameter model of this component."""
        assert self._params is not None
        return self._params

    @property
    def entry(self):
        """The registry entry this spec names."""
        return type(self).registry_getter().get(self.name)


def _catalog(name: str) -> Callable[[], Registry]:
    """A getter of registry `name` from the catalog (imported on first use: it loads torch)."""

    def get() -> Registry:
        from trainlab import catalog

        return getattr(catalog, name)

    return get


_datasets, _models, _optimizers, _losses, _schedules, _techniques = (
    _catalog(n) for n in ("DATASETS", "MODELS", "OPTIMIZERS", "LOSSES", "SCHEDULES", "TECHNIQUES")
)


class DatasetSpec(Spec):
    """`data.dataset`: a registered dataset and its options (e.g. a CSV path)."""

    registry_getter = staticmethod(_datasets)


class InitFromConfig(StrictModel):
    """`model.init_from`: start from another model's weights (transfer learning).

    Exactly one of `run` (a finished trainlab run directory) or `weights` (a safetensors
    file, or a PyTorch checkpoint read with `torch.load(weights_only=True)`: tensors only,
    nothing executed). `exclude` are glob patterns of tensor names not to load; `head: new`
    leaves the output layer freshly initialised, sized for this task's classes (`keep`
    loads it too, when its shape fits).
    """

    run: str | None = None
    weights: str | None = None
    exclude: list[str] = []
    head: Literal["new", "keep"] = "new"

    @model_validator(mode="after")
    def _one_source(self) -> InitFromConfig:
        if (self.run is None) == (self.weights is None):
            raise ValueError(
                "init_from needs exactly one of run: RUN_DIR or weights: FILE "
                "(.safetensors, or a PyTorch checkpoint of tensors)"
            )
        return self


class ModelSpec(Spec):
    """`model`: a registered architecture and its hyper-parameters, and optionally the
    weights it starts from (`init_from`)."""

    registry_getter = staticmethod(_models)

    init_from: InitFromConfig | None = None


class OptimizerSpec(Spec):
    """`train.optimizer`: a registered optimizer; lr and weight decay live in `train`."""

    registry_getter = staticmethod(_optimizers)


class LossSpec(Spec):
    """`train.loss`: a registered loss function and its options."""

    registry_getter = staticmethod(_losses)


class ScheduleSpec(Spec):
    """`train.schedule`: a learning-rate schedule, its interval and warm-up."""

    registry_getter = staticmethod(_schedules)


class TechniqueSpec(Spec):
    """One entry of `techniques`: a registered technique and its options."""

    registry_getter = staticmethod(_techniques)


class DataConfig(StrictModel):
    """`data`: which dataset, how it is split and preprocessed."""

    dataset: DatasetSpec
    test_size: float = Field(0.2, gt=0, lt=1)
    #: Fraction of the non-test data held out for validation. 0 trains on all of it with
    #: no validation split: the refit once the epochs and settings have been chosen on
    #: validation (early stopping, plateau schedules, tune, ablate and the doctor need one).
    val_size: float = Field(0.1, ge=0, lt=1)
    split_seed: int = Field(0, ge=0, lt=2**32)
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    #: k-fold (stratified for classification) cross-validation over the non-test data:
    #: k runs, reported as mean ± std. `fold` selects one fold (set by the cv driver).
    cv: int | None = Field(None, ge=2)
    fold: int | None = Field(None, ge=0)
    #: Keep only these classes (labels as the dataset has them), relabelled 0…k−1 in this
    #: order, with the canonical test split of those classes.
    classes: list[int | str] | None = None
    #: Exactly this many training rows per class (chosen with `split_seed`; a class with
    #: fewer is an error): few-label studies. The validation and test splits are not limited.
    train_per_class: int | None = Field(None, gt=0)


class TrainConfig(StrictModel):
    """`train`: loss, optimizer, schedule, epochs, batch size, seed and device."""

    epochs: int = Field(10, gt=0)
    batch_size: int = Field(32, gt=0)
    #: 256: evaluating the seed CNN took 0.10 s per 2,048 images in batches of 256 or 64
    #: and 0.28 s in batches of 1,024 (activations outgrow the CPU caches)
    eval_batch_size: int = Field(256, gt=0)
    # bounded so the optimizer's float32 arithmetic cannot overflow (1e300 would)
    lr: float = Field(1e-3, gt=0, le=1e6)
    weight_decay: float = Field(0.0, ge=0, le=1e6)
    decay_norm_and_bias: bool = True
    optimizer: OptimizerSpec = Field(default_factory=lambda: OptimizerSpec(name="adam"))
    loss: LossSpec | None = None
    schedule: ScheduleSpec = Field(default_factory=lambda: ScheduleSpec(name="constant"))
    seed: int = Field(0, ge=0, lt=2**32)  # NumPy's legacy generators take 32 bits
    device: str = "auto"
    #: intra-op CPU threads: a number, or auto (threads.py: the cores this process may
    #: use, less those other processes keep busy; one when a step is too small to split).
    #: None (runs saved before `auto`) is auto too.
    threads: int | Literal["auto"] | None = "auto"

    @field_validator("threads")
    @classmethod
    def _check_threads(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"threads must be a positive number or auto (got {value})")
        return value
    deterministic: bool = True
    #: Baselines fitted beside the network on the same split and scored on the test split
    #: (scikit-learn's HistGradientBoosting and a linear model; `baselines.json`): auto on
    #: a user's table (csv, adult), always (any data, features flattened) or none.
    baselines: Literal["auto", "none", "always"] = "auto"
    #: Where scalars also go beside metrics.json (trainlab/loggers/): TensorBoard event
    #: files, an MLflow run, a CSV per epoch. None (the default) is none.
    loggers: list[Literal["tensorboard", "mlflow", "csv"]] | None = None

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if value not in ("auto", "cpu", "mps") and not re.match(r"^cuda(:\d+)?$", value):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps (got {value!r})")
        return value


#: Keys added after runs were first recorded: left out of a recipe's plain form while unset,
#: so the hashes of recipes that do not use them stay what they were.
_OMITTED_WHEN_UNSET = (
    (None, "compression"),
    ("model", "init_from"),
    ("data", "classes"),
    ("data", "train_per_class"),
    ("train", "loggers"),
)


class CompressionConfig(StrictModel):
    """`compression`: what `trainlab compress` did to the source run's model.

    Written by `trainlab compress` into the recipe of the run it makes, so that the run
    is rebuilt from its recipe like any other (nothing is unpickled): `shapes` are the
    pruned modules' parameter shapes (models/structure.py rebuilds those modules at that
    size), `quantize` is applied to the float weights when the run is loaded for
    inference — static int8 with the activation ranges in `calibration`, recorded when
    compress calibrated it, so the loaded model is exactly the one measured. Training
    such a recipe trains the pruned architecture from scratch.
    """

    source: str = ""  # the run it was compressed from
    methods: list[str] = []  # as given, e.g. ["channels:0.5", "int8"]
    shapes: dict[str, list[int]] = {}
    quantize: Literal["none", "int8"] = "none"
    calibration: dict[str, Any] | None = None


class Recipe(StrictModel):
    """A whole experiment: data, model, training and techniques."""

    name: str = "run"
    description: str = ""
    data: DataConfig
    model: ModelSpec
    train: TrainConfig = Field(default_factory=TrainConfig)
    techniques: list[TechniqueSpec] = []
    compression: CompressionConfig | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_safe_name(value, "recipe name")

    def require_validation(self, command: str) -> None:
        """Refuse `command` (which chooses by validation metrics) when there is no split."""
        if self.data.val_size == 0 and not self.data.cv:
            raise RecipeError(
                f"{command}: chooses by validation metrics, but data.val_size is 0 (no "
                "validation split); set data.val_size, e.g. 0.1"
            )

    @model_validator(mode="after")
    def _transfer_keeps_norms_and_biases(self) -> Recipe:
        # fine-tuning: no weight decay pulls the source's norm scales and biases to zero
        # unless the recipe asks (fastai's default); resolved here, so recipe.yaml says it
        if self.model.init_from is not None and "decay_norm_and_bias" not in (
            self.train.model_fields_set
        ):
            self.train.decay_norm_and_bias = False
        return self

    @model_validator(mode="after")
    def _check_validation_users(self) -> Recipe:
        # at load, so a refit recipe that still watches validation fails before training
        if self.data.val_size > 0 or self.data.cv:
            return self
        if self.train.schedule.name == "plateau":
            raise ValueError(
                "train.schedule: plateau needs a validation split, but data.val_size is 0; "
                "choose another schedule, or set data.val_size"
            )
        for spec in self.techniques:
            monitor = getattr(spec.params, "monitor", None)
            if isinstance(monitor, str) and monitor.startswith("val_"):
                raise ValueError(
                    f"techniques.{spec.name}.monitor: '{monitor}' needs a validation split, "
                    f"but data.val_size is 0; remove {spec.name} and set train.epochs, "
                    "or set data.val_size"
                )
        return self

    @field_validator("techniques")
    @classmethod
    def _check_conflicts(cls, specs: list[TechniqueSpec]) -> list[TechniqueSpec]:
        # checked when the recipe loads, so a study refuses a bad variant before training
        from trainlab.techniques.registry import check_combination

        alternating = {s.name for s in specs if getattr(s.params, "alternate", False)}
        problem = check_combination([s.name for s in specs], alternating)
        if problem:
            raise ValueError(problem)
        return specs

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what YAML holds), with every default filled in; the keys of
        `_OMITTED_WHEN_UNSET` only when set (recipe hashes stay as they were before)."""
        data = self.model_dump(mode="json")
        for section, key in _OMITTED_WHEN_UNSET:
            holder = data if section is None else data.get(section, {})
            if holder.get(key) is None:
                holder.pop(key, None)
        return data


def validate_recipe(data: dict[str, Any], source: str = "recipe") -> Recipe:
    """Validate a plain mapping into a Recipe; RecipeError naming every bad key."""
    if not isinstance(data, dict):
        raise RecipeError(
            f"{source}: a recipe must be a mapping of sections, got {type(data).__name__}"
        )
    from trainlab.config.presets import apply_preset, dataset_name

    data = apply_preset(data)
    if "model" not in data:
        raise RecipeError(
            f"{source}: model: no model named, and dataset '{dataset_name(data)}' has no "
            "default; name one, e.g. model: mlp (tables), cnn (images), text_cnn (text)"
        )
    try:
        return Recipe(**data)
    except ValidationError as exc:
        raise RecipeError(f"{source}: {format_validation_error(exc)}") from None
