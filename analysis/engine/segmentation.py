"""Hair segmentation: a small U-Net, the preprocessing shared by training and inference, tiled
prediction, and the classical black-hat baseline it is compared against.

The network predicts hair *coverage* (the fraction of each pixel covered by hair), not a hard
label: summing coverage along a hair gives its width with sub-pixel precision, which is what
caliber in micrometres needs at 2.5-12 um per pixel.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
TILE = 1280  # a whole 1280 px overview in one pass: no seams, no overlap work
OVERLAP = 32


@dataclass(frozen=True)
class SegConfig:
    architecture: str = "unet"
    base: int = 8
    depth: int = 4
    in_channels: int = 3
    colour_order: str = "RGB"  # the network sees RGB; callers pass OpenCV BGR
    normalisation: str = "per-image channel mean, global std (exposure/cast invariant)"
    output: str = "sigmoid hair coverage 0..1"
    label_map: tuple = ("not hair", "hair")
    training_data_version: str = "phantoms-v3"
    version: str = "unet-b8-v4"


# ---------------------------------------------------------------- preprocessing (shared)


def preprocess(image_bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 HxWx3 -> float32 3xHxW in the network's colour order and normalisation.

    Per-image mean and std remove exposure and colour cast, which the phantoms vary by ±25%
    and ±12%; the same function runs in training and in predict()."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 BGR image, got shape {image_bgr.shape}")
    rgb = image_bgr[..., ::-1].astype(np.float32) / 255.0
    mean = rgb.reshape(-1, 3).mean(0)
    std = max(float(rgb.std()), 0.02)
    return np.ascontiguousarray(((rgb - mean) / std).transpose(2, 0, 1))


# ---------------------------------------------------------------- network


def _block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, in_channels=3, base=12, depth=4):
        super().__init__()
        chans = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(
            [_block(in_channels, chans[0])] + [_block(chans[i], chans[i + 1]) for i in range(depth)]
        )
        self.up = nn.ModuleList(
            [nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))]
        )
        self.dec = nn.ModuleList([_block(chans[i] * 2, chans[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], 1, 1)
        self.multiple = 2**depth

    def forward(self, x):
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.dec, strict=True):
            x = dec(torch.cat([up(x), skips.pop()], 1))
        return self.head(x)


def build_model(cfg: SegConfig) -> UNet:
    return UNet(cfg.in_channels, cfg.base, cfg.depth)


def save_network(model: nn.Module, cfg, directory: Path, name: str, extra: dict | None = None) -> None:
    """`name`.pt in fp16 (halves the repo size; inference casts back) and `name`.json with the
    config dataclass `cfg` plus `extra`."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    torch.save(state, directory / f"{name}.pt")
    meta = asdict(cfg) | (extra or {})
    (directory / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


def load_network(directory: Path, name: str, config_cls, build) -> tuple[nn.Module, object, dict]:
    """What save_network wrote: the model built by `build(config)` in eval mode, its config
    (`config_cls` from the JSON's matching keys) and the whole JSON."""
    meta = json.loads((directory / f"{name}.json").read_text())
    fields = {
        k: (tuple(v) if isinstance(v, list) else v) for k, v in meta.items() if k in config_cls.__dataclass_fields__
    }
    cfg = config_cls(**fields)
    model = build(cfg)
    state = torch.load(directory / f"{name}.pt", map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval(), cfg, meta


def save_weights(model: nn.Module, cfg: SegConfig, directory: Path, extra: dict | None = None) -> None:
    save_network(model, cfg, directory, "unet", extra)


def load_weights(directory: Path) -> tuple[UNet, SegConfig, dict]:
    return load_network(directory, "unet", SegConfig, build_model)


# ---------------------------------------------------------------- inference


class Segmenter:
    """Loaded network bound to a device; predict() is the only inference entry point."""

    def __init__(self, model: UNet, cfg: SegConfig, device: str, meta: dict | None = None):
        self.cfg = cfg
        self.device = device
        self.meta = meta or {}
        self.model_version = cfg.version
        self.model = model.to(device).eval()
        if device.startswith("cuda"):
            self.model = self.model.to(memory_format=torch.channels_last)
        self._lock = threading.Lock()

    @torch.inference_mode()
    def predict(self, images: list[np.ndarray], batch_tiles: int = 8) -> list[np.ndarray]:
        """Hair-coverage maps (float32, HxW, 0..1) for BGR uint8 images of any size."""
        if not isinstance(images, (list, tuple)):
            raise TypeError("predict() takes a list of BGR images; wrap a single image in [ ]")
        jobs, outs = [], []
        for n, img in enumerate(images):
            x = preprocess(img)
            h, w = x.shape[1:]
            acc = np.zeros((h, w), np.float32)
            wsum = np.zeros((h, w), np.float32)
            outs.append((acc, wsum))
            for y0, x0, th, tw in _tiles(h, w):
                jobs.append((n, y0, x0, th, tw, x[:, y0 : y0 + th, x0 : x0 + tw]))
        for i in range(0, len(jobs), batch_tiles):
            self._run(jobs[i : i + batch_tiles], outs)
        return [np.clip(acc / np.maximum(wsum, 1e-6), 0, 1) for acc, wsum in outs]

    def _run(self, chunk, outs):
        m = self.model.multiple
        th = max(_ceil_to(j[3], m) for j in chunk)
        tw = max(_ceil_to(j[4], m) for j in chunk)
        batch = np.zeros((len(chunk), 3, th, tw), np.float32)
        for k, j in enumerate(chunk):
            tile = j[5]
            batch[k] = np.pad(tile, ((0, 0), (0, th - tile.shape[1]), (0, tw - tile.shape[2])), mode="reflect")
        t = torch.from_numpy(batch).to(self.device)
        with self._lock:
            if self.device.startswith("cuda"):
                t = t.to(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = self.model(t)
            else:
                logits = self.model(t)
        prob = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
        for k, (n, y0, x0, h, w, _) in enumerate(chunk):
            acc, wsum = outs[n]
            wt = _blend_window(h, w)
            acc[y0 : y0 + h, x0 : x0 + w] += prob[k, :h, :w] * wt
            wsum[y0 : y0 + h, x0 : x0 + w] += wt


def _ceil_to(v, m):
    return (v + m - 1) // m * m


def _tiles(h, w):
    step = TILE - OVERLAP
    ys = list(range(0, max(h - OVERLAP, 1), step)) if h > TILE else [0]
    xs = list(range(0, max(w - OVERLAP, 1), step)) if w > TILE else [0]
    for y0 in ys:
        for x0 in xs:
            y0c, x0c = min(y0, max(h - TILE, 0)), min(x0, max(w - TILE, 0))
            yield y0c, x0c, min(TILE, h), min(TILE, w)


def _blend_window(h, w):
    """Weights that fade towards tile borders, where the network sees less context."""

    def ramp(n):
        r = np.minimum(np.arange(n) + 1, np.arange(n)[::-1] + 1).astype(np.float32)
        return np.clip(r / OVERLAP, 0.05, 1.0)

    return np.outer(ramp(h), ramp(w))


def engine_threads(default: int = 2) -> int:
    """Torch CPU threads for a command-line run (TRICHOTRACK_TORCH_THREADS, default 2):
    oversubscribed threads on shared cores cost up to 10x."""
    import os

    n = max(1, int(os.environ.get("TRICHOTRACK_TORCH_THREADS", default)))
    torch.set_num_threads(n)
    return n


_CACHE: dict[str, Segmenter] = {}
_CACHE_LOCK = threading.Lock()


def load_segmenter(device: str | None = None, weights_dir: Path | None = None) -> Segmenter:
    """The shipped network, loaded once per process and device."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    directory = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    key = f"{device}:{directory}"
    with _CACHE_LOCK:
        if key not in _CACHE:
            model, cfg, meta = load_weights(directory)
            _CACHE[key] = Segmenter(model, cfg, device, meta)
            log.info("loaded segmenter %s on %s", cfg.version, device)
        return _CACHE[key]


# ---------------------------------------------------------------- classical baseline


def classical_segment(image_bgr: np.ndarray, max_hair_px: float = 15.0) -> np.ndarray:
    """Black-hat + Otsu: the textbook dark-hair detector, used only as a comparison."""
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    k = int(max(3, round(max_hair_px * 2)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    bh = cv2.morphologyEx(grey, cv2.MORPH_BLACKHAT, kernel)
    _, mask = cv2.threshold(bh, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return (mask > 0).astype(np.float32)
