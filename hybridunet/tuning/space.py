"""The search space: which config keys a study searches, and how Optuna samples and prunes.

Every key must be a config key that accepts each bound or choice; `load_search_space`
checks that by validating a config with each, before any trial runs.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hybridunet.config import ExperimentConfig, apply_overrides, invalid, parse_config, read_yaml
from hybridunet.errors import ConfigError


class ParamSpec(BaseModel):
    """One searched config key."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"a {self.type} parameter needs 'low' <= 'high' (got low={self.low}, high={self.high})")
        elif self.log and self.low <= 0:
            raise ValueError(f"a log-scale parameter needs low > 0 (got {self.low})")
        return self

    def suggest(self, trial: optuna.Trial, key: str) -> Any:
        if self.type == "float":
            return trial.suggest_float(key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(key, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        # Optuna stores only scalar choices; lists (e.g. widths) travel as their JSON text.
        encoded = [c if isinstance(c, (str, int, float, bool)) or c is None else json.dumps(c) for c in self.choices]
        picked = trial.suggest_categorical(key, encoded)
        return self.choices[encoded.index(picked)]


class SamplerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int | None = 0
    n_startup_trials: int = Field(5, ge=0)


class PrunerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Literal["median", "hyperband", "wilcoxon", "none"] = "median"
    n_startup_trials: int = Field(2, ge=0)
    n_warmup_steps: int = Field(1, ge=0)
    p_threshold: float = Field(0.1, gt=0, lt=1)  # wilcoxon: prune when worse than the best at this p


class SearchSpace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    params: dict[str, ParamSpec]

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=self.sampler.seed, n_startup_trials=self.sampler.n_startup_trials)

    def make_pruner(self) -> optuna.pruners.BasePruner:
        p = self.pruner
        if p.name == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps)
        if p.name == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1)
        if p.name == "wilcoxon":  # compares a trial's per-seed values with the best trial's, seed by seed
            with warnings.catch_warnings():  # "experimental" in Optuna 5; it is the pruner made for seeds
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.pruners.WilcoxonPruner(p_threshold=p.p_threshold, n_startup_steps=2)
        return optuna.pruners.NopPruner()


def load_search_space(path: str | Path, base: ExperimentConfig) -> SearchSpace:
    """Read and check a search space YAML against the config it will change.

    Every key must be a config key that accepts each bound or choice (checked by
    validating a config with it), so a typo fails before the study starts.

    Args:
        path: The YAML: per config key a `float` (optionally `log`), `int` or
            `categorical` range, and optionally `sampler` and `pruner`.
        base: The config the trials start from.

    Returns:
        The checked space.

    Raises:
        hybridunet.errors.ConfigError: The file, the entry and what is wrong with it.
    """
    path = Path(path)
    raw = read_yaml(path, "search space")
    try:
        space = SearchSpace.model_validate(raw)
    except ValidationError as err:
        raise invalid(f"search space {path}", err) from None
    tree = base.to_dict()
    for key, spec in space.params.items():
        samples = spec.choices if spec.type == "categorical" else [spec.low, spec.high]
        for value in samples:
            if spec.type == "int":
                value = int(value)
            try:
                parse_config(set_key(tree, key, value), "the config")
            except ConfigError as err:
                raise ConfigError(f"search space {path}: params.{key} = {value!r} does not fit the config "
                                  f"({str(err).removeprefix('invalid the config: ')})") from None
    return space


def set_key(tree: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of a config tree with the dotted `key` set to `value`."""
    return apply_overrides(tree, [f"{key}={json.dumps(value)}"])


def decode(spec: ParamSpec, value: Any) -> Any:
    """The config value of what Optuna stored (list choices travel as their JSON text)."""
    if spec.type != "categorical":
        return value
    for choice in spec.choices:
        if choice == value or (not isinstance(choice, (str, int, float, bool)) and json.dumps(choice) == value):
            return choice
    return value
