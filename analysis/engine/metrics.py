"""From a hair-coverage map to clinical numbers.

Trichoscopy: the mask is thinned to a skeleton, the skeleton is cut at junction zones into
branches, branches that continue straight through a junction are joined (crossing hairs) and
branches that leave a junction side by side stay separate (hairs from one opening). Each
resulting chain is one hair. Caliber is coverage mass divided by centre-line length, which is
sub-pixel exact for a calibrated coverage map. Overview photos do not resolve single hairs, so
they report coverage-based values only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

METRICS_VERSION = "17"  # bump whenever a metric or comparison algorithm changes
MASK_THRESHOLD = 0.5
PAIR_COS = 0.75  # branches this close to opposite continue one hair through a junction
STEM_MM = 0.3  # a unit's hairs overlap near their opening for up to about this length
FU_LINK_MM = 0.06  # free hair ends closer than this share a follicular opening
# A centre line counts as reaching the frame's edge (or the unseen area) within the hair's
# half-width plus this many px of it (`_touches_border`, `_frame_exits`).
EDGE_SLACK_PX = 3
MAX_PART_FRACTION = 0.25  # of the frame; wider bare bands are not a part line
# A hair's width is only measured where it shows this many widths of shaft: a stub cut by the
# frame edge or a fragment beside a junction is mostly end cap and junction, and its
# mass / length comes out far too thin (20-50 um for a 100 um hair on the benchmark fields).
MIN_MEASURED_WIDTHS = 2.0
# Calibers are measured on a grid of this pitch, whatever the dermoscope's: a faint vellus hair
# 2-3 px wide at 10-12 um/px hovers around the mask threshold and breaks into fragments, while
# a 25 px terminal hair at 2.5 um/px grows spurs. On one grid the mask, its opening and the
# junction margins mean the same micrometres for every device.
CALIBER_MM_PER_PX = 0.006
CALIBER_MAX_PIXELS = 4e6  # a coarse photo is upsampled for its calibers only to this many pixels
# Hollow hairs: under non-polarised light, or with thick light hair on dark skin, the network
# can outline each shaft instead of filling it, and every hair then counts twice. The gap
# between the outlines is at most about this wide (a shine streak is a fifth of a 105 um shaft,
# blurred), and the network reads it as half-hair, not as skin.
HOLLOW_GAP_MM = 0.06
HOLLOW_GAP_COVERAGE = 0.3
# A field is taken for outlined when such half-hair pixels, in gaps that read as hair
# throughout (median above HOLLOW_FILL_COVERAGE), add this share of its mask; on other fields
# gaps are mostly skin between hairs lying close. Once it is, gaps are filled down to
# HOLLOW_FILL_COVERAGE: where the streak is brightest the network reads the gap fainter.
HOLLOW_SHARE = 0.045
HOLLOW_FILL_COVERAGE = 0.2


# ---------------------------------------------------------------- skeleton


_NEIGHBOUR_BITS = np.zeros((3, 3), np.float32)
for _bit, (_dy, _dx) in enumerate([(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]):
    _NEIGHBOUR_BITS[1 + _dy, 1 + _dx] = 1 << _bit


def _neighbour_code(img):
    """8-neighbour bit code per pixel, bits p2..p9 clockwise from north (img holds 0/1): one 3x3
    correlation, exact (sums of at most 255), outside the image counts as 0."""
    code = cv2.filter2D(img.astype(np.uint8), cv2.CV_16S, _NEIGHBOUR_BITS, borderType=cv2.BORDER_CONSTANT)
    return code.astype(np.uint8)


def _zs_luts():
    luts = []
    for step in (0, 1):
        lut = np.zeros(256, bool)
        for c in range(256):
            n = [(c >> i) & 1 for i in range(8)]  # p2..p9
            b = sum(n)
            a = sum((n[i] == 0 and n[(i + 1) % 8] == 1) for i in range(8))
            p2, p3, p4, p5, p6, p7, p8, p9 = n
            if step == 0:
                ok = p2 * p4 * p6 == 0 and p4 * p6 * p8 == 0
            else:
                ok = p2 * p4 * p8 == 0 and p2 * p6 * p8 == 0
            lut[c] = 2 <= b <= 6 and a == 1 and ok
        luts.append(lut)
    return luts


_ZS = _zs_luts()
_TRANSITIONS = np.array(
    [sum((((c >> i) & 1) == 0 and ((c >> ((i + 1) % 8)) & 1) == 1) for i in range(8)) for c in range(256)]
)
_COUNT = np.array([bin(c).count("1") for c in range(256)])
# The same as uint8 tables for cv2.LUT, which is about 8x faster than indexing with a code image.
_IS_JUNCTION = (_TRANSITIONS >= 3).astype(np.uint8)
_IS_END = (_COUNT <= 1).astype(np.uint8)


def skeletonize(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning (numpy, lookup tables); bool in, bool out.

    Exactly the classic two-step parallel algorithm, but after the first pass each step looks only
    at pixels next to one removed in the last two steps: the others have the neighbourhood they had
    when the same step last judged them, so the answer cannot have changed. Thick junctions need
    20+ passes while most of the image is thin after two, so this is 20-30x faster than judging
    every pixel every pass (about 25 ms instead of 500-850 ms for a 1280x1024 field)."""
    h, w = mask.shape
    row = w + 2
    pad = np.zeros((h + 2, row), np.uint8)  # a zero border: neighbours never fall off the image
    pad[1:-1, 1:-1] = mask
    p = pad.ravel()
    offs = np.array([-row, -row + 1, 1, row + 1, row, row - 1, -1, -row - 1], np.intp)  # p2..p9
    around = np.array([0, *offs], np.intp)
    stamp = np.zeros(p.size, np.int32)
    cand = np.flatnonzero(p)
    removed: list[np.ndarray] = []
    step = 0
    while True:
        if step >= 2:
            near = (np.concatenate(removed[-2:])[:, None] + around).ravel()
            order = np.arange(len(near), dtype=np.int32)
            stamp[near] = order  # the last write wins: keeps one copy of each pixel
            near = near[stamp[near] == order]
            cand = near[p[near] > 0]
        code = p[cand + offs[0]].copy()
        for bit in range(1, 8):
            code |= p[cand + offs[bit]] << bit
        gone = cand[_ZS[step % 2][code]]
        p[gone] = 0
        removed.append(gone)
        if step >= 1 and not len(removed[-1]) and not len(removed[-2]):
            return pad[1:-1, 1:-1] > 0
        step += 1


