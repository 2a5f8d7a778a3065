"""python manage.py analyze_image IMAGE [IMAGE ...] --json: measure scalp photos (thin wrapper)."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from analysis import engine
from analysis.engine.segmentation import engine_threads


class Command(BaseCommand):
    help = "Measure hair in scalp photos and print one JSON object per image (a list when several)."

    def add_arguments(self, parser):
        parser.add_argument("images", nargs="+")
        parser.add_argument("--view", choices=engine.VIEWS, default="trichoscopy")
        parser.add_argument("--mm-per-px", type=float, default=None)
        parser.add_argument("--sex", choices=("male", "female"), default=None)
        parser.add_argument("--heatmap", default=None, help="PNG path (with several images: _N is appended)")
        parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")

    def handle(self, *args, **opts):
        engine_threads()
        images = []
        for path in opts["images"]:
            try:
                images.append(engine.decode_image(Path(path).read_bytes()))
            except (OSError, engine.BadImage) as exc:
                raise CommandError(f"{path}: {exc}") from exc
        n = len(images)
        results = engine.analyze_batch(
            images, views=[opts["view"]] * n, mm_per_px=[opts["mm_per_px"]] * n, sex=opts["sex"]
        )
        if opts["heatmap"]:
            for i, res in enumerate(results):
                out = (
                    Path(opts["heatmap"])
                    if n == 1
                    else Path(opts["heatmap"]).with_stem(f"{Path(opts['heatmap']).stem}_{i}")
                )
                out.write_bytes(res.heatmap_png())
        dicts = [r.to_dict() for r in results]
        self.stdout.write(json.dumps(dicts[0] if n == 1 else dicts))
