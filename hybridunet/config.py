"""The experiment config: typed sections read from YAML, with dotted overrides.

    cfg = load_config("experiments/configs/tiny.yaml", ["train.epochs=2", "model.name=hybrid_unet"])

Unknown keys and bad values fail with the key, the value and what is allowed. The
`model` and `loss` sections take, besides `name`, the keywords of the chosen builder
(e.g. `model.bottleneck: aspp`), checked against that builder's signature.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

from hybridunet.errors import ConfigError
from hybridunet.registry import Registry

# Marks a key that may change on --resume and does not enter the result-changing hash:
# it changes how a run is done or seen, never what it computes.
RESUMABLE = {"resumable": True}
# Marks a key added after journals were written: at its default (today's behaviour) it stays out
# of the result hash, so the runs of every recipe keep their hash; set, it enters it.
LATER = {"hashed_when_set": True}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BuilderSection(Section):
    """A section naming a registered builder; other keys are that builder's keywords."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    @classmethod
    def registry(cls) -> Registry:
        raise NotImplementedError

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _check_keywords(self) -> BuilderSection:
        try:
            self.registry().check_keywords(self.name, self.kwargs)
        except TypeError as err:  # pydantic reports ValueErrors with the key
            raise ValueError(str(err)) from None
        return self


def _models() -> Registry:
    from hybridunet.models import MODELS

    return MODELS


def _losses() -> Registry:
    from hybridunet.losses import LOSSES

    return LOSSES


class ModelConfig(BuilderSection):
    name: str = "unet"
    num_classes: int = Field(19, gt=0)

    @classmethod
    def registry(cls) -> Registry:
        return _models()

    def build_kwargs(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, **self.kwargs}

    @model_validator(mode="after")
    def _check_part_names(self) -> ModelConfig:
        from hybridunet.models import check_parts

        check_parts(self.kwargs)  # an unknown part fails here, naming the known ones
        return self

    @property
    def label(self) -> str:
        """The preset plus its part overrides, e.g. ``hybrid_unet+decoder_block=residual_se``."""
        from hybridunet.models import run_label

        return run_label(self.name, self.kwargs)


class LossConfig(BuilderSection):
    name: str = "dice_ce"
    class_weights: Literal["none", "inverse", "sqrt_inverse", "median_frequency"] | list[float] = Field(
        "none", description="per-class weights: computed from the training split's statistics, or a list")
    max_weight: float = Field(10.0, gt=0, description="clip for computed class weights (after normalising to mean 1)")

    @classmethod
    def registry(cls) -> Registry:
        return _losses()

    @model_validator(mode="after")
    def _check_values(self) -> LossConfig:
        if isinstance(self.class_weights, list) and any(w < 0 for w in self.class_weights):
            raise ValueError(f"loss.class_weights: weights must be >= 0, got {self.class_weights}")
        try:  # values the builder refuses (e.g. loss.threshold=1.5) fail here, naming the key; a loss
            # without keywords is not built (dice_ce would import smp, a second, at every config's import)
            if self.kwargs:
                self.registry().build(self.name, **self.kwargs)
        except (ValueError, TypeError) as err:
            raise ValueError(str(err)) from None
        return self


class AugmentConfig(Section):
    scale: tuple[float, float] = (0.75, 1.5)
    hflip: float = Field(0.5, ge=0, le=1)
    color_jitter: float = Field(0.2, ge=0, le=1)


class DataConfig(Section):
    root: str = "data/synthetic"
    format: Literal["auto", "pairs", "cityscapes", "folder"] = "auto"
    class_names: list[str] | None = Field(
        None, description="folder data: class names (default: ROOT/classes.txt, else class_0, class_1, ...)")
    train_split: str = "train"
    val_split: str = "val"
    size: int = Field(256, gt=0)
    normalize: Literal["unit", "imagenet"] = "imagenet"
    augment: AugmentConfig = AugmentConfig()
    num_workers: int = Field(0, ge=0, json_schema_extra=RESUMABLE)
    cache_masks: bool = False
    in_memory: bool = Field(
        False, description="decode the training split once, hold it on the training device and augment it there")
    skip_bad: bool = False
    limit_train: int | None = Field(None, gt=0, description="use only the first N training samples")
    limit_val: int | None = Field(None, gt=0, description="use only the first N validation samples")


class EmaConfig(Section):
    decay: float | None = Field(
        None, gt=0, lt=1, description="an exponential moving average of the weights (timm's ModelEmaV3, with its "
        "warm-up), updated each step, evaluated and checkpointed as the model; e.g. 0.999 (default: off)",
        json_schema_extra=LATER)


