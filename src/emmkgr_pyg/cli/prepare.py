"""``emmkgr-prepare dataset=<name> [dataset.root=<dir>] out_dir=<dir>``: read, split, encode, write."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from ..data.prepared import prepare_dataset, save_prepared
from ..utils import markdown_table
from . import CONFIG_PATH, exit_on_user_error

log = logging.getLogger("emmkgr-prepare")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="prepare")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error("emmkgr-prepare"):
        ds, record = prepare_dataset(cfg.dataset, cfg.modality, cfg.cache_dir, progress=cfg.progress)
        out = save_prepared(ds, cfg.out_dir, record)
    stats = ds.stats()
    print(
        f"\n{stats['name']}: {stats['n_users']} users, {stats['n_items']} items, "
        f"{stats['n_interactions']} interactions; split {stats['splits']}; "
        f"read in {record['read_seconds']:.1f} s"
    )
    rows = [
        [
            m,
            s["dim"],
            s["n_items_with"],
            record["encode"][m]["encoder"]["class"],
            record["encode"][m]["seconds"],
            record["encode"][m]["cache_hit"],
        ]
        for m, s in stats["modalities"].items()
    ]
    print(markdown_table(["modality", "dim", "items with", "encoder", "seconds", "cached"], rows))
    print(f"wrote {out}/stats.json")


if __name__ == "__main__":
    main()
