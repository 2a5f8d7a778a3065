"""python manage.py train_segmenter: train the U-Net on phantoms and write the shipped weights."""

import logging
from pathlib import Path

from django.core.management.base import BaseCommand

from analysis.engine import segmentation, training


class Command(BaseCommand):
    help = "Train the hair segmenter on synthetic phantoms (fixed seed) and save weights + config."

    def add_arguments(self, parser):
        parser.add_argument("--out", default=str(segmentation.WEIGHTS_DIR))
        parser.add_argument("--images", type=int, default=400, help="phantoms in the training pool")
        parser.add_argument("--steps", type=int, default=4000)
        parser.add_argument("--minutes", type=float, default=18.0, help="stop after this wall time")
        parser.add_argument("--batch-size", type=int, default=10)
        parser.add_argument("--threads", type=int, default=2)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--init", default=None, help="fine-tune from this weights folder")
        parser.add_argument("--lr", type=float, default=3e-3)
        parser.add_argument(
            "--overview", action="store_true", help="train the phone-photo (overview views) network instead"
        )
        parser.add_argument(
            "--centre-lines",
            action="store_true",
            help="also charge the share of hair centre-line length missed (skeleton recall; experimental)",
        )

    def handle(self, *args, **opts):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        info = training.train(
            out_dir=Path(opts["out"]),
            n_images=opts["images"],
            max_steps=opts["steps"],
            max_minutes=opts["minutes"],
            batch_size=opts["batch_size"],
            seed=opts["seed"],
            threads=opts["threads"],
            init_from=Path(opts["init"]) if opts["init"] else None,
            lr=opts["lr"],
            overview=opts["overview"],
            centre_lines=opts["centre_lines"],
        )
        self.stdout.write(f"trained: {info}")
