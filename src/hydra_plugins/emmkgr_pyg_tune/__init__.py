"""Hydra plugins of emmkgr-pyg: the resumable Optuna sweeper (``tune`` extra)."""
