"""The Optuna sweeper of ``conf/tune`` (``emmkgr-train -m hparams_search=<model>``), resumable.

A Hydra plugin: Hydra instantiates sweepers only from the ``hydra_plugins`` namespace.

Hydra's Optuna sweeper reopens a study in its storage but then runs ``n_trials`` more. This one
reads ``n_trials`` as the study's budget: trials already finished in the storage (complete or
failed) count, so a sweep that is run again after an interruption only runs the rest, and job
numbers go on from the trials already there (a trial's folder is never overwritten). A trial that
fails (``emmkgr-train`` returns ``None`` and writes ``error.json``) is recorded as failed and
the search goes on (``max_failure_rate: 1.0`` in ``conf/tune``). Needs the ``tune`` extra.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

try:  # Hydra imports every hydra_plugins module at start-up: without the tune extra, stay silent
    import optuna
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
except ImportError:
    OptunaSweeper = object

SQLITE = "sqlite:///"


class ResumableOptunaSweeper(OptunaSweeper):
    """:class:`OptunaSweeper` whose ``n_trials`` is the study's total, not a number to add."""

    def sweep(self, arguments: list[str]) -> None:
        impl = self.sweeper
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