class TrainConfig(Section):
    """How a run trains. `epochs`, or `steps` where given, set its length."""

    epochs: int = Field(10, gt=0)
    steps: int | None = Field(
        None, gt=0, description="total optimiser steps instead of whole epochs (the last epoch stops part-way; the "
        "schedule spans them): how `compare --match-cost` gives the cheaper arm the same training cost",
        json_schema_extra=LATER)
    looks: int | None = Field(
        None, gt=0, description="with train.steps: validations (and best-checkpoint choices) spread evenly over the "
        "steps (default: one per pass over the data); a matched arm keeps its recipe's count, so the best epoch is "
        "chosen as often for every arm", json_schema_extra=LATER)
    batch_size: int = Field(8, gt=0)
    val_batch_size: int | None = Field(None, gt=0, description="validation batch (default: batch_size)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "none", "bf16", "fp16"] = Field(
        "auto", description="autocast dtype; auto: bf16 on CUDA and on CPUs with AMX/AVX512-BF16, else none")
    channels_last: bool | Literal["auto"] = Field(
        "auto", description="memory format; auto: what BENCHMARKS.md measured faster for the device and precision")
    compile: bool = False
    retain_cpu_memory: bool = Field(
        True, description="on CPU, keep freed memory in the process for reuse (glibc malloc): faster steps",
        json_schema_extra=RESUMABLE,
    )
    sync_bn: bool = Field(False, description="SyncBatchNorm across ranks under torchrun")
    grad_clip: float | None = Field(None, gt=0)
    aux_weight: float = Field(0.4, ge=0, description="weight of deep-supervision losses")
    early_stopping: int | None = Field(None, gt=0, description="stop after N epochs without a better val Dice")
    out_dir: str | None = Field(None, json_schema_extra=RESUMABLE)
    overwrite: bool = Field(False, json_schema_extra=RESUMABLE)
    progress: bool = Field(True, json_schema_extra=RESUMABLE)
    ema: EmaConfig = EmaConfig()


class OptimConfig(Section):
    name: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)


