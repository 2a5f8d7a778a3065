"""Per-stage CPU time of one photo's analysis, the work around the network included.

    python manage.py benchmark_stages                 # 1280×1024 trichoscopy phantom, 5 repeats
    python manage.py benchmark_stages --repeats 3 --size 1280x1024 --json

Every stage is timed with ``time.process_time`` (CPU time of this process, all threads) with torch,
OpenMP and OpenCV limited to one thread, so the numbers mean "ms of one core" and hold up on a
machine shared with other jobs, where wall time does not. The medians over ``--repeats`` are printed.

The stages are the ones a worker runs for one follow-up photo: decode the stored JPEG, the engine's
``prepare`` (quality gate, device-overlay mask), ``preprocess`` and the network (CPU here; on a GPU
worker the network is the GPU's share), the hair graph and the rest of ``measure``, the heatmap and
both PNGs, and the comparison with the baseline exactly as ``analysis.pipeline.Pipeline`` does it in
a worker (earlier photo read again, its stored coverage map reused, so no network pass). The
``worker analyse`` and ``worker compare`` lines time the real worker calls with the network's output
taken from the per-message cache: their sum plus decode is the CPU cost per photo around the network.
No database is touched.
"""

import json
import os
import statistics
import time

import cv2
import numpy as np
from django.core.management.base import BaseCommand

MM_PER_PX = 0.006  # benchmark_workers' clinic scale


class Command(BaseCommand):
    help = "Per-stage CPU ms (process_time, 1 thread) of analysing and comparing one trichoscopy photo."

    def add_arguments(self, parser):
        parser.add_argument("--size", default="1280x1024", help="WxH of the synthetic trichoscopy JPEG.")
        parser.add_argument("--repeats", type=int, default=5)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--no-network", action="store_true",
                            help="Skip timing the network itself (slow on CPU); its output is computed once.")
        parser.add_argument("--json", action="store_true", help="Print the medians as JSON.")

    def handle(self, *args, **opts):
        _one_thread()
        width, height = (int(v) for v in opts["size"].lower().split("x"))
        base_jpeg, foll_jpeg = _photo_pair(opts["seed"], width, height)
        stages = _time_stages(base_jpeg, foll_jpeg, max(1, opts["repeats"]), not opts["no_network"])
        med = {k: statistics.median(v) for k, v in stages.items()}
        around = med["decode"] + med["worker analyse (network cached)"] + med["worker compare"]
        if opts["json"]:
            self.stdout.write(json.dumps({"size": [width, height], "repeats": opts["repeats"],
                                          "median_cpu_ms": {k: round(v, 1) for k, v in med.items()},
                                          "around_network_cpu_ms": round(around, 1),
                                          "load_average": os.getloadavg()}))
            return
        self.stdout.write(f"one {width}x{height} trichoscopy JPEG, median CPU ms (process_time, 1 thread) "
                          f"of {opts['repeats']} repeats; load average {_load()}")
        for name, value in med.items():
            spread = f"{min(stages[name]):8.1f} – {max(stages[name]):.1f}"
            self.stdout.write(f"  {name:<40} {value:8.1f}   ({spread})")
        self.stdout.write(f"  {'= around the network per photo':<40} {around:8.1f}   "
                          "(decode + worker analyse + worker compare)")


def _one_thread():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _load() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


def _photo_pair(seed, width, height) -> tuple[bytes, bytes]:
    """A baseline phantom and a follow-up of the same scalp (10% of the hairs lost, new light, moved)."""
    from analysis.engine import phantoms

    base = phantoms.trichoscopy_phantom(seed, size_px=(width, height), mm_per_px=MM_PER_PX)
    foll = phantoms.follow_up(base, seed + 1, change_fraction=-0.1, strength=0.5)
    return _jpeg(base.image), _jpeg(foll.image)


def _jpeg(image) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return encoded.tobytes()


