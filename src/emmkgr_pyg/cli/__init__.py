"""The Hydra applications behind the console scripts (configs from ``emmkgr_pyg.conf``)."""

CONFIG_PATH = "pkg://emmkgr_pyg.conf"
