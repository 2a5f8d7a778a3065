"""python manage.py evaluate_counter DIR: a trained hair-end counter against the hair graph on
the accuracy benchmark's trichoscopy fields (same seeds, same segmenter)."""

from pathlib import Path

import numpy as np
import torch
from django.core.management.base import BaseCommand

from analysis.engine import benchmark, counting, phantoms, pipeline
from analysis.engine.segmentation import load_segmenter


class Command(BaseCommand):
    help = "Compare a counter (counter.pt + counter.json in DIR) with the hair graph on benchmark phantoms."

    def add_arguments(self, parser):
        parser.add_argument("weights_dir")
        parser.add_argument("--n", type=int, default=30)
        parser.add_argument("--threads", type=int, default=2)

    def handle(self, *args, **opts):
        torch.set_num_threads(opts["threads"])
        seg = load_segmenter("cpu")
        model, cfg, _ = counting.load_counter_weights(Path(opts["weights_dir"]))
        counter = counting.Counter(model, cfg, "cpu")
        rows = []
        for i in range(opts["n"]):
            p = benchmark._hard_phantom(i, i) if i % 2 else phantoms.trichoscopy_phantom(i)
            prep = pipeline.prepare(p.image, "trichoscopy", p.mm_per_px)
            prob = np.where(prep.valid, seg.predict([prep.seg_input])[0], 0).astype(np.float32)
            c = counter.count(prob, prep.valid, p.mm_per_px)
            g = pipeline.measure(prep, prob, counter=None, with_heatmap=False).values
            t = p.truth
            rows.append(
                (
                    100 * (c.hairs - t["hair_count"]) / t["hair_count"],
                    100 * (g["hair_count"] - t["hair_count"]) / t["hair_count"],
                    abs((c.mean_caliber_um or 0) - t["mean_caliber_um"]),
                    abs((g["mean_caliber_um"] or 0) - t["mean_caliber_um"]),
                    abs((c.fraction_below(40) or 0) - t["vellus_fraction"]),
                    abs((g["vellus_fraction"] or 0) - t["vellus_fraction"]),
                )
            )
        r = np.array(rows)

        def q(a):
            return f"median {np.median(a):.2f}, p90 {np.percentile(a, 90):.2f}"

        w = self.stdout.write
        w(f"{opts['n']} benchmark fields, counter {cfg.version} from {opts['weights_dir']}")
        w(f"hair count error %:  counter {q(abs(r[:, 0]))}, bias {np.median(r[:, 0]):+.1f}")
        w(f"                     graph   {q(abs(r[:, 1]))}, bias {np.median(r[:, 1]):+.1f}")
        w(f"mean caliber error um: counter {q(r[:, 2])}; graph {q(r[:, 3])}")
        w(f"vellus fraction error: counter {q(r[:, 4])}; graph {q(r[:, 5])}")
