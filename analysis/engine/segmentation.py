"""Hair segmentation: a small U-Net, the preprocessing shared by training and inference, tiled
prediction, and the classical black-hat baseline it is compared against.

The network predicts hair *coverage* (the fraction of each pixel covered by hair), not a hard
label: summing coverage along a hair gives its width with sub-pixel precision, which is what
caliber in micrometres needs at 2.5-12 um per pixel.
"""

from __future__ import annotations

import functools
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
# Phone photos of the standard views (0.1-0.3 mm/px, a hair a fraction of a pixel) get their own
# network, trained to estimate how much of each pixel is hair rather than to outline shafts.
OVERVIEW_NAME = "unet-overview"
OVERVIEW_VERSION = "unet-b8-ov1"
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
    and ±12%. Training calls this; predict() runs the same arithmetic (preprocess_tensor) on the
    model's device."""
    _check_bgr(image_bgr)
    return preprocess_tensor(torch.from_numpy(np.ascontiguousarray(image_bgr)), channel_means(image_bgr)).numpy()


def preprocess_tensor(image_bgr: torch.Tensor, mean_rgb: np.ndarray) -> torch.Tensor:
    """`preprocess` on a BGR uint8 HxWx3 tensor, on whatever device the tensor is on: on a GPU
    worker the photo goes up as 4 MB of bytes, and only `channel_means` runs on the CPU."""
    rgb = image_bgr.permute(2, 0, 1)[[2, 1, 0]].float().div_(255.0)
    std = rgb.std(correction=0).clamp_min(0.02)
    return rgb.sub_(torch.from_numpy(mean_rgb).to(rgb.device)[:, None, None]).div_(std)


def channel_means(image_bgr: np.ndarray) -> np.ndarray:
    """The per-image RGB mean exactly as the shipped weights were trained and validated with:
    numpy's float32 sum of the pixels one after another (what `rgb.reshape(-1, 3).mean(0)` does).
    On a 1.3 MP photo that is up to 0.15% off the exact mean, and the exact one (computable on
    the GPU, 15 ms less CPU per photo) moves coverage by up to 0.12 at single pixels, so it can
    change hair counts: it belongs with the next weights version. One channel at a time it costs
    15 ms instead of 24."""
    sums = np.empty(3, np.float32)
    for c, plane in enumerate(cv2.split(image_bgr)):
        values = plane.astype(np.float32).ravel()
        values /= 255.0
        sums[2 - c] = np.add.accumulate(values)[-1]
    return (sums / np.intp(values.size)).astype(np.float32)  # numpy's mean divides in float64


def _check_bgr(image_bgr) -> None:
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 BGR image, got shape {tuple(image_bgr.shape)}")


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

    def __init__(
        self, model: UNet, cfg: SegConfig, device: str, meta: dict | None = None, overview: Segmenter | None = None
    ):
        self.cfg = cfg
        self.device = device
        self.meta = meta or {}
        self.overview = overview  # the phone-photo network, when one is shipped beside this one
        self.model_version = cfg.version + (f"+{overview.model_version}" if overview else "")
        self.model = model.to(device).eval()
        if device.startswith("cuda"):
            self.model = self.model.to(memory_format=torch.channels_last)
        self._lock = threading.Lock()

    @torch.inference_mode()
    def predict(self, images: list[np.ndarray], batch_tiles: int = 8) -> list[np.ndarray]:
        """Hair-coverage maps (float32, HxW, 0..1) for BGR uint8 images of any size.

        Normalisation, tile padding and blending run as tensor operations on the model's device;
        the CPU hands over the bytes and the channel means and takes back the maps."""
        if not isinstance(images, (list, tuple)):
            raise TypeError("predict() takes a list of BGR images; wrap a single image in [ ]")
        for img in images:
            _check_bgr(img)
        jobs, outs = [], []
        for n, img in enumerate(images):
            x = preprocess_tensor(torch.from_numpy(np.ascontiguousarray(img)).to(self.device), channel_means(img))
            h, w = x.shape[1:]
            outs.append((x.new_zeros((h, w)), x.new_zeros((h, w))))
            for y0, x0, th, tw in _tiles(h, w):
                jobs.append((n, y0, x0, th, tw, x[:, y0 : y0 + th, x0 : x0 + tw]))
        for i in range(0, len(jobs), batch_tiles):
            self._run(jobs[i : i + batch_tiles], outs)
        return [torch.clamp(acc / wsum.clamp_min(1e-6), 0, 1).cpu().numpy() for acc, wsum in outs]

    def _run(self, chunk, outs):
        m = self.model.multiple
        th = max(_ceil_to(j[3], m) for j in chunk)
        tw = max(_ceil_to(j[4], m) for j in chunk)
        t = torch.stack([_pad_reflect(j[5], th, tw) for j in chunk])
        with self._lock:
            if self.device.startswith("cuda"):
                t = t.to(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = self.model(t)
            else:
                logits = self.model(t)
        prob = torch.sigmoid(logits.float())[:, 0]
        for k, (n, y0, x0, h, w, _) in enumerate(chunk):
            acc, wsum = outs[n]
            wt = _blend_window(h, w, prob.device)
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


def _pad_reflect(tile: torch.Tensor, th: int, tw: int) -> torch.Tensor:
    """A 3xhxw tile mirrored at its bottom and right edges to th x tw, as numpy's "reflect" pads
    (which, unlike torch's, allows a pad wider than the tile: a small photo batched with a large one)."""
    h, w = tile.shape[1:]
    if (h, w) == (th, tw):
        return tile
    return tile.index_select(1, _reflect_index(h, th, tile.device)).index_select(2, _reflect_index(w, tw, tile.device))


def _reflect_index(n: int, size: int, device) -> torch.Tensor:
    i = torch.arange(size, device=device)
    if n == 1:
        return torch.zeros_like(i)
    i = i % (2 * (n - 1))
    return torch.where(i < n, i, 2 * (n - 1) - i)


@functools.lru_cache(maxsize=32)
def _blend_window(h: int, w: int, device) -> torch.Tensor:
    """Weights that fade towards tile borders, where the network sees less context."""

    def ramp(n):
        r = torch.minimum(torch.arange(n) + 1, torch.arange(n).flip(0) + 1).float()
        return torch.clamp(r / OVERLAP, 0.05, 1.0)

    return torch.outer(ramp(h), ramp(w)).to(device)


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
    """The shipped segmenter, with the overview network as `.overview` when its weights are
    there; loaded once per process and device."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    directory = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    key = f"{device}:{directory}"
    with _CACHE_LOCK:
        if key not in _CACHE:
            model, cfg, meta = load_weights(directory)
            overview = None
            if (directory / f"{OVERVIEW_NAME}.pt").exists():
                ov_model, ov_cfg, ov_meta = load_network(directory, OVERVIEW_NAME, SegConfig, build_model)
                overview = Segmenter(ov_model, ov_cfg, device, ov_meta)
            _CACHE[key] = Segmenter(model, cfg, device, meta, overview)
            log.info("loaded segmenter %s on %s", _CACHE[key].model_version, device)
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
