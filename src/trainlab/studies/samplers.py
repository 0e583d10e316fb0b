"""Samplers a search may name: Optuna's, plus a grid over conditional spaces and evolution.

`grid`, `random`, `tpe` (the seeds' Bayesian optimization), `gp`, `cmaes`, `nsga2` wrap
Optuna's samplers. Two are ours: `grid` visits the distinct valid points of a space with
conditional keys (Optuna's GridSampler would visit the cross product, repeating points
whose conditional keys are inactive), and `evolution` is regularized (ageing) evolution
(Real et al. 2019), which no maintained library ships as an Optuna sampler.

Both keep their state in the study's storage, not in the process, so several workers and
a resumed study share one population / one grid.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from pydantic import Field

from trainlab.errors import RecipeError
from trainlab.params import StrictModel
from trainlab.registry import NoParams, Registry
from trainlab.studies.space import SearchSpace


@dataclass
class SamplerContext:
    """What a sampler builder may need besides its own parameters."""

    space: SearchSpace
    seed: int  # differs per worker and per resumption
    n_objectives: int = 1
    base_seed: int = 0  # the study's seed: the same in every worker


SAMPLERS: Registry = Registry("sampler")


class IndependentSampler(BaseSampler):
    """A sampler that decides every parameter on its own in `sample_independent`."""

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """No relative search space: nothing is sampled jointly."""
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Nothing is sampled jointly."""
        return {}


