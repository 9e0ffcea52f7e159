"""The Optuna sweeper of ``conf/tune`` (``emmkgr-train -m hparams_search=<model>``), resumable.

A Hydra plugin: Hydra instantiates sweepers only from the ``hydra_plugins`` namespace.

Hydra's Optuna sweeper reopens a study in its storage but then runs ``n_trials`` more. This one
reads ``n_trials`` as the study's budget: trials already finished in the storage (complete or
failed) count, so a sweep that is run again after an interruption only runs the rest, and job
numbers go on from the trials already there (a trial's folder is never overwritten). A trial that
fails (``emmkgr-train`` returns ``None`` and writes ``error.json``) is recorded as failed and
the search goes on (``max_failure_rate: 1.0`` in ``conf/tune``).

A search space made only of finite choices (every ``conf/hparams_search``) is searched with
:class:`ShuffledGridSampler`: ``n_trials`` distinct settings drawn at random without replacement
(the grid in an order shuffled once by ``hydra.sweeper.sampler.seed``; each trial takes the first
setting of that order not yet run), or the whole grid when it is smaller than the budget. Optuna's
own ``GridSampler`` picks with the global ``random`` module, which every trial re-seeds
(``seed_everything``: Hydra's basic launcher runs the trials in this process), so its picks were
neighbours on the grid (E-MMKGR's 12 Office trials differed in one or two of six parameters). TPE, the
sampler Hydra's plugin defaults to, spends its first 10 trials on random draws with replacement and
then proposed the best setting again: on Office, 2 of E-MMKGR's 12 trials repeated trial 7 and
FREEDOM's grid of 8 would have been drawn with repeats. Random search over distinct settings gives
every model the same number of distinct settings. A space with a range or an interval keeps the
configured sampler. Needs the ``tune`` extra.
"""

from __future__ import annotations

import functools
import logging
import math
import random
from pathlib import Path

log = logging.getLogger(__name__)

try:  # Hydra imports every hydra_plugins module at start-up: without the tune extra, stay silent
    import optuna
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:
    OptunaSweeper = object

SQLITE = "sqlite:///"


if OptunaSweeper is not object:

    class ShuffledGridSampler(optuna.samplers.GridSampler):
        """Optuna's ``GridSampler`` with its own random order: the grid shuffled once with
        ``seed``; each trial runs the first setting of that order not run yet. Unlike the parent's
        pick (the global ``random``), this ignores every re-seeding of global state, and a resumed
        study goes on along the same order."""

        def __init__(self, search_space: dict, seed: int | None = None) -> None:
            super().__init__(search_space)
            self._order = list(range(len(self._all_grids)))
            random.Random(seed).shuffle(self._order)

        def sample_relative(self, study, trial, search_space):  # noqa: ANN001, ANN201 (Optuna's)
            unvisited = set(self._get_unvisited_grid_ids(study))
            grid_id = next((g for g in self._order if g in unvisited), self._order[0])
            study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
            study._storage.set_trial_system_attr(trial._trial_id, "grid_id", grid_id)
            return {}

    class _ShuffledGridFactory(functools.partial):
        """What the plugin takes for a ``GridSampler`` factory (it tests ``sampler.func``) and
        calls with the grid; builds a :class:`ShuffledGridSampler`."""

        def __new__(cls, seed: int | None) -> _ShuffledGridFactory:
            self = super().__new__(cls, optuna.samplers.GridSampler)
            self.seed = seed
            return self

        def __call__(self, search_space: dict) -> ShuffledGridSampler:
            return ShuffledGridSampler(search_space, seed=self.seed)


def grid_size(params: list[str]) -> int | None:
    """The number of settings of a search space of ``key=choice(...)`` overrides; ``None`` when a
    parameter is not a finite choice (a range or an interval)."""
    distributions, _ = create_params_from_overrides(params)
    if not distributions or not all(
        isinstance(d, optuna.distributions.CategoricalDistribution) for d in distributions.values()
    ):
        return None
    return math.prod(len(d.choices) for d in distributions.values())


class ResumableOptunaSweeper(OptunaSweeper):
    """:class:`OptunaSweeper` whose ``n_trials`` is the study's total, not a number to add."""

    def sweep(self, arguments: list[str]) -> None:
        impl = self.sweeper
        size = grid_size([*impl._parse_sweeper_params_config(), *arguments])
        if size is not None:
            impl.n_trials = min(size, impl.n_trials)
            log.info("%d distinct settings of %d, drawn without replacement", impl.n_trials, size)
            seed = impl.config.hydra.sweeper.sampler.get("seed") if impl.config else None
            impl.sampler = _ShuffledGridFactory(seed)
        if isinstance(impl.storage, str) and impl.storage.startswith(SQLITE):
            # the sweep folder is made by the launcher, after the study is opened
            Path(impl.storage.removeprefix(SQLITE)).parent.mkdir(parents=True, exist_ok=True)
        if impl.storage is not None:
            try:
                study = optuna.load_study(study_name=impl.study_name, storage=impl.storage)
            except KeyError:  # a new study
                study = None
            if study is not None:
                finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
                done = sum(t.state in finished for t in study.trials)
                log.info("study %s: %d of %d trials finished", impl.study_name, done, impl.n_trials)
                impl.n_trials = max(impl.n_trials - done, 0)
                impl.job_idx = len(study.trials)
        return super().sweep(arguments)