# ---------------------------------------------------------------- hair graph


@dataclass
class HairGraph:
    labels: np.ndarray  # branch id per skeleton pixel (0 = none)
    zones: np.ndarray  # junction zone id per pixel (0 = none)
    chains: list[list[int]]  # branch ids per hair
    chain_of_branch: dict[int, int]
    caliber_px: np.ndarray  # per chain
    length_px: np.ndarray  # per chain
    centroid: np.ndarray  # per chain (x, y)
    fu_sizes: list[int]
    chain_ends: list[list[tuple[float, float]]] = field(default_factory=list)
    # Hairs seen only where a junction zone meets the frame's edge, as the (x, y) where each
    # leaves the frame: no branch of their own reaches it (`_frame_exits`). Counted, but with
    # no centre line they have no caliber and no follicular unit.
    frame_hairs: list[tuple[float, float]] = field(default_factory=list)

    @property
    def hair_count(self) -> int:
        return len(self.chains) + len(self.frame_hairs)

    def positions(self) -> np.ndarray:
        """(x, y) of every counted hair: chains' centroids, then frame hairs' exits."""
        return np.vstack([self.centroid.reshape(-1, 2), np.asarray(self.frame_hairs, float).reshape(-1, 2)])


def measurable(g: HairGraph, among=None) -> np.ndarray:
    """Indices of hairs (optionally among the given ones) long enough for their caliber to
    count; all of them when none is, so a field of stubs still reports a caliber."""
    idx = np.arange(len(g.chains)) if among is None else np.asarray(among, int)
    ok = idx[g.length_px[idx] >= MIN_MEASURED_WIDTHS * g.caliber_px[idx]]
    return ok if len(ok) else idx


def calibers_um(
    prob: np.ndarray, mm_per_px: float, valid: np.ndarray | None = None, graph: HairGraph | None = None
) -> np.ndarray:
    """Caliber (um) of every measurable hair, from the coverage map resampled to
    CALIBER_MM_PER_PX. `graph`, the hair graph at the map's own pitch, is reused when no
    resampling is needed. Counting stays on that graph: on the benchmark's fields the finer
    grid gave better calibers but a worse count (more spurs become hairs)."""
    h, w = prob.shape
    f = mm_per_px / CALIBER_MM_PER_PX
    if f > 1:  # finer, within the pixel budget; never coarser than the map itself
        f = max(1.0, min(f, float(np.sqrt(CALIBER_MAX_PIXELS / (h * w)))))
    if abs(f - 1) > 0.05:
        size = (max(1, round(w * f)), max(1, round(h * f)))
        prob = cv2.resize(prob, size, interpolation=cv2.INTER_LINEAR if f > 1 else cv2.INTER_AREA)
        if valid is not None:
            valid = cv2.resize(valid.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        mm_per_px = mm_per_px * w / size[0]
        graph = None
    g = graph if graph is not None else build_hair_graph(prob, mm_per_px, valid=valid)
    return g.caliber_px[measurable(g)] * mm_per_px * 1000.0


class _UnionFind:
    def __init__(self, n):
        self.p = list(range(n))

    def find(self, a):
        while self.p[a] != a:
            self.p[a] = self.p[self.p[a]]
            a = self.p[a]
        return a

    def union(self, a, b):
        self.p[self.find(a)] = self.find(b)


def _junction_zones(skel, dist):
    code = _neighbour_code(skel.astype(np.uint8))
    junction = skel & (cv2.LUT(code, _IS_JUNCTION) > 0)
    zone = np.zeros(skel.shape, np.uint8)
    for y, x in zip(*np.nonzero(junction), strict=True):
        # A crossing of thick hairs thins into two nearby forks: one zone of about the hair
        # width covers both, so they are treated as one junction.
        cv2.circle(zone, (int(x), int(y)), int(np.ceil(dist[y, x] * 1.0 + 1.0)), 1, -1)
    n, zones = cv2.connectedComponents(zone, connectivity=8)
    return zones, junction


_OFFS = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1))


