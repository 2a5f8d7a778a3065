"""The GPU worker's pieces, exercised on CPU: batched JPEG decoding through torchvision (nvJPEG on
CUDA), forward passes shared across worker threads, and coverage maps reused within a message."""

import threading
import time

import numpy as np
import pytest

from analysis import pipeline
from analysis.batching import BatchingSegmenter
from tests.workers.helpers import phantom_jpeg


class FakeSegmenter:
    device = "cpu"
    model_version = "fake"

    def __init__(self, delay=0.02):
        self.batches = []
        self.delay = delay

    def predict(self, images, **kwargs):
        self.batches.append(len(images))
        time.sleep(self.delay)
        return [np.full(image.shape[:2], float(image[0, 0, 0]), np.float32) for image in images]


def test_threads_share_forward_passes_and_each_gets_its_own_maps():
    fake = FakeSegmenter()
    shared = BatchingSegmenter(fake, batch_size=8, max_wait_s=0.05)
    results, start = {}, threading.Barrier(6)

    def work(i):
        start.wait()
        results[i] = shared.predict([np.full((4, 4, 3), i, np.uint8), np.full((4, 4, 3), i + 100, np.uint8)])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert {i: (r[0][0, 0], r[1][0, 0]) for i, r in results.items()} == {i: (i, i + 100) for i in range(6)}
    assert sum(fake.batches) == 12 and max(fake.batches) <= 8
    assert len(fake.batches) < 6, f"calls were not batched: {fake.batches}"


def test_the_overview_network_gets_its_own_shared_passes():
    fake = FakeSegmenter()
    fake.overview = FakeSegmenter()
    shared = BatchingSegmenter(fake, batch_size=8, max_wait_s=0.05)
    assert isinstance(shared.overview, BatchingSegmenter) and shared.overview.inner is fake.overview
    start = threading.Barrier(4)

    def work(i):
        start.wait()
        shared.overview.predict([np.full((4, 4, 3), i, np.uint8)])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sum(fake.overview.batches) == 4 and len(fake.overview.batches) < 4 and fake.batches == []
    assert BatchingSegmenter(FakeSegmenter()).overview is None


def test_a_failed_forward_pass_reaches_every_waiting_thread():
    class Broken(FakeSegmenter):
        def predict(self, images, **kwargs):
            raise RuntimeError("CUDA out of memory")

    shared = BatchingSegmenter(Broken(), batch_size=4)
    with pytest.raises(RuntimeError, match="out of memory"):
        shared.predict([np.zeros((4, 4, 3), np.uint8)])


def test_batched_torchvision_decoding_matches_opencv_and_isolates_a_damaged_jpeg():
    good = [phantom_jpeg(1), phantom_jpeg(2)]
    decoded = pipeline._decode_jpegs_torch(good, "cpu")  # the nvJPEG path, on CPU
    reference = [pipeline.decode(blob) for blob in good]
    for image, ref in zip(decoded, reference, strict=True):
        assert image.shape == ref.shape and image.dtype == np.uint8
        assert np.abs(image.astype(int) - ref).mean() < 2.0, "BGR order and values as OpenCV gives them"
    out = pipeline.decode_many([good[0], b"\xff\xd8\xff garbage", good[1]], "cpu")
    assert isinstance(out[1], pipeline.BadImage) and out[0].shape == reference[0].shape


def test_a_comparison_reuses_the_follow_up_map_within_a_message():
    cached = pipeline.CachingSegmenter(FakeSegmenter(delay=0))
    a, b = np.zeros((8, 8, 3), np.uint8), np.ones((8, 8, 3), np.uint8)
    assert len(cached.predict([a])) == 1 and cached.hits == 0, "no scope: no caching"
    with cached.scope():
        cached.predict([b])
        maps = cached.predict([a, b.copy()])  # same content, another array
    assert cached.hits == 1 and cached.inner.batches == [1, 1, 1]
    assert maps[1][0, 0] == 1.0


def test_the_overview_network_answers_from_the_same_message_cache():
    inner = FakeSegmenter(delay=0)
    inner.overview = FakeSegmenter(delay=0)
    cached = pipeline.CachingSegmenter(inner)
    crown = np.full((8, 8, 3), 7, np.uint8)
    stored = np.full((8, 8), 0.25, np.float32)
    with cached.scope():
        assert cached.remember(crown, stored)
        got = cached.overview.predict([crown])[0]
    assert np.array_equal(got, stored) and inner.overview.batches == [], "a stored overview map is reused"
    assert cached.overview.predict([crown])[0][0, 0] == 7.0 and inner.overview.batches == [1]
    assert pipeline.CachingSegmenter(FakeSegmenter()).overview is None


