"""Every config group composes, and every ``_target_`` in it instantiates."""

import inspect
from pathlib import Path

import emmkgr_pyg.conf
import pytest
from hydra import compose, initialize_config_module
from hydra.utils import get_class, instantiate

from emmkgr_pyg.nn import Recommender

CONF = Path(emmkgr_pyg.conf.__file__).parent


# the generic dataset configs leave what the user must give as ??? (mandatory)
MANDATORY = {"dataset=lcrec_json": ["dataset.reader.stem=Toy"], "dataset=mmrec": ["dataset.name=toy"]}


def _options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["dataset", "modality", "graph", "train", "model", "experiment"])
def test_every_option_composes_and_instantiates(group):
    assert _options(group), f"conf/{group} is empty"
    for option in _options(group):
        override = f"+experiment={option}" if group == "experiment" else f"{group}={option}"
        extra = MANDATORY.get(override, [])
        with initialize_config_module(config_module="emmkgr_pyg.conf", version_base="1.3"):
            cfg = compose(config_name="train", overrides=[override, "dataset.root=/nowhere", *extra])
        if group == "dataset" or group == "experiment":
            instantiate(cfg.dataset.reader)
        if group in ("modality", "experiment"):
            for key in ("text_encoder", "image_encoder"):
                if cfg.modality.get(key) is not None:
                    instantiate(cfg.modality[key])
        if group == "graph":
            instantiate(cfg.graph.knn)
        if group in ("model", "experiment"):
            cls = get_class(cfg.model.net._target_)
            assert issubclass(cls, Recommender)
            kwargs = {k: v for k, v in cfg.model.net.items() if k != "_target_"}
            # a misspelt key in the yaml fails to bind to the model's signature
            inspect.signature(cls).bind(inter=None, kg=None, **kwargs)
        if group == "train":
            from emmkgr_pyg.runs import train_config

            assert train_config(cfg).epochs > 0


@pytest.mark.parametrize("root", ["prepare", "build_graph", "train"])
def test_root_configs_compose(root):
    with initialize_config_module(config_module="emmkgr_pyg.conf", version_base="1.3"):
        cfg = compose(config_name=root)
    assert cfg.dataset.name == "synthetic"