def order_branch(coords: np.ndarray) -> np.ndarray:
    """Walk a branch's pixels from one end to the other (4-steps preferred over diagonals)."""
    n = len(coords)
    if n <= 2:
        return coords
    idx = {(int(x), int(y)): i for i, (x, y) in enumerate(coords)}
    nbrs = [[idx[(x + dx, y + dy)] for dx, dy in _OFFS if (x + dx, y + dy) in idx] for x, y in coords]
    cur = min(range(n), key=lambda i: len(nbrs[i]))
    order, seen = [cur], {cur}
    while True:
        nxt = [j for j in nbrs[cur] if j not in seen]  # _OFFS lists 4-neighbours first
        if not nxt:
            break
        cur = nxt[0]
        order.append(cur)
        seen.add(cur)
    return coords[order]


def _order_branches(labels: np.ndarray, coords_of: list[np.ndarray]) -> list[np.ndarray]:
    """order_branch() for every branch at once, to the same pixel order: the neighbour lists come
    from the label image in a few array operations instead of a dictionary per branch, which left
    only the walk itself in Python (about 4x faster on a field of 200 branches)."""
    sizes = np.array([len(c) for c in coords_of])
    if not sizes.sum():
        return list(coords_of)
    xy = np.concatenate(coords_of)
    own = np.repeat(np.arange(len(coords_of)), sizes)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    local = np.arange(len(xy)) - np.repeat(start, sizes)
    lab = np.pad(labels, 1)
    index = np.full(lab.shape, -1, np.int32)
    index[xy[:, 1] + 1, xy[:, 0] + 1] = local
    table = np.full((len(xy), len(_OFFS)), -1, np.int32)
    for k, (dx, dy) in enumerate(_OFFS):
        ny, nx = xy[:, 1] + 1 + dy, xy[:, 0] + 1 + dx
        same = lab[ny, nx] == own
        table[same, k] = index[ny[same], nx[same]]
    counts = (table >= 0).sum(1)
    out = []
    for b, coords in enumerate(coords_of):
        n = len(coords)
        if n <= 2:
            out.append(coords)
            continue
        rows = table[start[b] : start[b] + n]
        nbrs = [[j for j in row if j >= 0] for row in rows.tolist()]
        cur = int(np.argmin(counts[start[b] : start[b] + n]))  # the first pixel with fewest neighbours
        order, seen = [cur], {cur}
        while True:
            cur = next((j for j in nbrs[cur] if j not in seen), -1)  # 4-neighbours first, as order_branch
            if cur < 0:
                break
            order.append(cur)
            seen.add(cur)
        out.append(coords[order])
    return out


def path_length(path: np.ndarray, ok: np.ndarray | None = None) -> float:
    """Length of a pixel path after light smoothing, which removes the staircase excess of a
    digital line (up to 8% at 22.5 degrees) that raw pixel steps would add."""
    if len(path) < 2:
        return float(len(path))
    p = path.astype(np.float64)
    if len(p) >= 5:
        k = np.ones(5) / 5
        pad = np.vstack([p[:1].repeat(2, 0), p, p[-1:].repeat(2, 0)])
        p = np.stack([np.convolve(pad[:, 0], k, "valid"), np.convolve(pad[:, 1], k, "valid")], 1)
        p[0], p[-1] = path[0], path[-1]
    seg = np.hypot(*np.diff(p, axis=0).T)
    if ok is not None:
        seg = seg[ok[:-1] & ok[1:]]
    return float(seg.sum())


def _branch_direction(coords, contact, radius):
    d = np.hypot(coords[:, 0] - contact[0], coords[:, 1] - contact[1])
    near = coords[(d > 0.5) & (d <= radius)]
    if len(near) == 0:
        near = coords
    v = near.mean(0) - contact
    n = np.hypot(*v)
    return v / n if n > 1e-6 else np.zeros(2)


def hair_mask(prob: np.ndarray, min_len_px: float) -> np.ndarray:
    """Hair pixels of a coverage map. A 2x2 opening removes specks and the ragged 1 px edges
    that would sprout spurs, but it also erases hairs under 2 px wide (a 15 um vellus at 20x,
    11.6 um/px). So a piece of the map that the opening empties entirely is kept as it was
    when it is as long as the shortest hair counted (`min_len_px`); specks are not. (Putting
    back every removed stretch that long, or that joins two kept pieces, read density lower:
    it rejoins hairs that only touch and restores fringes along thick ones.)"""
    mask = (prob > MASK_THRESHOLD).astype(np.uint8)
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)) > 0
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    survives = np.zeros(n, bool)
    survives[labels[opened]] = True
    extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    thin_hair = ~survives & (extent >= min_len_px)
    thin_hair[0] = False
    return opened | thin_hair[labels]


