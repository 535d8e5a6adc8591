"""Procedural street scenes painted in the Cityscapes palette, in the Kaggle pairs layout.

No real data set can be downloaded on the project's machines, so this generator is the
default data for the demo, tests and benchmarks. Scenes use one-point perspective (a
vanishing point on the horizon; objects shrink toward it), draw far to near so near
objects occlude far ones, vary texture and lighting, and give neighbouring classes
overlapping colours (grey road, pavement, buildings, walls, cars and overcast sky;
green trees and grass) so that a model needs shape and context, not pixel colour.

Each image is a pure function of (seed, split, index): any subset can be regenerated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hybridunet.data.labels import LABELS, label_id_to_train_id
from hybridunet.errors import OutputExistsError

# labelIds (see labels.LABELS)
EGO, STATIC, GROUND, ROAD, SIDEWALK, PARKING = 1, 4, 6, 7, 8, 9
BUILDING, WALL, FENCE, POLE = 11, 12, 13, 17
LIGHT, SIGN, VEGETATION, TERRAIN, SKY = 19, 20, 21, 22, 23
PERSON, RIDER, CAR, TRUCK, BUS, MOTORCYCLE, BICYCLE = 24, 25, 26, 27, 28, 32, 33

LABEL_COLORS = np.zeros((256, 3), np.uint8)
for _label in LABELS:
    if _label.id >= 0:
        LABEL_COLORS[_label.id] = _label.color
TRAIN_IDS = label_id_to_train_id()
JPEG_444 = (cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444)

# Texture: fine-grain and blotchy noise amplitude per labelId (photo levels).
FINE = np.full(256, 6.0, np.float32)
BLOTCH = np.full(256, 6.0, np.float32)
FINE[[ROAD, SIDEWALK, PARKING, GROUND]] = 9
FINE[[VEGETATION]], BLOTCH[[VEGETATION]] = 22, 26
FINE[[TERRAIN]], BLOTCH[[TERRAIN]] = 14, 18
FINE[[SKY]], BLOTCH[[SKY]] = 2, 10
FINE[[BUILDING, WALL]], BLOTCH[[BUILDING, WALL]] = 8, 14


@dataclass
class View:
    """One-point perspective: world (X lateral, Z up) at depth scale s -> pixel (x, y).

    s is 1 at the bottom image row and 0 on the horizon; ground rows are linear in s.
    """

    size: int
    horizon: float
    vanish_x: float

    def xy(self, X: float, Z: float, s: float) -> tuple[float, float]:
        return self.vanish_x + X * s * self.size, self.horizon + s * (self.size - self.horizon) - Z * s * self.size

    def quad(self, X0: float, X1: float, Z0: float, Z1: float, s: float) -> np.ndarray:
        """A world rectangle facing the camera at depth s."""
        (x0, y0), (x1, y1) = self.xy(X0, Z0, s), self.xy(X1, Z1, s)
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])

    def side(self, X: float, Z0: float, Z1: float, s0: float, s1: float) -> np.ndarray:
        """A world rectangle along the street (a facade, a kerb) from depth s0 to s1."""
        return np.array([self.xy(X, Z0, s0), self.xy(X, Z0, s1), self.xy(X, Z1, s1), self.xy(X, Z1, s0)])

    def sides(self, X: float, Z0: np.ndarray, Z1: np.ndarray, s0: np.ndarray, s1: np.ndarray) -> np.ndarray:
        """Many such rectangles at once: (n, 4, 2) corners."""
        corners = [(Z0, s0), (Z0, s1), (Z1, s1), (Z1, s0)]
        return np.stack([np.stack(self.xy(X, Z, s), -1) for Z, s in corners], 1)


class Canvas:
    """Paints a photo and its labelId map together, so the truth is exact by construction."""

    def __init__(self, size: int) -> None:
        self.photo = np.zeros((size, size, 3), np.uint8)
        self.labels = np.zeros((size, size), np.uint8)

    def poly(self, points: np.ndarray | list[np.ndarray], label: int, color) -> None:
        polys = [np.round(p).astype(np.int32) for p in (points if isinstance(points, list) else [points])]
        cv2.fillPoly(self.labels, polys, int(label))
        cv2.fillPoly(self.photo, polys, _rgb(color))

    def paint(self, points: np.ndarray | list[np.ndarray], color) -> None:
        """Photo only (windows, wheels, markings): the label underneath stays."""
        polys = [np.round(p).astype(np.int32) for p in (points if isinstance(points, list) else [points])]
        cv2.fillPoly(self.photo, polys, _rgb(color))

    def ellipse(self, centre, axes, label: int | None, color) -> None:
        c = (int(round(centre[0])), int(round(centre[1])))
        a = (max(1, int(round(axes[0]))), max(1, int(round(axes[1]))))
        if label is not None:
            cv2.ellipse(self.labels, c, a, 0, 0, 360, int(label), -1)
        cv2.ellipse(self.photo, c, a, 0, 0, 360, _rgb(color), -1)

    def line(self, p0, p1, width: float, label: int | None, color) -> None:
        a, b = tuple(int(round(v)) for v in p0), tuple(int(round(v)) for v in p1)
        w = max(1, int(round(width)))
        if label is not None:
            cv2.line(self.labels, a, b, int(label), w)
        cv2.line(self.photo, a, b, _rgb(color), w)


def _rgb(color) -> tuple[int, int, int]:
    return tuple(min(255, max(0, int(c))) for c in color)


def _grey(rng: np.random.Generator, lo: float, hi: float, tint: float = 8) -> np.ndarray:
    return rng.uniform(lo, hi) + rng.uniform(-tint, tint, 3)


class SceneRenderer:
    """Draws one street scene from a random generator."""

    CAR_COLORS = np.array(
        [[200, 200, 205], [40, 40, 45], [120, 122, 128], [160, 30, 30], [30, 60, 140], [235, 235, 235], [90, 100, 80]]
    )
    CLOTHES = np.array([[30, 30, 40], [200, 190, 170], [150, 40, 40], [40, 70, 130], [90, 90, 90], [60, 100, 60]])

    def __init__(self, rng: np.random.Generator, size: int) -> None:
        self.rng, self.size = rng, size
        self.view = View(size, horizon=size * rng.uniform(0.34, 0.5), vanish_x=size * rng.uniform(0.35, 0.65))
        self.canvas = Canvas(size)
        self.road = rng.uniform(0.3, 0.55)  # half-width of the road (world units)
        self.walk = rng.uniform(0.12, 0.3)  # sidewalk width
        self.setback = rng.uniform(0.0, 0.25) if rng.random() < 0.5 else 0.0  # grass before facades
        self.facade = self.road + self.walk + self.setback

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        self._sky_and_ground()
        drawables = []  # (depth, draw) pairs, painted far to near for occlusion
        for side in (-1, 1):
            drawables += self._buildings(side)
            drawables += self._street_furniture(side)
            drawables += self._people(side)
        drawables += self._vehicles()
        for _, draw in sorted(drawables, key=lambda d: d[0]):
            draw()
        self._ego_vehicle()
        return self._light_and_texture(), self.canvas.labels

    # -- layers -------------------------------------------------------------------------
    def _sky_and_ground(self) -> None:
        rng, v, c, S = self.rng, self.view, self.canvas, self.size
        overcast = rng.random() < 0.35
        top = _grey(rng, 170, 225, 5) if overcast else np.array([rng.uniform(60, 120), rng.uniform(120, 170), rng.uniform(190, 245)])
        bottom = _grey(rng, 190, 240, 5) if overcast else top + rng.uniform(20, 60)
        ramp = np.linspace(0, 1, S, dtype=np.float32)[:, None, None]
        c.photo[:] = np.clip(top + (bottom - top) * ramp, 0, 255).astype(np.uint8)
        c.labels[:] = SKY
        far, near = 0.0, 1.6
        road_color = _grey(rng, 70, 130, 6) + np.array([4, 0, 6])
        for side in (-1, 1):
            kerb, outer = side * self.road, side * (self.road + self.walk)
            walk_color = _grey(rng, 105, 175, 8) + (np.array([18, 0, 6]) if rng.random() < 0.3 else 0)
            c.poly(_ground(v, kerb, outer, far, near), SIDEWALK, walk_color)
            if self.setback:
                c.poly(_ground(v, outer, side * self.facade, far, near), TERRAIN, [rng.uniform(80, 150), rng.uniform(130, 185), rng.uniform(50, 100)])
            beyond = side * (self.facade + 3)
            c.poly(_ground(v, side * self.facade, beyond, far, near), GROUND, walk_color * 0.9)
            if rng.random() < 0.3:  # a parking bay on the sidewalk (void in Cityscapes)
                s0 = rng.uniform(0.3, 0.7)
                c.poly(_ground(v, kerb, kerb + side * self.walk * 0.6, s0, s0 + 0.25), PARKING, walk_color * 0.92)
        c.poly(_ground(v, -self.road, self.road, far, near), ROAD, road_color)
        # Dashed centre line and shadows: photo only, the label stays road.
        for s in np.arange(rng.uniform(0.05, 0.2), near, 0.22):
            c.paint(_ground(v, -0.012, 0.012, s, s + 0.09), _grey(rng, 190, 230, 3))
        for _ in range(rng.integers(0, 3)):
            s0 = rng.uniform(0.3, 1.0)
            X0 = rng.uniform(-self.facade, self.facade)
            c.paint(_ground(v, X0, X0 + rng.uniform(0.2, 0.6), s0, s0 + rng.uniform(0.1, 0.3)), road_color * 0.6)

    def _buildings(self, side: int) -> list:
        rng, v = self.rng, self.view
        out, s = [], rng.uniform(0.02, 0.06)
        X = side * self.facade
        while s < 1.6:
            length = rng.uniform(0.08, 0.35) * max(s, 0.15)
            s1 = s + length
            height = rng.uniform(0.35, 1.2)
            if rng.random() < 0.15:  # a gap with a tree instead of a building
                out.append((s, self._tree_at(X - side * 0.05, s + length / 2)))
            else:
                out.append((s, self._building_at(X, s, s1, height)))
                if rng.random() < 0.25:
                    kind = WALL if rng.random() < 0.5 else FENCE
                    out.append((s + 1e-3, self._low_barrier(X - side * 0.02, s, s1, kind)))
            s = s1
        return out

    def _building_at(self, X: float, s0: float, s1: float, height: float):
        rng, v, c = self.rng, self.view, self.canvas
        color = _grey(rng, 60, 200, 12) + (np.array([25, 12, -5]) if rng.random() < 0.35 else 0)
        rows, cols = rng.integers(2, 7), rng.integers(2, 6)
        window = _grey(rng, 30, 90, 10) + np.array([0, 5, 15])

        def draw() -> None:
            c.poly(v.side(X, 0, height, s0, s1), BUILDING, color)
            if height * s0 * self.size < 3 * rows:  # too far away for windows to show
                return
            z0 = height * (0.1 + 0.85 * np.arange(rows) / rows)
            a = s0 + (s1 - s0) * (0.1 + 0.85 * np.arange(cols) / cols)
            z0, a = np.meshgrid(z0, a, indexing="ij")
            z1, b = z0 + height * 0.5 / rows, a + (s1 - s0) * 0.5 / cols
            wins = list(v.sides(X, z0.ravel(), z1.ravel(), a.ravel(), b.ravel()))
            c.paint(wins, window)

        return draw

    def _low_barrier(self, X: float, s0: float, s1: float, kind: int):
        rng, v, c = self.rng, self.view, self.canvas
        height = rng.uniform(0.06, 0.15)
        color = _grey(rng, 95, 165, 10) if kind == WALL else _grey(rng, 100, 190, 15) + np.array([15, 5, 5])

        def draw() -> None:
            c.poly(v.side(X, 0, height, s0, s1), kind, color)
            if kind == FENCE:
                for a in np.linspace(s0, s1, 6):
                    c.line(v.xy(X, 0, a), v.xy(X, height, a), max(1, a * 3), None, color * 0.55)

        return draw

    def _tree_at(self, X: float, s: float):
        rng, v, c = self.rng, self.view, self.canvas
        trunk_h, crown = rng.uniform(0.2, 0.45), rng.uniform(0.12, 0.3)
        green = np.array([rng.uniform(40, 110), rng.uniform(80, 150), rng.uniform(20, 70)])
        blobs = [(rng.uniform(-1, 1) * crown * 0.6, trunk_h + rng.uniform(0, crown), rng.uniform(0.5, 1.0) * crown) for _ in range(4)]

        def draw() -> None:
            c.line(v.xy(X, 0, s), v.xy(X, trunk_h, s), max(1, 0.02 * s * self.size), VEGETATION, [90, 70, 50])
            for dx, z, r in blobs:
                x, y = v.xy(X + dx, z, s)
                c.ellipse((x, y), (r * s * self.size, r * s * self.size * 0.8), VEGETATION, green * rng.uniform(0.8, 1.15))

        return draw

    def _street_furniture(self, side: int) -> list:
        rng, v, c = self.rng, self.view, self.canvas
        out = []
        X = side * (self.road + 0.04)
        for s in np.sort(rng.uniform(0.15, 1.3, rng.integers(1, 5))):
            kind = rng.choice(["pole", "light", "sign", "tree", "static"], p=[0.2, 0.2, 0.25, 0.25, 0.1])
            if kind == "tree":
                out.append((s, self._tree_at(X + side * 0.04, s)))
                continue
            if kind == "static":  # a bin or box: void in Cityscapes
                box = _grey(rng, 40, 140, 20)
                out.append((s, lambda s=s, box=box: c.poly(v.quad(X - 0.04, X + 0.04, 0, 0.1, s), STATIC, box)))
                continue
            top = rng.uniform(0.45, 0.9)
            metal = _grey(rng, 90, 170, 4)

            def draw(s=s, kind=kind, top=top, metal=metal) -> None:
                c.line(v.xy(X, 0, s), v.xy(X, top, s), max(1, 0.012 * s * self.size), POLE, metal)
                if kind == "light":
                    box = v.quad(X - 0.035, X + 0.035, top - 0.02, top + 0.13, s)
                    c.poly(box, LIGHT, [35, 35, 30])
                    lamp = [(250, 40, 30), (250, 190, 30), (40, 220, 80)][rng.integers(3)]
                    x, y = v.xy(X, top + 0.08, s)
                    c.ellipse((x, y), (0.015 * s * self.size,) * 2, None, lamp)
                elif kind == "sign":
                    x, y = v.xy(X, top + 0.03, s)
                    r = rng.uniform(0.03, 0.05) * s * self.size
                    face = [(200, 30, 30), (30, 70, 170), (240, 240, 240), (230, 200, 40)][rng.integers(4)]
                    if rng.random() < 0.5:
                        c.ellipse((x, y), (r, r), SIGN, face)
                    else:
                        c.poly(np.array([[x - r, y - r], [x + r, y - r], [x + r, y + r], [x - r, y + r]]), SIGN, face)

            out.append((s, draw))
        return out

    def _people(self, side: int) -> list:
        rng = self.rng
        out = []
        for s in rng.uniform(0.15, 1.05, rng.integers(0, 4)):
            X = side * (self.road + rng.uniform(0.05, 0.9) * self.walk)
            out.append((s, self._person_at(X, s, PERSON, rng.uniform(0.28, 0.36))))
        return out

    def _person_at(self, X: float, s: float, label: int, height: float, z0: float = 0.0):
        rng, v, c = self.rng, self.view, self.canvas
        top_c, leg_c = self.CLOTHES[rng.integers(len(self.CLOTHES))], self.CLOTHES[rng.integers(len(self.CLOTHES))]
        skin = np.array([rng.uniform(120, 230)] * 3) * np.array([1.0, 0.8, 0.65])
        w = height * 0.22

        def draw() -> None:
            c.poly(v.quad(X - w / 2, X - w / 10, z0, z0 + height * 0.48, s), label, leg_c)
            c.poly(v.quad(X + w / 10, X + w / 2, z0, z0 + height * 0.48, s), label, leg_c)
            c.poly(v.quad(X - w / 2, X + w / 2, z0 + height * 0.45, z0 + height * 0.85, s), label, top_c)
            x, y = v.xy(X, z0 + height * 0.92, s)
            c.ellipse((x, y), (w * 0.3 * s * self.size, w * 0.38 * s * self.size), label, skin)

        return draw

    def _vehicles(self) -> list:
        rng = self.rng
        out = []
        lanes = [-self.road * 0.5, self.road * 0.5]
        for s in rng.uniform(0.08, 1.0, rng.integers(1, 6)):
            X = lanes[rng.integers(2)] + rng.uniform(-0.08, 0.08)
            kind = rng.choice([CAR, TRUCK, BUS, MOTORCYCLE, BICYCLE], p=[0.62, 0.1, 0.08, 0.08, 0.12])
            if kind in (MOTORCYCLE, BICYCLE):
                X = np.sign(X) * (self.road - 0.08)
                out.append((s, self._two_wheeler(X, s, kind)))
            else:
                out.append((s, self._box_vehicle(X, s, kind)))
        return out

    def _box_vehicle(self, X: float, s: float, kind: int):
        rng, v, c = self.rng, self.view, self.canvas
        w, h = {CAR: (0.36, 0.2), TRUCK: (0.46, 0.5), BUS: (0.5, 0.6)}[kind]
        w, h = w * rng.uniform(0.9, 1.1), h * rng.uniform(0.9, 1.1)
        body = self.CAR_COLORS[rng.integers(len(self.CAR_COLORS))] * rng.uniform(0.8, 1.1)
        glass = _grey(rng, 20, 70, 5) + np.array([0, 5, 12])

        def draw() -> None:
            c.poly(v.quad(X - w / 2, X + w / 2, 0.04, h, s), kind, body)
            if kind == CAR:  # cabin above the body
                c.poly(v.quad(X - w * 0.38, X + w * 0.38, h, h * 1.55, s), kind, body)
                c.paint(v.quad(X - w * 0.32, X + w * 0.32, h * 1.05, h * 1.45, s), glass)
            else:
                c.paint(v.quad(X - w * 0.45, X + w * 0.45, h * 0.6, h * 0.9, s), glass)
            for dx in (-w * 0.36, w * 0.36):
                c.poly(v.quad(X + dx - w * 0.08, X + dx + w * 0.08, 0.0, 0.06, s), kind, [20, 20, 20])
                c.paint(v.quad(X + dx - w * 0.06, X + dx + w * 0.02, h * 0.7, h * 0.8, s), [200, 30, 20])

        return draw

    def _two_wheeler(self, X: float, s: float, kind: int):
        rng, v, c = self.rng, self.view, self.canvas
        frame = self.CAR_COLORS[rng.integers(len(self.CAR_COLORS))]
        rider = self._person_at(X, s, RIDER, 0.3, z0=0.1)
        r = 0.055 if kind == BICYCLE else 0.065

        def draw() -> None:
            for dz in (0.0,):
                x, y = v.xy(X, r + dz, s)
                c.ellipse((x, y), (r * 0.35 * s * self.size, r * s * self.size), kind, [25, 25, 25])
            c.line(v.xy(X, r, s), v.xy(X, 0.16, s), max(1, 0.02 * s * self.size), kind, frame)
            rider()

        return draw

    def _ego_vehicle(self) -> None:
        if self.rng.random() < 0.5:
            S = self.size
            y = S * self.rng.uniform(0.86, 0.95)
            hood = np.array([[0, S], [0, y + 0.03 * S], [S / 2, y], [S, y + 0.03 * S], [S, S]])
            self.canvas.poly(hood, EGO, _grey(self.rng, 20, 70, 5))

    def _light_and_texture(self) -> np.ndarray:
        rng, S, labels = self.rng, self.size, self.canvas.labels
        photo = self.canvas.photo.astype(np.float32)
        fine = rng.standard_normal((S, S), dtype=np.float32)
        blotch = cv2.resize(rng.standard_normal((S // 8, S // 8), dtype=np.float32), (S, S), interpolation=cv2.INTER_CUBIC)
        photo += (fine * FINE[labels] + blotch * BLOTCH[labels])[..., None]
        # Light: exposure, colour temperature, a soft left-right gradient and gamma.
        gain = rng.uniform(0.65, 1.25) * np.array([1 + rng.uniform(-0.08, 0.08), 1, 1 + rng.uniform(-0.08, 0.08)], np.float32)
        ramp = 1 + rng.uniform(-0.25, 0.25) * np.linspace(-1, 1, S, dtype=np.float32)[None, :, None]
        gamma = (255 * (np.arange(256) / 255) ** rng.uniform(0.8, 1.25)).astype(np.uint8)
        return gamma[np.clip(photo * gain * ramp, 0, 255).astype(np.uint8)]


def _ground(v: View, X0: float, X1: float, s0: float, s1: float) -> np.ndarray:
    return np.array([v.xy(X0, 0, s0), v.xy(X1, 0, s0), v.xy(X1, 0, s1), v.xy(X0, 0, s1)])


def render_scene(seed: int, split: str, index: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (RGB photo (S, S, 3) uint8, labelId map (S, S) uint8), a function of its arguments."""
    split_key = int.from_bytes(split.encode()[:8].ljust(8, b"\0"), "little")
    rng = np.random.default_rng([seed, split_key, index])
    return SceneRenderer(rng, size).render()


