"""Forward passes shared by the worker threads of one GPU process.

A dramatiq GPU worker runs several threads (``--threads 8``): while one thread's images are on
the GPU the others read and decode theirs. Each thread calls ``predict()`` with its own images;
``BatchingSegmenter`` gathers what arrives within a few milliseconds (up to ``batch_size`` images)
into one call of the real segmenter, so the GPU sees full batches even when every message holds
one photo. On a CPU worker with one thread it is not used (nothing to gather).
"""

import inspect
import threading
import time

# 512² tiles per forward pass on the GPU (the engine's default of 8 suits a CPU): 64 tiles in bf16
# is a few GB of activations for the small U-Net, and keeps an H100 busy.
GPU_TILE_BATCH = 64


class _Request:
    __slots__ = ("images", "result", "error", "done", "batch")

    def __init__(self, images):
        self.images = images
        self.result = None
        self.error = None
        self.done = False
        self.batch = 0  # images in the forward pass that carried this request


_seen = threading.local()


def forward_batch_sizes() -> list[int]:
    """Sizes of the shared forward passes this thread's images went through since the last call
    (recorded in the run's timings, so the benchmark can report the batch size actually used)."""
    sizes = getattr(_seen, "sizes", [])
    _seen.sizes = []
    return sizes


class BatchingSegmenter:
    def __init__(self, inner, batch_size: int = 16, max_wait_s: float = 0.004):
        self.inner = inner
        self.device = inner.device
        self.model_version = inner.model_version
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.calls = 0  # forward calls made (the benchmark and tests read it)
        accepts = inspect.signature(inner.predict).parameters
        self._extra = {"batch_tiles": GPU_TILE_BATCH} if "batch_tiles" in accepts and str(
            self.device).startswith("cuda") else {}
        self._cv = threading.Condition()
        self._queue: list[_Request] = []
        self._leader = False
        # Overview photos go through their own network (engine.pipeline.segment): it gets its own
        # batching layer, or those photos would bypass the shared passes.
        overview = getattr(inner, "overview", None)
        self.overview = None if overview is None else BatchingSegmenter(overview, batch_size, max_wait_s)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, images, **kwargs):
        request = _Request(list(images))
        with self._cv:
            self._queue.append(request)
            self._cv.notify_all()
        while True:
            with self._cv:
                while not request.done and self._leader:
                    self._cv.wait(0.05)
                if request.done:
                    break
                self._leader = True
            try:
                self._lead(kwargs)
            finally:
                with self._cv:
                    self._leader = False
                    self._cv.notify_all()
        if request.error is not None:
            raise request.error
        _seen.sizes = getattr(_seen, "sizes", []) + [request.batch]
        return request.result

    def _queued_images(self) -> int:
        return sum(len(r.images) for r in self._queue)

    def _lead(self, kwargs) -> None:
        deadline = time.monotonic() + self.max_wait_s
        with self._cv:
            while self._queued_images() < self.batch_size and (left := deadline - time.monotonic()) > 0:
                self._cv.wait(left)
            batch, size = [], 0
            while self._queue and (not batch or size + len(self._queue[0].images) <= self.batch_size):
                request = self._queue.pop(0)
                batch.append(request)
                size += len(request.images)
        if not batch:
            return
        try:
            flat = [image for request in batch for image in request.images]
            self.calls += 1
            out = self.inner.predict(flat, **(self._extra | kwargs))
            at = 0
            for request in batch:
                request.result = out[at:at + len(request.images)]
                request.batch = len(flat)
                at += len(request.images)
        except Exception as error:  # noqa: BLE001 - handed to every waiting thread
            for request in batch:
                request.error = error
        with self._cv:
            for request in batch:
                request.done = True
            self._cv.notify_all()


def share_segmenter(pipeline) -> None:
    """Put a batching layer under the pipeline's per-message cache (idempotent)."""
    cache = pipeline.segmenter
    if not isinstance(cache.inner, BatchingSegmenter):
        cache.inner = BatchingSegmenter(cache.inner, batch_size=pipeline.batch_size)