def _fill_hollow_hairs(mask: np.ndarray, prob: np.ndarray, gap_px: float) -> np.ndarray:
    """Fill the gaps between a hair's outlines when the field's hairs are outlined. A closing
    as wide as the widest gap finds the gaps. Between two hairs lying close a gap is mostly
    skin, with soft hair edges along it; between outlines it reads as hair throughout. So
    only gaps whose median coverage is above HOLLOW_FILL_COVERAGE count, and the field is
    taken for outlined when their pixels above HOLLOW_GAP_COVERAGE (half-hair) add
    HOLLOW_SHARE of the mask; then every gap is filled down to HOLLOW_FILL_COVERAGE. Per gap
    an outline and two hairs lying close can look alike, and filling every such gap merged
    close hairs on plain fields; per field the share tells them apart well enough. On 60
    non-polarised and 170 plain phantom fields it fired on 21 and 19, whose median density
    error fell from 77% to 12% and from 57% to 20% (ACCURACY.md)."""
    k = max(3, int(round(gap_px)) | 1)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, disc) > 0
    gaps = closed & ~mask
    n, labels = cv2.connectedComponents(gaps.astype(np.uint8), connectivity=8)
    if n == 1:
        return mask  # no gap at all
    reads_as_hair = _medians_by_label(labels[gaps], prob[gaps], n) > HOLLOW_FILL_COVERAGE
    reads_as_hair[0] = False  # label 0: not a gap
    half_hair = reads_as_hair[labels] & (prob > HOLLOW_GAP_COVERAGE)
    if half_hair.sum() <= HOLLOW_SHARE * max(int(mask.sum()), 1):
        return mask
    return mask | (gaps & (prob > HOLLOW_FILL_COVERAGE))


