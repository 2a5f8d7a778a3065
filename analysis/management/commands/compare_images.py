"""python manage.py compare_images BASELINE FOLLOWUP --json: change on the registered overlap."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from analysis import engine
from analysis.engine.segmentation import engine_threads


class Command(BaseCommand):
    help = "Compare a follow-up photo with its baseline and print the changes as JSON."

    def add_arguments(self, parser):
        parser.add_argument("baseline")
        parser.add_argument("followup")
        parser.add_argument("--view", choices=engine.VIEWS, default="trichoscopy")
        parser.add_argument("--mm-per-px", type=float, default=None)
        parser.add_argument("--change-map", default=None, help="PNG path for the change map")
        parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")

    def handle(self, *args, **opts):
        engine_threads()
        try:
            base = engine.decode_image(Path(opts["baseline"]).read_bytes())
            foll = engine.decode_image(Path(opts["followup"]).read_bytes())
        except (OSError, engine.BadImage) as exc:
            raise CommandError(str(exc)) from exc
        cmp = engine.compare_images(base, foll, view=opts["view"], mm_per_px=opts["mm_per_px"])
        if opts["change_map"] and cmp.change_map_bgr is not None:
            Path(opts["change_map"]).write_bytes(cmp.change_map_png())
        self.stdout.write(json.dumps(cmp.to_dict()))