class SchedConfig(Section):
    name: Literal["none", "cosine", "poly", "step"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    power: float = Field(0.9, gt=0)
    step_epochs: int = Field(10, gt=0)
    gamma: float = Field(0.1, gt=0, le=1)


class TrackingConfig(Section):
    enabled: bool = True
    experiment: str = "hybridunet"
    uri: str | None = None
    run_name: str | None = None
    log_images: int = Field(4, ge=0)
    flush_secs: float = Field(5.0, ge=0)  # metrics reach the store at most this late; 0: every epoch
    background: bool = True  # log from a low-priority worker thread; false: inline, in the training loop
    flush_timeout: float = Field(60.0, ge=0, description="at the end, wait this many seconds for a tracking server "
                                 "that is away; what it has not taken then stays in the run folder's outbox for "
                                 "`hybridunet sync RUN_DIR`")
    log_model: Literal["none", "onnx", "pt2", "pickle"] = Field(
        "onnx", description="log the best checkpoint as an MLflow model: onnx (any batch and size, loads without "
                            "unpickling), pt2 (torch.export: loads without unpickling, one image at the training "
                            "size) or pickle (pytorch flavour, any size; unpickles). compare logs each arm's best "
                            "seed, tune the best trial")
    registered_model: str | None = Field(None, description="with log_model: register it under this name")
    system_metrics: bool = Field(False, description="MLflow's own CPU, memory, disk, network (and GPU) sampling "
                                                    "into system/* metrics: a thread sampling every 10 s; needs psutil")


class ExperimentConfig(Section):
    name: str | None = None
    seed: int = 0
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    sched: SchedConfig = SchedConfig()
    tracking: TrackingConfig = Field(TrackingConfig(), json_schema_extra=RESUMABLE)

    @model_validator(mode="after")
    def _check_across_sections(self) -> ExperimentConfig:
        weights, n = self.loss.class_weights, self.model.num_classes
        if isinstance(weights, list) and len(weights) != n:
            raise ValueError(f"loss.class_weights has {len(weights)} weights for model.num_classes={n}")
        names = self.data.class_names
        if names is not None and len(names) != n:
            raise ValueError(f"data.class_names has {len(names)} names for model.num_classes={n}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def flat(self) -> dict[str, Any]:
        """Dotted key -> value, e.g. {'train.epochs': 10, ...}: MLflow params."""
        return flatten(self.to_dict())

    def result_changing(self) -> dict[str, Any]:
        """The recipe: the flat keys that change what a run computes, but the seed (runs of
        one recipe differ in it) and the resumable keys."""
        resumable, later = resumable_keys(), later_keys()
        return {k: v for k, v in self.flat().items() if not k.startswith(resumable) and k not in ("name", "seed")
                and not (k in later and v == later[k])}

    def result_hash(self) -> str:
        """A short hash of `result_changing()`: equal for the runs of one recipe, whatever their seed."""
        text = json.dumps(self.result_changing(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _marked(marker: str, section: type[BaseModel] = ExperimentConfig,
            prefix: str = "") -> Iterator[tuple[str, FieldInfo, bool]]:
    """(dotted key, field, is a section) of every field whose json_schema_extra sets `marker`;
    a marked section is not entered."""
    for name, info in section.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        kind = info.annotation
        is_section = isinstance(kind, type) and issubclass(kind, BaseModel)
        if extra.get(marker):
            yield f"{prefix}{name}", info, is_section
        elif is_section:
            yield from _marked(marker, kind, f"{prefix}{name}.")


def resumable_keys() -> tuple[str, ...]:
    """Dotted keys (a section ends with '.') whose fields are marked RESUMABLE."""
    return tuple(f"{key}." if is_section else key for key, _, is_section in _marked("resumable"))


def later_keys() -> dict[str, Any]:
    """Dotted key -> default of the fields marked LATER (out of the hash at their default)."""
    return {key: info.default for key, info, _ in _marked("hashed_when_set")}


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def apply_overrides(tree: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set dotted keys (``train.epochs=2``); values are read as YAML (``[8, 16]``, ``null``, ``1e-3``)."""
    tree = copy.deepcopy(tree)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            value = text
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is a value, not a section")
            node = child
        node[leaf] = value
    return tree


def parse_config(tree: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config tree; errors list every bad key with its value and what is allowed."""
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as err:
        raise invalid(source, err) from None
    except KeyError as err:  # an unknown model or loss name
        raise ConfigError(f"invalid {source}: {err}") from None


def invalid(source: str, err: ValidationError) -> ConfigError:
    """One line naming every bad key of `source`, its value and what is allowed."""
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key (value {e['input']!r})")
        else:
            shown = "" if isinstance(e["input"], dict) else f" (got {e['input']!r})"
            problems.append(f"{key}: {e['msg'].replace(chr(10), ' ')}{shown}")
    return ConfigError(f"invalid {source}: " + "; ".join(problems))


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """A YAML file read with ``yaml.safe_load``; a missing or malformed file fails in one line."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a folder, not a YAML file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read an experiment config: a YAML file or a shipped recipe by name, plus overrides.

    The YAML is read with `yaml.safe_load`; its `base:` chain (a recipe name or another
    file) is merged under it, section by section, and the overrides are applied last.
    Every key and value is checked.

    Args:
        path: A recipe name (`"tiny"`, see `hybridunet recipes`) or a YAML path; None starts
            from the defaults.
        overrides: Dotted `section.key=value` strings, as on the command line
            (`"train.epochs=2"`, `"model.bottleneck=aspp"`).

    Returns:
        The validated config.

    Raises:
        hybridunet.errors.ConfigError: A missing file, invalid YAML, or an unknown key or bad
            value; the message names the file, the key, the value and what is allowed.

    Example:
        ```python
        from hybridunet.config import load_config

        config = load_config("tiny", ["model.name=hybrid_unet", "train.epochs=1"])
        ```
    """
    tree: dict[str, Any] = {}
    source = "overrides"
    if path is not None:
        source = str(path)
        tree = config_tree(path)
    return parse_config(apply_overrides(tree, overrides), source)


def config_tree(spec: str | Path, _chain: tuple[Path, ...] = (), _relative_to: Path | None = None) -> dict[str, Any]:
    """A config file (or recipe name) as a plain tree: the file's keys merged, section by
    section, over those of the recipe or file its ``base:`` names (a chain of them, no cycles)."""
    from hybridunet.recipes import resolve

    path = resolve(spec, _relative_to)
    if path.resolve() in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path.resolve()))
        raise ConfigError(f"{path}: base: makes a cycle ({cycle})")
    tree = read_yaml(path) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(tree).__name__}")
    base = tree.pop("base", None)
    if base is None:
        return tree
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base: expected a recipe name or a YAML path, got {base!r}")
    return merge_trees(config_tree(base, (*_chain, path.resolve()), path.parent), tree)


def merge_trees(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` over `base`: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_trees(merged[key], value)
        else:
            merged[key] = value
    return merged