def write_split(
    out: str | Path, split: str, count: int, size: int = 256, seed: int = 0, labels: bool = False, quality: int = 95
) -> Path:
    """Write `count` pairs as ``out/split/{1..count}.jpg`` (photo | colour mask), and with
    `labels` the exact trainId masks as ``out/{split}_labels/{i}.png``.

    JPEGs use full-resolution chroma (4:4:4): with the common 4:2:0 subsampling, colour
    bleeds across every mask boundary and about 2.5% of mask pixels change class.
    """
    folder = Path(out) / split
    folder.mkdir(parents=True, exist_ok=True)
    label_folder = Path(out) / f"{split}_labels"
    if labels:
        label_folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        photo, label_ids = render_scene(seed, split, i, size)
        pair = np.concatenate([photo, LABEL_COLORS[label_ids]], axis=1)
        cv2.imwrite(str(folder / f"{i}.jpg"), pair[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality, *JPEG_444])
        if labels:
            cv2.imwrite(str(label_folder / f"{i}.png"), TRAIN_IDS[label_ids])
    return folder


def synthesize(
    out: str | Path, train: int = 200, val: int = 50, size: int = 256, seed: int = 0, labels: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic data set in the Kaggle layout (``out/train``, ``out/val``).

    Data already in a split's folders is replaced only with `overwrite`."""
    out = Path(out)
    splits = {"train": train, "val": val}
    for split in splits:
        existing = [*(out / split).glob("*.jpg"), *(out / f"{split}_labels").glob("*.png")]
        if existing and not overwrite:
            raise OutputExistsError(f"{out / split} already holds data ({len(existing)} files); "
                                    "pass --overwrite to replace it")
        for path in existing:
            path.unlink()
    for split, count in splits.items():
        write_split(out, split, count, size=size, seed=seed, labels=labels)
    return out