def _medians_by_label(labels: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """The (upper) median of `values` (not empty) over each label 0..n-1; 0 for a label with
    none."""
    order = np.lexsort((values, labels))
    labels, values = labels[order], values[order]
    first = np.searchsorted(labels, np.arange(n))
    last = np.searchsorted(labels, np.arange(n), "right")
    return np.where(last > first, values[np.minimum((first + last) // 2, len(values) - 1)], 0.0)


def build_hair_graph(
    prob: np.ndarray, mm_per_px: float, min_len_mm: float = 0.06, valid: np.ndarray | None = None
) -> HairGraph:
    """Hairs as chains of skeleton branches. `valid` marks the pixels that show scalp (not a
    device's text, not outside a round lens): its edge cuts hairs just as the frame's edge does."""
    min_len_px = max(4.0, min_len_mm / mm_per_px)
    mask = _fill_hollow_hairs(hair_mask(prob, min_len_px), prob, HOLLOW_GAP_MM / mm_per_px)
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    skel = skeletonize(mask)
    zones, _ = _junction_zones(skel, dist)
    core = skel & (zones == 0)
    nb, labels = cv2.connectedComponents(core.astype(np.uint8), connectivity=8)
    core = _split_corners(core, labels, nb, dist)
    nb, labels = cv2.connectedComponents(core.astype(np.uint8), connectivity=8)
    labels = labels.astype(np.int32)
    h, w = prob.shape

    # Which zones each branch touches, and the branch's direction leaving that zone.
    # A 3x3 maximum of the zone ids (uint16 when they fit: exact, and faster than float32).
    depth = np.uint16 if zones.max() < 65536 else np.float32
    zone_dil = cv2.dilate(zones.astype(depth), np.ones((3, 3), np.uint8)).astype(np.int32)
    touch = (labels > 0) & (zone_dil > 0)
    contacts: dict[int, dict[int, list]] = {}
    for y, x in zip(*np.nonzero(touch), strict=True):
        contacts.setdefault(int(labels[y, x]), {}).setdefault(int(zone_dil[y, x]), []).append((x, y))
    coords_of = coords_by_label(labels, nb)
    paths = _order_branches(labels, coords_of)
    length = np.array([path_length(pth) * (len(c) / max(len(pth), 1)) for pth, c in zip(paths, coords_of, strict=True)])
    code = _neighbour_code(core.astype(np.uint8))
    # Ends made by cutting at a junction zone are not hair tips.
    endpoint = core & (cv2.LUT(code, _IS_END) > 0) & (zone_dil == 0)
    free_ends: dict[int, list] = {}
    for y, x in zip(*np.nonzero(endpoint), strict=True):
        free_ends.setdefault(int(labels[y, x]), []).append((float(x), float(y)))

    at_border = _touches_border(labels, nb, dist, valid)
    # Spurs: short branches with one free end hanging off a junction are thinning artefacts.
    alive = np.ones(nb, bool)
    alive[0] = False
    for b in range(1, nb):
        wid = 2 * float(dist[coords_of[b][:, 1], coords_of[b][:, 0]].mean()) if len(coords_of[b]) else 1
        # (At the frame's edge such a branch is a hair leaving the frame, not a spur.)
        spur = b in contacts and len(contacts[b]) == 1 and b in free_ends and length[b] < max(0.4 * wid, 3)
        if spur and not at_border[b]:
            alive[b] = False
        if b not in contacts and length[b] < min_len_px * 0.5 and not at_border[b]:
            alive[b] = False

    unpaired_at: dict[int, list[int]] = {}
    zone_branches: dict[int, list[tuple[int, np.ndarray]]] = {}
    for b, zs in contacts.items():
        if not alive[b]:
            continue
        for z, pts in zs.items():
            contact = np.mean(np.asarray(pts, np.float64), 0)
            radius = max(6.0, 2.5 * float(dist[int(contact[1]), int(contact[0])]) + 4)
            half = float(dist[int(contact[1]), int(contact[0])])
            zone_branches.setdefault(z, []).append((b, _branch_direction(coords_of[b], contact, radius), contact, half))
    exits = _frame_exits(mask, zones, dist, labels, alive, at_border, nb)
    for z, item in exits:
        zone_branches.setdefault(z, []).append(item)
    uf = _UnionFind(nb + len(exits))
    for z, items in zone_branches.items():
        paired = _pair_branches(items)
        for a, b in paired:
            uf.union(a, b)
        done = {x for p in paired for x in p}
        unpaired_at[z] = [it[0] for it in items if it[0] not in done]
    _bridge_shared_stretches(zone_branches, unpaired_at, contacts, alive, uf)

    chains_map: dict[int, list[int]] = {}
    for b in range(1, nb):
        if alive[b]:
            chains_map.setdefault(uf.find(b), []).append(b)
    # A frame exit that continues a hair makes it a hair leaving the frame; one that continues
    # none is a hair of its own (two exits joined through a zone: one hair entering and leaving).
    exit_at: dict[int, tuple[float, float]] = {}
    for _, (k, _, contact, _) in exits:
        exit_at.setdefault(uf.find(k), (float(contact[0]), float(contact[1])))
    frame_hairs = [xy for root, xy in exit_at.items() if root not in chains_map]
    # A hair entering the frame by a sliver still counts (any part of the shaft in the image).
    chains = [
        c
        for root, c in chains_map.items()
        if sum(length[b] for b in c) >= (3 if root in exit_at or any(at_border[b] for b in c) else min_len_px)
    ]
    chain_of = {b: i for i, c in enumerate(chains) for b in c}
    # Dropped spurs would otherwise pull coverage mass away from the hair they hang on.
    dead = np.zeros(nb, bool)
    dead[1:] = ~alive[1:]
    if dead.any():
        skel = skel & ~dead[labels]
    cal, lens, cents = _calibers(prob, skel, labels, zones, chains, paths, length, free_ends, dist, (h, w))
    openings = _openings(zone_branches, unpaired_at, free_ends, length, at_border, STEM_MM / mm_per_px)
    fu_sizes, ends = _follicular_units(chains, chain_of, openings, free_ends, mm_per_px, (h, w))
    return HairGraph(labels, zones, chains, chain_of, cal, lens, cents, fu_sizes, ends, frame_hairs)


CORNER_DEG = 100.0  # a centre line turning this sharply is two hairs meeting at one opening (a V)


def _split_corners(core, labels, nb, dist):
    """Cut branches at sharp corners. Two hairs leaving one opening at a small angle thin into
    one V-shaped line with no junction; real hair bends far less over a few widths."""
    paths = _order_branches(labels, coords_by_label(labels, nb))
    out = core.copy()
    for b in range(1, nb):
        path = paths[b]
        if len(path) < 12:
            continue
        k = max(4, int(round(2 * float(np.median(dist[path[:, 1], path[:, 0]])))))
        if len(path) < 2 * k + 3:
            continue
        p = path.astype(np.float64)
        u = p[k:-k] - p[: -2 * k]
        v = p[2 * k :] - p[k:-k]
        cos = (u * v).sum(1) / (np.hypot(*u.T) * np.hypot(*v.T) + 1e-9)
        i = int(np.argmin(cos))
        if cos[i] < np.cos(np.radians(CORNER_DEG)):
            c = i + k
            for x, y in path[max(0, c - 1) : c + 2]:
                out[y, x] = False
    return out


def _touches_border(labels, n, dist, valid=None):
    """Branches that reach the frame's edge or the edge of what is seen (`valid`): within the
    hair's half-width plus 3 px of it. A centre line stops about half the hair's width short
    of the frame's edge (the distance transform does not count the frame as background), and
    short of the unseen area (the coverage map is zeroed there); a thick hair cut by either
    must get the sliver allowances, not be dropped as too short or as a spur."""
    ys, xs = np.nonzero(labels)
    h, w = labels.shape
    to_edge = np.minimum.reduce([xs, ys, w - 1 - xs, h - 1 - ys]).astype(np.float32)
    if valid is not None and not valid.all():
        to_unseen = cv2.distanceTransform(valid.astype(np.uint8), cv2.DIST_L2, 5)
        to_edge = np.minimum(to_edge, to_unseen[ys, xs] - 1)
    near = to_edge - dist[ys, xs] <= EDGE_SLACK_PX
    edge = np.zeros(n + 1, bool)
    edge[labels[ys[near], xs[near]]] = True
    edge[0] = False
    return edge


def _frame_exits(mask, zones, dist, labels, alive, at_border, first_id):
    """Where a junction zone meets the frame's edge, hairs leave the frame inside the zone and
    no branch reaches the edge for them (hairs of one unit crowding the frame, a crossing cut
    by it). Each run of hair along the edge there that no counted branch reaches becomes a
    branch of its own, pointing out of the frame along the hair, for the zone's pairing: a
    hair that continues it is a hair leaving the frame; a run that continues none is a hair
    seen only inside the zone. Returns (zone, (id, direction, contact, half-width)) items,
    ids from `first_id`."""
    counted = (labels > 0) & alive[labels] & at_border[labels]
    out = []
    for side in range(4):
        m, d, z = (_from_side(arr, side) for arr in (mask, dist, zones))
        # Where counted branches already leave the frame: their centre lines' ends, projected
        # onto the edge (not their widths: a merged blob's branch is as wide as two hairs).
        depth, pos = np.nonzero(_from_side(counted, side))
        reached = np.zeros(m.shape[1], bool)
        for p in pos[depth - d[depth, pos] <= EDGE_SLACK_PX]:
            reached[max(0, p - 2) : p + 3] = True
        for a, b in _runs(m[0]):
            if b - a < 2 or reached[a:b].any():
                continue
            found = _frame_exit(m, z, a, b)
            if found is not None:
                zone, slope = found
                mid = (a + b - 1) / 2.0
                corner = ((0, 0), (0, mask.shape[0] - 1), (0, 0), (mask.shape[1] - 1, 0))[side]
                contact = np.add(corner, _step(side, mid, 0.0))
                direction = _step(side, -slope, -1.0)  # outwards: back along the hair's drift
                half = float(d[0, int(mid)]) or (b - a) / 2.0
                out.append((zone, (first_id + len(out), direction / np.hypot(*direction), contact, half)))
    return out


def _from_side(a: np.ndarray, side: int) -> np.ndarray:
    """A view of `a` with one side of the frame (top, bottom, left, right) as its row 0: row t
    is t px in from that side, column p is p px along it."""
    return (a, a[::-1], a.T, a.T[::-1])[side]


def _step(side: int, along: float, inwards: float) -> np.ndarray:
    """The image's (dx, dy) for a step along and into the frame from one side (`_from_side`)."""
    return np.array(((along, inwards), (along, -inwards), (inwards, along), (-inwards, along))[side], float)


def _frame_exit(m, z, a, b):
    """For the run [a, b) of hair on row 0 of a `_from_side` view: the junction zone it lies in
    and how far the hair moves along the edge per pixel inwards; None outside any zone."""
    r, mid = int(b - a) + 4, int((a + b - 1) / 2.0)
    window = np.s_[: r + 1, max(0, mid - r) : mid + r + 1]
    zs = z[window][m[window]]
    zs = zs[zs > 0]
    if not len(zs):
        return None  # not in a zone: a fringe or a speck of the map, not a hidden hair
    return int(np.bincount(zs).argmax()), _run_slope(m, a, b)


def _run_slope(m, a, b):
    """How far the hair crossing row 0 of a `_from_side` view at run [a, b) moves along the
    edge per row inwards: the run is followed row by row until it merges with another hair or
    ends."""
    depth_max = min(3 * (b - a) + 4, m.shape[0] - 1)
    lo, hi, width = a, b, b - a
    depths, mids = [0], [(a + b - 1) / 2.0]
    for t in range(1, depth_max):
        runs = [(s, e) for s, e in _runs(m[t]) if s < hi and e > lo]
        if len(runs) != 1 or not 0.5 * width <= runs[0][1] - runs[0][0] <= 1.5 * width:
            break
        lo, hi = runs[0]
        depths.append(t)
        mids.append((lo + hi - 1) / 2.0)
    if len(depths) < 3:
        return 0.0
    return float(np.polyfit(depths, mids, 1)[0])


def _runs(line: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a boolean line."""
    d = np.diff(np.concatenate([[0], line.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def coords_by_label(labels, n):
    """Pixels (x, y) of each label 0 .. n-1 (0, the background, gets none), row-major within each."""
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    order = np.argsort(lab, kind="stable")
    splits = np.searchsorted(lab[order], np.arange(1, n + 1))
    xy = np.stack([xs[order], ys[order]], 1)
    out = [np.zeros((0, 2), int)]
    for i in range(1, n):
        out.append(xy[splits[i - 1] : splits[i]])
    return out


def _bridge_shared_stretches(zone_branches, unpaired_at, contacts, alive, uf):
    """Two hairs crossing at a shallow angle run together for a stretch: the skeleton shows a
    fork, one shared branch and another fork. Each fork pairs the shared branch with one of the
    hairs, so the other hair is left unpaired at both forks and would count twice (on the
    benchmark's unclipped fields the graph read density 10-18% high, mostly from this). A branch
    left unpaired at each end of the shared one, both continuing it, is that second hair."""
    direction = {(it[0], z): it[1] for z, items in zone_branches.items() for it in items}
    for s, touched in contacts.items():
        if not alive[s] or len(touched) != 2:  # a branch from one junction zone to another
            continue
        ends = [_continuation(s, z, unpaired_at[z], direction) for z in touched]
        if None in ends or uf.find(ends[0]) == uf.find(ends[1]):
            continue
        uf.union(*ends)
        for z, b in zip(touched, ends, strict=True):
            unpaired_at[z].remove(b)  # it passes through: not a hair leaving this junction


def _continuation(s, z, unpaired, direction):
    """The unpaired branch at zone z that best continues branch s through it, if any does."""
    d_s = direction[(s, z)]
    cos, b = max(((-float(direction[(b, z)] @ d_s), b) for b in unpaired if b != s), default=(-1.0, None))
    return b if cos >= PAIR_COS else None


def _pair_branches(items):
    """Greedy pairing of branches that continue each other through one junction: nearly
    opposite directions *and* on one line (a parallel neighbour offset sideways is another
    hair, which matters in the long zones where hairs cross at shallow angles)."""
    cand = []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            bi, di, ci, hi = items[i]
            bj, dj, cj, hj = items[j]
            c = -float(di @ dj)
            if c < PAIR_COS:
                continue
            axis = (di - dj) / (np.hypot(*(di - dj)) + 1e-9)  # mean line direction through the zone
            gap = cj - ci
            offset = abs(float(gap[0] * axis[1] - gap[1] * axis[0]))
            if offset <= 1.5 * max(hi, hj) + 2:
                cand.append((c - 0.05 * offset / (max(hi, hj) + 1), bi, bj))
    cand.sort(reverse=True)
    used, pairs = set(), []
    for _, a, b in cand:
        if a not in used and b not in used:
            used |= {a, b}
            pairs.append((a, b))
    return pairs


def _calibers(prob, skel, labels, zones, chains, paths, length, free_ends, dist, shape):
    """Per-hair width = coverage mass around its centre line / centre-line length.

    Mass near junctions belongs to two hairs at once, so both the mass and the centre line
    within a junction zone (plus a 2 px margin) are left out."""
    h, w = shape
    # A centre-line pixel only measures width when its whole cross-section is clear of zones.
    dz = cv2.distanceTransform((zones == 0).astype(np.uint8), cv2.DIST_L2, 5)
    sy, sx = np.nonzero(skel)
    lbl = labels[sy, sx]
    ok = (lbl > 0) & (dz[sy, sx] > dist[sy, sx] * 1.5 + 2)
    ok_branch = np.zeros(skel.shape, bool)
    ok_branch[sy[ok], sx[ok]] = True
    _, nearest = cv2.distanceTransformWithLabels(
        (~skel).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # distanceTransformWithLabels numbers zero pixels in row-major order, from 1. Mass is summed
    # only where there is coverage outside the zones, in the same row-major order as over the image.
    lut = np.zeros(len(sy) + 1, np.int32)
    lut[1:] = np.where(ok, lbl, -1)
    where = np.flatnonzero((prob > 0.02) & (zones == 0))
    pix_branch = lut[nearest.ravel()[where]]
    keep = pix_branch > 0
    nb = int(labels.max()) + 1
    mass = np.bincount(pix_branch[keep], weights=prob.ravel()[where[keep]], minlength=nb)
    len_ok = np.zeros(nb)
    for b in range(1, nb):
        pth = paths[b]
        if len(pth):
            len_ok[b] = path_length(pth, ok_branch[pth[:, 1], pth[:, 0]])
    cal = np.zeros(len(chains))
    lens = np.zeros(len(chains))
    cents = np.zeros((len(chains), 2))
    for i, chain in enumerate(chains):
        m = sum(mass[b] for b in chain)
        ln = sum(len_ok[b] for b in chain)
        n_free = sum(1 for b in chain for (x, y) in free_ends.get(b, ()) if 2 < x < w - 3 and 2 < y < h - 3)
        lens[i] = sum(length[b] for b in chain)
        pts = np.vstack([paths[b] for b in chain])
        cents[i] = pts.mean(0)
        if ln >= 2 and m > 0:
            w0 = m / ln
            cal[i] = m / (ln + n_free * w0 * 0.5)  # the skeleton stops half a width short of a tip
        else:
            cal[i] = 2 * float(dist[pts[:, 1], pts[:, 0]].mean())
    return cal, lens, cents


def _openings(zone_branches, unpaired_at, free_ends, length, at_border, stem_px):
    """Branches leaving each zone from one follicular opening: the unpaired ones and, beside
    them, a short branch with a free end. That is the stem: near the opening a unit's hairs
    still overlap, and the fork pairs the stem with one of them, so only the others leave the
    fork unpaired. Without the stem the hair paired through it looked like a unit of its own
    (1-hair units read 46-70% too many on three benchmark seed sets, 5-23% with it)."""
    out = {}
    for z, items in zone_branches.items():
        leaving = list(unpaired_at[z])  # every zone has an entry (build_hair_graph)
        if leaving:
            leaving += [
                b for b, *_ in items if b not in leaving and b in free_ends and length[b] < stem_px and not at_border[b]
            ]
        out[z] = leaving
    return out


def _follicular_units(chains, chain_of, openings, free_ends, mm_per_px, shape):
    """Hairs that leave one junction from one opening (`_openings`), or whose free ends nearly
    touch, share an opening; each connected group is one follicular unit."""
    h, w = shape
    uf = _UnionFind(len(chains))
    for branches in openings.values():
        ids = [chain_of[b] for b in branches if b in chain_of]
        for a in ids[1:]:
            uf.union(ids[0], a)
    ends = [[] for _ in chains]
    pts, owners = [], []
    for b, lst in free_ends.items():
        if b in chain_of:
            for x, y in lst:
                ends[chain_of[b]].append((x, y))
                if 2 < x < w - 3 and 2 < y < h - 3:
                    pts.append((x, y))
                    owners.append(chain_of[b])
    if pts:
        p = np.asarray(pts)
        link = FU_LINK_MM / mm_per_px
        d = np.hypot(p[:, None, 0] - p[None, :, 0], p[:, None, 1] - p[None, :, 1])
        for i, j in zip(*np.nonzero(np.triu(d < link, 1)), strict=True):
            if owners[i] != owners[j]:
                uf.union(owners[i], owners[j])
    groups: dict[int, int] = {}
    for i in range(len(chains)):
        groups[uf.find(i)] = groups.get(uf.find(i), 0) + 1
    return list(groups.values()), ends


# ---------------------------------------------------------------- overview values


def scalp_visibility(prob: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Fraction of the scalp area not covered by hair (1 = bare)."""
    if valid is not None:
        return float(1 - prob[valid].mean()) if valid.any() else float("nan")
    return float(1 - prob.mean())


def part_width_px(
    prob: np.ndarray, valid: np.ndarray | None = None, smooth_px: float = 2.0
) -> tuple[float, float] | None:
    """Width of the most pronounced straight bare band, and its angle in degrees.

    Coverage is averaged along each candidate direction; the part is the deepest trough of
    that profile. Each edge is where the rising ramp of the amount of hair, extrapolated down,
    meets the trough floor (hairs are combed away, so coverage rises gradually from the real
    edge; see _trough_width)."""
    h, w = prob.shape
    valid = np.ones_like(prob, bool) if valid is None else valid
    best = None
    for ang in np.arange(0, 180, 3.0):
        prof = _profile(prob, valid, ang, smooth_px)
        if prof is None:
            continue
        depth = _trough_sharpness(prof)
        if best is None or depth > best[0]:
            best = (depth, ang)
    if best is None or best[0] < 0.1:
        return None
    # Refine the angle around the best coarse one.
    angs = np.arange(best[1] - 3, best[1] + 3.01, 0.5)
    ang = max(angs, key=lambda a: _trough_sharpness(_profile(prob, valid, a, smooth_px)))
    prof = _profile(prob, valid, ang, smooth_px)
    width = _trough_width(prof, smooth_px)
    if width is None or width <= 0 or width > MAX_PART_FRACTION * len(prof):
        return None  # a bare area this wide is thinning or forehead, not a part: say so
    return float(width), float(ang % 180)


def _profile(prob, valid, ang, smooth_px):
    h, w = prob.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), ang, 1.0)
    d = int(np.hypot(h, w)) + 2
    m[:, 2] += [(d - w) / 2, (d - h) / 2]
    rp = cv2.warpAffine(prob, m, (d, d), flags=cv2.INTER_LINEAR)
    rv = cv2.warpAffine(valid.astype(np.float32), m, (d, d), flags=cv2.INTER_NEAREST)
    cnt = rv.sum(0)
    ok = cnt > 0.5 * h
    if ok.sum() < 20:
        return None
    prof = rp.sum(0)[ok] / cnt[ok]
    return cv2.GaussianBlur(prof.reshape(1, -1).astype(np.float32), (0, 0), smooth_px).ravel()


def _trough(prof) -> tuple[float, int]:
    """Depth below the profile's median, and position, of the lowest point that has hair at
    least at the median level on both sides. A bare stretch running out of the frame (hair the
    network lost in a dark corner, or the forehead) has no hair beyond it, so it is no part,
    however low it reads."""
    plateau = float(np.median(prof))
    left = np.maximum.accumulate(prof)
    right = np.maximum.accumulate(prof[::-1])[::-1]
    inside = (left >= plateau) & (right >= plateau)
    i = int(np.argmin(np.where(inside, prof, np.inf)))
    return plateau - float(prof[i]), i


def _trough_sharpness(prof):
    return -1.0 if prof is None else _trough(prof)[0]


def _trough_width(prof, smooth_px=2.0):
    i0 = _trough(prof)[1]
    floor = float(np.percentile(prof[max(0, i0 - 2) : i0 + 3], 50))
    plateau = float(np.median(prof))
    if plateau - floor < 0.05:
        return None
    # Hairs overlap at random, so coverage saturates as 1 - exp(-amount of hair): the amount,
    # not the coverage, grows in proportion to the distance from the part's edge.
    amount = _hair_amount(prof)
    left = _edge(prof, amount, i0, -1, floor, plateau, smooth_px)
    right = _edge(prof, amount, i0, +1, floor, plateau, smooth_px)
    if left is None or right is None:
        return None
    return right - left


def _hair_amount(coverage):
    """Amount of hair under randomly overlapping strands, from coverage = 1 - exp(-amount)."""
    return -np.log1p(-np.clip(coverage, 0.0, 0.98))


def _edge(prof, amount, i0, step, floor, plateau, smooth_px=2.0):
    """Edge of the bare band on one side of the trough.

    A short ramp is a sharp edge softened only by optics and our smoothing: its half-depth
    crossing is the edge. A long ramp is hair combed away from the part, more of it with
    distance: there the edge is where the ramp of the amount of hair (25-60% of the coverage
    depth), extrapolated, meets the trough floor."""
    half = (floor + plateau) / 2
    k = i0
    while 0 <= k + step < len(prof) and prof[k + step] < half:
        k += step
    nxt = k + step
    x_half = float(k)
    if 0 <= nxt < len(prof) and prof[nxt] != prof[k]:
        x_half = k + step * (half - prof[k]) / (prof[nxt] - prof[k])
    lo, hi = floor + 0.25 * (plateau - floor), floor + 0.6 * (plateau - floor)
    xs, ys = [], []
    i = i0
    while 0 <= i < len(prof) and prof[i] <= hi:
        if prof[i] >= lo:
            xs.append(i)
            ys.append(amount[i])
        i += step
    if len(xs) < 3:
        return x_half
    slope, icpt = np.polyfit(xs, ys, 1)
    if abs(slope) < 1e-6:
        return x_half
    x_foot = float((_hair_amount(floor) - icpt) / slope)
    return x_half if abs(x_half - x_foot) < 2.5 * smooth_px else x_foot
