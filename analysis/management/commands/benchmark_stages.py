"""Per-stage CPU time of one photo's analysis, the work around the network included.

    python manage.py benchmark_stages                 # 1280×1024 trichoscopy phantom, 5 repeats
    python manage.py benchmark_stages --repeats 3 --size 1280x1024 --json

Every stage is timed with ``time.process_time`` (CPU time of this process, all threads) with torch,
OpenMP and OpenCV limited to one thread, so the numbers mean "ms of one core" and hold up on a
machine shared with other jobs, where wall time does not. The medians over ``--repeats`` are printed.

The stages are the ones a worker runs for one follow-up photo: decode the stored JPEG, the engine's
``prepare`` (quality gate, device-overlay mask), ``preprocess`` and the network (CPU here; on a GPU
worker the network is the GPU's share), the hair graph and the rest of ``measure``, the heatmap JPEG
and the coverage PNG, and the comparison with the baseline exactly as ``analysis.pipeline.Pipeline`` does it in
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
        parser.add_argument("--throughput", type=int, default=0, metavar="N",
                            help="Instead: push N follow-up photos through the worker's path (no database) with "
                                 "--processes × --threads on --device, and print images/s and per-stage ms.")
        parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (--throughput).")
        parser.add_argument("--processes", type=int, default=1, help="--throughput: worker processes.")
        parser.add_argument("--threads", type=int, default=1, help="--throughput: threads per process.")
        parser.add_argument("--batch-size", type=int, default=16, help="--throughput: images per shared pass.")
        parser.add_argument("--compare", action="store_true",
                            help="--throughput: compare each photo with its baseline too (the follow-up visit case).")

    def handle(self, *args, **opts):
        width, height = (int(v) for v in opts["size"].lower().split("x"))
        if opts["throughput"]:
            result = throughput(opts["throughput"], opts["device"], max(1, opts["processes"]),
                                max(1, opts["threads"]), opts["batch_size"], opts["compare"], (width, height))
            result["load_average"] = [round(v, 1) for v in os.getloadavg()]
            self.stdout.write(json.dumps(result) if opts["json"] else _throughput_text(result))
            return
        _one_thread()
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


def _throughput_text(r: dict) -> str:
    lines = [f"{r['photos']} photos on {r['device']}, {r['processes']} process(es) × {r['threads']} thread(s), "
             f"batches up to {r['batch_size']}, comparison {'on' if r['compare'] else 'off'}",
             f"  images/s:           {r['images_per_s']}  (wall incl. start-up {r['wall_s_incl_start']} s)",
             f"  CPU ms per photo:   {r['cpu_ms_per_photo']}  (all processes' CPU time ÷ photos)",
             f"  forward passes of:  {r['forward_batches']} images"]
    lines += [f"  {k:<50} {v:8.1f}" for k, v in r["median_ms"].items()]
    return "\n".join(lines + [f"  load average {r['load_average']}"])


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
    from analysis.engine import heatmaps, metrics, registration, segmentation
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
    base_prob = seg.predict([base_prep.seg_input])[0]
    base_cov_png = worker_pipeline.coverage_png(base_prob)
    descriptors = [registration.features(prob)[1] for prob in (foll_prob, base_prob)]
    # In the worker calls the network is replaced by its output, as a GPU pass would hand it over.
    pipe.segmenter.inner = _Replay(seg, prep.seg_input, foll_prob)
    for _ in range(repeats):
        img = clock.time("decode", engine_pipeline.decode_image, foll_jpeg)
        clock.time("decode, torchvision (GPU path, on CPU)", worker_pipeline._decode_jpegs_torch, [foll_jpeg], "cpu")
        p = clock.time("prepare (quality gate, overlay mask)", engine_pipeline.prepare, img, "trichoscopy", MM_PER_PX)
        clock.time("preprocess (inside predict)", segmentation.preprocess, p.seg_input)
        clock.time("  of it: channel means (CPU on a GPU)", segmentation.channel_means, p.seg_input)
        if with_network:
            clock.time("network: predict() on CPU", seg.predict, [p.seg_input])
        prob = np.where(p.valid, foll_prob, 0).astype(np.float32)
        clock.time("hair graph", metrics.build_hair_graph, prob, p.mm_per_px_work)
        clock.time("measure without heatmap", engine_pipeline.measure, p, foll_prob, with_heatmap=False)
        heat = clock.time("heatmap render", heatmaps.coverage_heatmap, p.work, prob, p.mm_per_px_work, p.valid)
        clock.time("heatmap JPEG", heatmaps.to_jpeg, heat)
        clock.time("coverage PNG (worker)", worker_pipeline.coverage_png, foll_prob)
        clock.time("registration (coverage maps)", registration.register, base_prob, foll_prob)
        clock.time("  of it: matching (GPU on a GPU worker)", registration.ratio_matches, *descriptors)
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


# ---------------------------------------------------------------- throughput (GPU check)


def throughput(n, device, processes, threads, batch_size, compare, size=(1280, 1024)) -> dict:
    """N follow-up photos through what a GPU worker does per message, without database or broker:
    decode (nvJPEG on CUDA), analyse (shared batched network, metrics, heatmap JPEG, coverage PNG) and, with
    `compare`, the comparison with the baseline from its stored coverage map. `processes` ×
    `threads` like ``analysis_worker --gpu --processes P --threads T``; one photo per message."""
    import multiprocessing

    pairs = _pairs_for_throughput(size)
    started = time.perf_counter()
    if processes == 1:
        parts = [_throughput_process(pairs, list(range(n)), device, threads, batch_size, compare)]
    else:
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager, context.Pool(processes, initializer=_child_setup) as pool:
            ready = manager.Barrier(processes)  # the clock starts when every process has loaded its model
            jobs = [(pairs, list(range(i, n, processes)), device, threads, batch_size, compare, ready)
                    for i in range(processes)]
            parts = pool.starmap(_throughput_process, jobs)
    wall = time.perf_counter() - started
    samples: dict[str, list[float]] = {}
    for part in parts:
        for key, values in part["samples"].items():
            samples.setdefault(key, []).extend(values)
    done = sum(part["photos"] for part in parts)
    timed = max(part["last"] for part in parts) - min(part["first"] for part in parts)
    return {
        "device": device, "photos": done, "processes": processes, "threads": threads, "batch_size": batch_size,
        "compare": compare, "images_per_s": round(done / timed, 1) if timed > 0 else None,
        "wall_s_incl_start": round(wall, 1),
        "cpu_ms_per_photo": round(sum(part["cpu_s"] for part in parts) / max(done, 1) * 1000, 1),
        "median_ms": {k: round(statistics.median(v), 1) for k, v in sorted(samples.items())},
        "forward_batches": sorted({b for part in parts for b in part["batches"]}),
    }


def _child_setup():
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clinic.settings")
    django.setup()


def _pairs_for_throughput(size) -> list[tuple[bytes, bytes]]:
    """Four scalps, each as a baseline JPEG and a follow-up JPEG (10% of the hairs lost)."""
    return [_photo_pair(seed, *size) for seed in range(4)]


def _throughput_process(pairs, indices, device, threads, batch_size, compare, ready=None) -> dict:
    import threading

    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    from analysis import pipeline as worker_pipeline
    from analysis.batching import forward_batch_sizes, share_segmenter

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    pipe = worker_pipeline.Pipeline(device, batch_size)
    if threads > 1:
        share_segmenter(pipe)
    settings = worker_pipeline.Settings(view="trichoscopy", mm_per_px=MM_PER_PX, sex=None)
    # The baselines were analysed in earlier messages: their coverage maps are stored.
    baselines = []
    for base_jpeg, _ in pairs:
        image = worker_pipeline.decode(base_jpeg)
        baselines.append((base_jpeg, pipe.analyze([image], [settings])[0].mask_png))
    samples: dict[str, list[float]] = {}
    batches: set[int] = set()
    lock = threading.Lock()
    local = threading.local()
    predict = pipe.segmenter.predict

    def timed_predict(images, **kwargs):
        t = time.perf_counter()
        try:
            return predict(images, **kwargs)
        finally:
            local.network = getattr(local, "network", 0.0) + time.perf_counter() - t

    pipe.segmenter.predict = timed_predict
    todo = list(indices)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    if ready is not None:
        ready.wait()
    cpu0, first = time.process_time(), time.perf_counter()

    def work():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            base_jpeg, coverage_png = baselines[i % len(pairs)]
            seen = {}
            with pipe.scope():
                forward_batch_sizes()
                t0, c0 = time.perf_counter(), time.thread_time()
                image = pipe.decode_many([pairs[i % len(pairs)][1]])[0]
                t1, c1 = time.perf_counter(), time.thread_time()
                local.network = 0.0
                pipe.analyze([image], [settings])
                t2, c2 = time.perf_counter(), time.thread_time()
                seen.update({"decode wall": t1 - t0, "decode CPU": c1 - c0, "analyse wall": t2 - t1,
                             "analyse CPU": c2 - c1, "network wall (waiting for the shared pass)": local.network})
                if compare:
                    earlier = worker_pipeline.decode(base_jpeg)
                    pipe.compare(earlier, image, settings, baseline_coverage_png=coverage_png)
                    t3, c3 = time.perf_counter(), time.thread_time()
                    seen.update({"compare wall": t3 - t2, "compare CPU": c3 - c2})
            with lock:
                for key, value in seen.items():
                    samples.setdefault(key + " (ms)", []).append(value * 1000)
                batches.update(forward_batch_sizes())

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    last = time.perf_counter()
    return {"samples": samples, "photos": len(indices), "first": first, "last": last,
            "cpu_s": time.process_time() - cpu0, "batches": sorted(batches)}
