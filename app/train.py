"""``mum-train``: MuM pretraining and distillation finetuning (``torchrun``-ready).

Examples::

    mum-train pretrain --config configs/pretrain_tiny.yaml
    mum-train pretrain --config configs/pretrain_tiny.yaml --set optim.base_lr=3e-4 --set run.steps=50
    torchrun --nproc_per_node 2 -m app.train distill --config configs/distill_tiny.yaml

Re-running the same command resumes exactly from the latest checkpoint in ``run.out_dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from mum.errors import OneLineArgumentParser, UserError


def build_parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(prog="mum-train", description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=["pretrain", "distill"], help="training stage")
    p.add_argument("--config", help="YAML preset (configs/*.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. optim.lr=1e-3 (repeatable)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p


def make_task(stage: str, config: Optional[str], overrides: Sequence[str]):
    """The task object for ``stage`` with its resolved config."""
    from mum.training.config import load_config

    if stage == "pretrain":
        from mum.pretrain import PretrainConfig, PretrainTask

        return PretrainTask(load_config(PretrainConfig, config, overrides))
    from heads.distill import DistillConfig, DistillTask

    return DistillTask(load_config(DistillConfig, config, overrides))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        task = make_task(args.stage, args.config, args.overrides)
        if args.print_config:
            import yaml

            print(yaml.safe_dump(task.config_dict(), sort_keys=False))
            return 0
        from mum.training import distributed
        from mum.training.loop import train

        try:
            result = train(task)
        finally:
            distributed.teardown()
        print(json.dumps(result, indent=2))
        return 0
    except UserError as exc:
        print(f"mum-train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mum-train: interrupted; re-run the same command to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