class _Clock:
    def __init__(self):
        self.samples: dict[str, list[float]] = {}

    def time(self, name, fn, *args, **kwargs):
        t0 = time.process_time()
        out = fn(*args, **kwargs)
        self.samples.setdefault(name, []).append((time.process_time() - t0) * 1000)
        return out


def _time_stages(base_jpeg, foll_jpeg, repeats, with_network) -> dict[str, list[float]]:
    from analysis import pipeline as worker_pipeline
    from analysis.engine import heatmaps, metrics, segmentation
    from analysis.engine import pipeline as engine_pipeline

    settings = worker_pipeline.Settings(view="trichoscopy", mm_per_px=MM_PER_PX, sex=None)
    pipe = worker_pipeline.Pipeline("cpu", batch_size=1)
    seg = pipe.segmenter.inner
    clock = _Clock()
    # The network's outputs once, untimed: the stages after it run on them.
    foll_img = engine_pipeline.decode_image(foll_jpeg)
    base_img = engine_pipeline.decode_image(base_jpeg)
    prep = engine_pipeline.prepare(foll_img, "trichoscopy", MM_PER_PX)
    foll_prob = seg.predict([prep.seg_input])[0]
    base_prep = engine_pipeline.prepare(base_img, "trichoscopy", MM_PER_PX)
    base_cov_png = worker_pipeline.coverage_png(seg.predict([base_prep.seg_input])[0])
    # In the worker calls the network is replaced by its output, as a GPU pass would hand it over.
    pipe.segmenter.inner = _Replay(seg, prep.seg_input, foll_prob)
    for _ in range(repeats):
        img = clock.time("decode", engine_pipeline.decode_image, foll_jpeg)
        clock.time("decode, torchvision (GPU path, on CPU)", worker_pipeline._decode_jpegs_torch, [foll_jpeg], "cpu")
        p = clock.time("prepare (quality gate, overlay mask)", engine_pipeline.prepare, img, "trichoscopy", MM_PER_PX)
        clock.time("preprocess (inside predict)", segmentation.preprocess, p.seg_input)
        if with_network:
            clock.time("network: predict() on CPU", seg.predict, [p.seg_input])
        prob = np.where(p.valid, foll_prob, 0).astype(np.float32)
        clock.time("hair graph", metrics.build_hair_graph, prob, p.mm_per_px_work)
        clock.time("measure without heatmap", engine_pipeline.measure, p, foll_prob, with_heatmap=False)
        heat = clock.time("heatmap render", heatmaps.coverage_heatmap, p.work, prob, p.mm_per_px_work, p.valid)
        clock.time("heatmap PNG", heatmaps.to_png, heat)
        clock.time("coverage PNG (worker)", worker_pipeline.coverage_png, foll_prob)
        with pipe.scope():
            clock.time("worker analyse (network cached)", pipe.analyze, [img], [settings])
            clock.time("worker compare", _worker_compare, pipe, base_jpeg, base_cov_png, img, settings)
    samples = clock.samples
    samples["rest of measure"] = [
        m - g for m, g in zip(samples.pop("measure without heatmap"), samples["hair graph"], strict=True)
    ]
    return samples


def _worker_compare(pipe, base_jpeg, base_cov_png, foll_img, settings):
    """What analysis.processing._compare_one does for one earlier photo with a stored coverage map."""
    from analysis import pipeline as worker_pipeline

    earlier = worker_pipeline.decode(base_jpeg)
    return pipe.compare(earlier, foll_img, settings, baseline_coverage_png=base_cov_png)


class _Replay:
    """The network's output for the follow-up photo, handed back without running the network."""

    def __init__(self, inner, network_input, coverage):
        self.device, self.model_version = inner.device, inner.model_version
        self.network_input, self.coverage = network_input, coverage

    def predict(self, images, **kwargs):
        if len(images) != 1 or not np.array_equal(images[0][::61, ::67], self.network_input[::61, ::67]):
            raise RuntimeError("benchmark_stages: the worker asked the network for an unexpected image")
        return [self.coverage.copy()]