def test_on_cuda_the_network_gets_large_tile_batches():
    class CudaLike(FakeSegmenter):
        device = "cuda"

        def predict(self, images, batch_tiles=8):
            self.tile_batches = batch_tiles
            return super().predict(images)

    inner = CudaLike(delay=0)
    BatchingSegmenter(inner).predict([np.zeros((4, 4, 3), np.uint8)])
    assert inner.tile_batches == 64
    cpu = FakeSegmenter(delay=0)
    assert len(BatchingSegmenter(cpu).predict([np.zeros((4, 4, 3), np.uint8)])) == 1


def test_a_cuda_pipeline_matches_registration_features_on_the_gpu(monkeypatch):
    from analysis.engine import registration

    class CudaLike(FakeSegmenter):
        device = "cuda:1"

    monkeypatch.setattr(registration, "_matching_device", None)
    monkeypatch.setattr(pipeline, "_load_segmenter", lambda device: FakeSegmenter(delay=0))
    pipeline.Pipeline("cpu")
    assert registration._matching_device is None
    monkeypatch.setattr(pipeline, "_load_segmenter", lambda device: CudaLike(delay=0))
    pipeline.Pipeline("cuda:1")
    assert registration._matching_device == "cuda:1"


def test_threads_sharing_the_network_get_the_same_results_as_one_thread_alone():
    from analysis.batching import share_segmenter

    images = [pipeline.decode(phantom_jpeg(seed)) for seed in (1, 2, 3)]
    settings = [pipeline.Settings("trichoscopy", 0.006, "female")]
    alone = pipeline.Pipeline("cpu")
    expected = [alone.analyze([image], settings)[0].metrics for image in images]

    shared = pipeline.Pipeline("cpu")
    share_segmenter(shared)
    share_segmenter(shared)  # idempotent: one batching layer
    assert isinstance(shared.segmenter.inner, BatchingSegmenter)
    assert not isinstance(shared.segmenter.inner.inner, BatchingSegmenter)
    results, start = {}, threading.Barrier(3)

    def work(i):
        start.wait()
        with shared.scope():
            results[i] = shared.analyze([images[i]], settings)[0].metrics

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    drop = {"seconds"}
    assert [{k: v for k, v in results[i].items() if k not in drop} for i in range(3)] == [
        {k: v for k, v in e.items() if k not in drop} for e in expected]


def test_each_thread_learns_the_size_of_the_pass_that_carried_its_images():
    from analysis.batching import forward_batch_sizes

    shared = BatchingSegmenter(FakeSegmenter(), batch_size=8, max_wait_s=0.05)
    seen, start = {}, threading.Barrier(3)

    def work(i):
        forward_batch_sizes()
        start.wait()
        shared.predict([np.full((4, 4, 3), i, np.uint8)])
        seen[i] = forward_batch_sizes()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(len(v) for v in seen.values()) == [1, 1, 1]
    assert sum(v[0] for v in seen.values()) >= 3 and max(v[0] for v in seen.values()) == max(shared.inner.batches)


def test_a_comparison_in_a_message_runs_no_network_and_matches_one_made_from_scratch():
    images = [pipeline.decode(phantom_jpeg(seed)) for seed in (4, 5)]
    settings = pipeline.Settings("trichoscopy", 0.006, None)
    scratch = pipeline.Pipeline("cpu").compare(images[0], images[1], settings)  # segments both

    worker = pipeline.Pipeline("cpu")
    earlier = worker.analyze([images[0]], [settings])[0]  # an earlier message: its map is stored
    calls = []
    inner = worker.segmenter.inner

    class Counting:
        device, model_version = inner.device, inner.model_version

        def predict(self, batch, **kwargs):
            calls.append(len(batch))
            return inner.predict(batch, **kwargs)

    worker.segmenter.inner = Counting()
    with worker.scope():
        worker.analyze([images[1]], [settings])
        kept = worker.compare(images[0], images[1], settings, baseline_coverage_png=earlier.mask_png)
    assert calls == [1], "only the follow-up's own analysis ran the network"
    with worker.scope():  # no stored map: the earlier photo is segmented once
        worker.analyze([images[1]], [settings])
        worker.compare(images[0], images[1], settings)
    assert calls == [1, 1, 1]
    assert set(kept.data) == set(scratch.data) and kept.data["reasons"] == scratch.data["reasons"]
