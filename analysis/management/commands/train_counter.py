"""python manage.py train_counter: train the hair-end counter on the segmenter's output."""

import logging
from pathlib import Path

from django.core.management.base import BaseCommand

from analysis.engine import segmentation, training


class Command(BaseCommand):
    help = (
        "Train the hair counter (end density per caliber bin) on the shipped segmenter's coverage "
        "maps of trichoscopy phantoms, and save counter.pt + counter.json next to the segmenter."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", default=str(segmentation.WEIGHTS_DIR))
        parser.add_argument("--images", type=int, default=400, help="phantom fields in the training pool")
        parser.add_argument("--steps", type=int, default=6000)
        parser.add_argument("--minutes", type=float, default=20.0, help="stop after this wall time")
        parser.add_argument("--batch-size", type=int, default=12)
        parser.add_argument("--threads", type=int, default=2)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--lr", type=float, default=3e-3)
        parser.add_argument("--init", default=None, help="fine-tune from this weights folder")
        parser.add_argument("--pool-cache", default=None, help="keep the generated pool in this .npz")

    def handle(self, *args, **opts):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        info = training.train_counter(
            out_dir=Path(opts["out"]),
            n_images=opts["images"],
            max_steps=opts["steps"],
            max_minutes=opts["minutes"],
            batch_size=opts["batch_size"],
            seed=opts["seed"],
            threads=opts["threads"],
            lr=opts["lr"],
            init_from=Path(opts["init"]) if opts["init"] else None,
            pool_cache=Path(opts["pool_cache"]) if opts["pool_cache"] else None,
        )
        self.stdout.write(f"trained: {info}")
