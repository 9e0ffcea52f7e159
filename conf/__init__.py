"""Hydra configuration groups of emmkgr-pyg (shipped inside the package as ``emmkgr_pyg.conf``)."""