class GridPointSampler(IndependentSampler):
    """Visits each point of an explicit list once, across workers and resumed runs.

    Trial number n < len(points) takes point n (trial numbers are unique in a study, so
    concurrent workers never take the same point); later trials take a point no finished
    or running trial holds. A retried trial (fixed params) keeps its point.
    """

    GRID_KEY = "trainlab:grid_id"
    SIZE_KEY = "trainlab:grid_size"

    def __init__(self, points: list[dict[str, Any]], seed: int = 0) -> None:
        if not points:
            raise RecipeError("search space: the grid has no points")
        # Shuffled with the study's seed (the same in every worker) so a budget smaller
        # than the grid still spreads over the space, and trial n means one point everywhere.
        order = np.random.default_rng(seed).permutation(len(points))
        self.points = [points[int(i)] for i in order]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Assign this trial its grid point (stored in the trial's system attributes)."""
        if "fixed_params" in trial.system_attrs or self.GRID_KEY in trial.system_attrs:
            return
        taken = self._taken(study)
        if trial.number < len(self.points) and trial.number not in taken:
            grid_id = trial.number
        else:
            free = sorted(set(range(len(self.points))) - taken)
            if not free:
                study.stop()
                free = list(range(len(self.points)))
            grid_id = int(free[0])
        storage = study._storage
        storage.set_trial_system_attr(trial._trial_id, self.GRID_KEY, grid_id)
        storage.set_trial_system_attr(trial._trial_id, self.SIZE_KEY, len(self.points))

    def _taken(self, study: optuna.Study) -> set[int]:
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        return {
            int(t.system_attrs[self.GRID_KEY])
            for t in trials
            if self.GRID_KEY in t.system_attrs
            and (t.state.is_finished() or t.state == TrialState.RUNNING)
        }

    def remaining(self, study: optuna.Study) -> int:
        """Points no trial has taken yet."""
        return len(self.points) - len(self._taken(study))

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """The value of `param_name` at this trial's grid point."""
        grid_id = trial.system_attrs.get(self.GRID_KEY)
        point = self.points[int(grid_id)] if grid_id is not None else {}
        if param_name not in point:
            raise RecipeError(
                f"grid point {grid_id} has no value for '{param_name}'; was the search space "
                "changed while the study ran? use a new --study"
            )
        return point[param_name]

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """Stop the worker once every point is taken."""
        if self.remaining(study) <= 0:
            study.stop()


class RegularizedEvolutionSampler(IndependentSampler):
    """Regularized (ageing) evolution, Real et al. 2019, as an Optuna sampler.

    The population is the `population` most recently finished (complete) trials — each
    new child pushes the oldest out, which is the ageing that regularizes the search.
    Until the population is full, trials are random. Then each trial samples
    `sample_size` members at random (a tournament), takes the best as parent, and copies
    its parameters with exactly one of them mutated to a new random value. Keys that
    become active only because of the mutation (e.g. momentum after optimizer → sgd) are
    drawn at random.

    The parent and the mutated key are recorded on the trial, so the lineage is visible
    in the dashboard and several workers share one population through the storage.
    """

    PARENT_KEY = "trainlab:evolution_parent"
    MUTATE_KEY = "trainlab:evolution_mutate"

    def __init__(self, population: int = 10, sample_size: int = 3, seed: int | None = None):
        if population < 2 or not 1 <= sample_size <= population:
            raise RecipeError(
                "sampler evolution: need population >= 2 and 1 <= sample_size <= population "
                f"(got population={population}, sample_size={sample_size})"
            )
        self.population = population
        self.sample_size = sample_size
        self._rng = np.random.default_rng(seed)
        self._random = RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        """Fresh randomness for a forked worker."""
        self._rng = np.random.default_rng()
        self._random.reseed_rng()

    def members(self, study: optuna.Study) -> list[FrozenTrial]:
        """The current population: the newest `population` complete trials, oldest first."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        done.sort(key=lambda t: (t.datetime_complete or t.datetime_start, t.number))
        return done[-self.population :]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Pick the parent by tournament and the key to mutate; record both on the trial."""
        if study._is_multi_objective():
            raise RecipeError(
                "sampler evolution optimizes one objective; use nsga2 for several objectives"
            )
        if "fixed_params" in trial.system_attrs:
            return
        members = self.members(study)
        if len(members) < self.population:
            return
        picks = self._rng.choice(len(members), size=self.sample_size, replace=False)
        contenders = [members[int(i)] for i in picks]
        maximize = study.direction == StudyDirection.MAXIMIZE
        parent = (max if maximize else min)(contenders, key=lambda t: t.value)
        keys = sorted(parent.params)
        mutate = keys[int(self._rng.integers(len(keys)))] if keys else None
        storage = study._storage
        storage.set_trial_system_attr(trial._trial_id, self.PARENT_KEY, parent.number)
        storage.set_trial_system_attr(trial._trial_id, self.MUTATE_KEY, mutate)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """Parent's value, a mutated value for the chosen key, or random when no parent."""
        parent_number = trial.system_attrs.get(self.PARENT_KEY)
        if parent_number is None:
            return self._random.sample_independent(study, trial, param_name, param_distribution)
        parent = study._storage.get_trial(
            study._storage.get_trial_id_from_study_id_trial_number(
                study._study_id, int(parent_number)
            )
        )
        inherited = parent.params.get(param_name)
        same_dist = parent.distributions.get(param_name) == param_distribution
        if param_name != trial.system_attrs.get(self.MUTATE_KEY) and same_dist:
            return inherited
        if not same_dist:
            return self._random.sample_independent(study, trial, param_name, param_distribution)
        return self._mutate(study, trial, param_name, param_distribution, inherited)

    def _mutate(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        name: str,
        dist: BaseDistribution,
        current: Any,
    ) -> Any:
        if isinstance(dist, CategoricalDistribution):
            others = [c for c in dist.choices if c != current]
            return others[int(self._rng.integers(len(others)))] if others else current
        for _ in range(16):  # a different value, unless the range holds only one
            value = self._random.sample_independent(study, trial, name, dist)
            if value != current:
                return value
        return current


class SeedOnly(StrictModel):
    """Samplers whose only option is the seed trainlab passes."""


class TPEParams(StrictModel):
    """Options of `tpe`."""

    n_startup_trials: int = Field(5, ge=0)
    multivariate: bool = True


class GPParams(StrictModel):
    """Options of `gp`."""

    n_startup_trials: int = Field(5, ge=0)


class CmaEsParams(StrictModel):
    """Options of `cmaes`."""

    n_startup_trials: int = Field(1, ge=0)
    popsize: int | None = Field(None, ge=2)


class EvolutionParams(StrictModel):
    """Options of `evolution`: population size and tournament sample size."""

    population: int = Field(10, ge=2)
    sample_size: int = Field(3, ge=1)


class NSGA2Params(StrictModel):
    """Options of `nsga2`."""

    population_size: int = Field(20, ge=2)


@SAMPLERS.register(
    "grid", description="Every distinct point of the space once (needs finite values)"
)
def _grid(p: NoParams, ctx: SamplerContext) -> BaseSampler:
    return GridPointSampler(ctx.space.grid_points(), seed=ctx.base_seed)


@SAMPLERS.register("random", description="Independent uniform (or log-uniform) draws")
def _random(p: NoParams, ctx: SamplerContext) -> BaseSampler:
    return RandomSampler(seed=ctx.seed)


@SAMPLERS.register(
    "tpe",
    description="Tree-structured Parzen estimator: Bayesian optimization, handles conditions",
    params=TPEParams,
)
def _tpe(p: TPEParams, ctx: SamplerContext) -> BaseSampler:
    return optuna.samplers.TPESampler(
        seed=ctx.seed,
        n_startup_trials=p.n_startup_trials,
        multivariate=p.multivariate,
        group=p.multivariate,
        constant_liar=True,
    )


@SAMPLERS.register(
    "gp", description="Gaussian-process Bayesian optimization (continuous spaces)", params=GPParams
)
def _gp(p: GPParams, ctx: SamplerContext) -> BaseSampler:
    return optuna.samplers.GPSampler(
        seed=ctx.seed, n_startup_trials=p.n_startup_trials, warn_independent_sampling=False
    )


@SAMPLERS.register(
    "cmaes",
    description="CMA evolution strategy over numeric keys (categorical keys drawn at random)",
    params=CmaEsParams,
    single_objective=True,
)
def _cmaes(p: CmaEsParams, ctx: SamplerContext) -> BaseSampler:
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise RecipeError("sampler cmaes needs the 'cmaes' package: pip install cmaes") from None
    return optuna.samplers.CmaEsSampler(
        seed=ctx.seed,
        n_startup_trials=p.n_startup_trials,
        popsize=p.popsize,
        warn_independent_sampling=False,
    )


@SAMPLERS.register(
    "evolution",
    description="Regularized (ageing) evolution, Real et al. 2019: tournament + one mutation",
    params=EvolutionParams,
    single_objective=True,
)
def _evolution(p: EvolutionParams, ctx: SamplerContext) -> BaseSampler:
    return RegularizedEvolutionSampler(p.population, p.sample_size, seed=ctx.seed)


@SAMPLERS.register(
    "nsga2", description="NSGA-II genetic algorithm for several objectives", params=NSGA2Params
)
def _nsga2(p: NSGA2Params, ctx: SamplerContext) -> BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=ctx.seed, population_size=p.population_size)


def build_sampler(name: str, options: dict[str, Any] | None, ctx: SamplerContext) -> BaseSampler:
    """The sampler called `name` with validated `options`; RecipeError on a bad name/option."""
    entry = SAMPLERS.get(name, "--sampler")
    if ctx.n_objectives > 1 and entry.metadata.get("single_objective"):
        raise RecipeError(
            f"sampler {name} optimizes one objective; use nsga2, tpe, random or grid for "
            f"{ctx.n_objectives} objectives"
        )
    params = entry.validate_params(dict(options or {}), f"sampler {name}")
    with warnings.catch_warnings():  # TPE's `group`, GP: flagged experimental by Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return entry.builder(params, ctx)
