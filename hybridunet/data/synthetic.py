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

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hybridunet.data.fingerprint import GENERATOR_JSON
from hybridunet.data.labels import LABELS, label_id_to_train_id
from hybridunet.errors import DataError, OutputExistsError

# labelIds (see labels.LABELS)
EGO, STATIC, GROUND, ROAD, SIDEWALK, PARKING = 1, 4, 6, 7, 8, 9
BUILDING, WALL, FENCE, POLE = 11, 12, 13, 17
LIGHT, SIGN, VEGETATION, TERRAIN, SKY = 19, 20, 21, 22, 23
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = 24, 25, 26, 27, 28, 31, 32, 33
RAIL_TRACK = 10

# Bump when scenes change: the data folder's synthetic.json records it, so data of two
# generator versions never mix silently (version 1: commit 47e7fda and before).
GENERATOR_VERSION = 2

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
        Z, s = np.stack([Z0, Z0, Z1, Z1], 1), np.stack([s0, s1, s1, s0], 1)
        x, y = self.xy(X, Z, s)
        return np.stack([x, y], -1)


class Canvas:
    """Paints a photo and its labelId map together, so the truth is exact by construction."""

    def __init__(self, size: int) -> None:
        self.photo = np.zeros((size, size, 3), np.uint8)
        self.labels = np.zeros((size, size), np.uint8)

    def poly(self, points: np.ndarray | list[np.ndarray], label: int, color) -> None:
        polys = _pixels(points)
        cv2.fillPoly(self.labels, polys, int(label))
        cv2.fillPoly(self.photo, polys, _rgb(color))

    def paint(self, points: np.ndarray | list[np.ndarray], color) -> None:
        """Photo only (windows, wheels, markings): the label underneath stays."""
        cv2.fillPoly(self.photo, _pixels(points), _rgb(color))

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


def _pixels(points: np.ndarray | list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """Polygons as OpenCV takes them: an int32 (n, k, 2) array, or a list of (k, 2) arrays."""
    if isinstance(points, np.ndarray):
        return np.round(points[None] if points.ndim == 2 else points).astype(np.int32)
    return [np.round(p).astype(np.int32) for p in points]


def _rgb(color) -> tuple[int, int, int]:
    r, g, b = color.tolist() if isinstance(color, np.ndarray) else color
    return min(255, max(0, int(r))), min(255, max(0, int(g))), min(255, max(0, int(b)))


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
        self.view = View(size, horizon=size * rng.uniform(0.3, 0.42), vanish_x=size * rng.uniform(0.35, 0.65))
        self.canvas = Canvas(size)
        self.road = rng.uniform(0.5, 0.85)  # half-width of the road (world units)
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
        # Distant buildings along the horizon: a city's skyline, not open sky, ends the street.
        edges = np.sort(rng.uniform(0, S, rng.integers(4, 9)))
        tops = v.horizon - S * rng.uniform(0.15, 0.36, len(edges) + 1)
        xs = np.concatenate([[0], edges, [S]])
        skyline = [np.array([[x0, v.horizon + 1], [x0, t], [x1, t], [x1, v.horizon + 1]])
                   for x0, x1, t in zip(xs[:-1], xs[1:], tops)]
        c.poly(skyline, BUILDING, _grey(rng, 110, 170, 8))
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
            height = rng.uniform(1.6, 4.0)
            if rng.random() < 0.3:  # a gap with a tree instead of a building
                out.append((s, self._tree_at(X - side * 0.05, s + length / 2)))
            else:
                out.append((s, self._building_at(X, s, s1, height)))
                if rng.random() < 0.5:
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
            if height * s0 * self.size < 5 * rows:  # windows under 2.5 pixels tall: too far away to show
                return
            z0 = np.repeat(height * (0.1 + 0.85 * np.arange(rows) / rows), cols)
            a = np.tile(s0 + (s1 - s0) * (0.1 + 0.85 * np.arange(cols) / cols), rows)
            c.paint(v.sides(X, z0, z0 + height * 0.5 / rows, a, a + (s1 - s0) * 0.5 / cols), window)

        return draw

    def _low_barrier(self, X: float, s0: float, s1: float, kind: int):
        rng, v, c = self.rng, self.view, self.canvas
        height = rng.uniform(0.1, 0.3)
        color = _grey(rng, 95, 165, 10) if kind == WALL else _grey(rng, 100, 190, 15) + np.array([15, 5, 5])

        def draw() -> None:
            c.poly(v.side(X, 0, height, s0, s1), kind, color)
            if kind == FENCE:
                for a in np.linspace(s0, s1, 6):
                    c.line(v.xy(X, 0, a), v.xy(X, height, a), max(1, a * 3), None, color * 0.55)

        return draw

    def _tree_at(self, X: float, s: float):
        rng, v, c = self.rng, self.view, self.canvas
        trunk_h, crown = rng.uniform(0.25, 0.6), rng.uniform(0.18, 0.42)
        green = np.array([rng.uniform(40, 110), rng.uniform(80, 150), rng.uniform(20, 70)])
        blobs = list(zip(rng.uniform(-1, 1, 5) * crown * 0.6, trunk_h + rng.uniform(0, crown, 5),
                         rng.uniform(0.5, 1.0, 5) * crown, rng.uniform(0.8, 1.15, 5)))

        def draw() -> None:  # every random value is drawn above, when the tree is placed
            c.line(v.xy(X, 0, s), v.xy(X, trunk_h, s), max(1, 0.02 * s * self.size), VEGETATION, [90, 70, 50])
            for dx, z, r, shade in blobs:
                x, y = v.xy(X + dx, z, s)
                c.ellipse((x, y), (r * s * self.size, r * s * self.size * 0.8), VEGETATION, green * shade)

        return draw

    def _street_furniture(self, side: int) -> list:
        rng, v, c = self.rng, self.view, self.canvas
        out = []
        X = side * (self.road + 0.04)
        for s in np.sort(rng.uniform(0.15, 1.3, rng.integers(2, 7))):
            kind = rng.choice(["pole", "light", "sign", "tree", "static"], p=[0.23, 0.16, 0.28, 0.18, 0.15])
            if kind == "tree":
                out.append((s, self._tree_at(X + side * 0.04, s)))
                continue
            if kind == "static":  # a bin or box: void in Cityscapes
                box = _grey(rng, 40, 140, 20)
                out.append((s, lambda s=s, box=box: c.poly(v.quad(X - 0.04, X + 0.04, 0, 0.1, s), STATIC, box)))
                continue
            top = rng.uniform(0.45, 0.9)
            metal = _grey(rng, 90, 170, 4)
            lamp = [(250, 40, 30), (250, 190, 30), (40, 220, 80)][rng.integers(3)]
            size = rng.uniform(0.05, 0.08)
            face = [(200, 30, 30), (30, 70, 170), (240, 240, 240), (230, 200, 40)][rng.integers(4)]
            round_sign = rng.random() < 0.5

            def draw(s=s, kind=kind, top=top, metal=metal, lamp=lamp, size=size, face=face, round_sign=round_sign) -> None:
                c.line(v.xy(X, 0, s), v.xy(X, top, s), max(1, 0.025 * s * self.size), POLE, metal)
                if kind == "light":
                    box = v.quad(X - 0.035, X + 0.035, top - 0.02, top + 0.13, s)
                    c.poly(box, LIGHT, [35, 35, 30])
                    x, y = v.xy(X, top + 0.08, s)
                    c.ellipse((x, y), (0.015 * s * self.size,) * 2, None, lamp)
                elif kind == "sign":
                    x, y = v.xy(X, top + 0.03, s)
                    r = size * s * self.size
                    if round_sign:
                        c.ellipse((x, y), (r, r), SIGN, face)
                    else:
                        c.poly(np.array([[x - r, y - r], [x + r, y - r], [x + r, y + r], [x - r, y + r]]), SIGN, face)

            out.append((s, draw))
        return out

    def _people(self, side: int) -> list:
        rng = self.rng
        out = []
        for s in rng.uniform(0.15, 1.05, rng.integers(0, 6)):
            X = side * (self.road + rng.uniform(0.05, 0.9) * self.walk)
            out.append((s, self._person_at(X, s, PERSON, rng.uniform(0.28, 0.36))))
        if rng.random() < 0.4:  # bicycles parked along the sidewalk, nobody on them
            for s in rng.uniform(0.2, 1.0, rng.integers(1, 4)):
                X = side * (self.road + rng.uniform(0.6, 0.95) * self.walk)
                out.append((s, self._two_wheeler(X, s, BICYCLE if rng.random() < 0.7 else MOTORCYCLE, ridden=False)))
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
        if rng.random() < 0.06:  # a tram on rails in the middle of the road, not too near
            out.append((0.0, self._rails()))
            s = rng.uniform(0.12, 0.45)
            out.append((s, self._box_vehicle(rng.uniform(-0.05, 0.05), s, TRAIN)))
        for s in rng.uniform(0.08, 1.0, rng.integers(1, 6)):
            X = lanes[rng.integers(2)] + rng.uniform(-0.08, 0.08)
            kind = rng.choice([CAR, TRUCK, BUS, MOTORCYCLE, BICYCLE], p=[0.72, 0.06, 0.05, 0.09, 0.08])
            if kind in (TRUCK, BUS):  # large vehicles further away: many images, few pixels each
                s = rng.uniform(0.08, 0.45)
            if kind in (MOTORCYCLE, BICYCLE):
                X = np.sign(X) * (self.road - 0.08)
                out.append((s, self._two_wheeler(X, s, kind)))
            else:
                out.append((s, self._box_vehicle(X, s, kind)))
        return out

    def _box_vehicle(self, X: float, s: float, kind: int):
        rng, v, c = self.rng, self.view, self.canvas
        w, h = {CAR: (0.36, 0.2), TRUCK: (0.46, 0.5), BUS: (0.5, 0.6), TRAIN: (0.6, 0.65)}[kind]
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

    def _two_wheeler(self, X: float, s: float, kind: int, ridden: bool = True):
        rng, v, c = self.rng, self.view, self.canvas
        frame = self.CAR_COLORS[rng.integers(len(self.CAR_COLORS))]
        rider = self._person_at(X, s, RIDER, 0.3, z0=0.1) if ridden else None
        r = 0.06 if kind == BICYCLE else 0.07
        sideways = not ridden  # parked: seen from the side, both wheels

        def draw() -> None:
            if sideways:
                for dx in (-1.3 * r, 1.3 * r):
                    x, y = v.xy(X + dx, r, s)
                    c.ellipse((x, y), (r * s * self.size, r * s * self.size), kind, [25, 25, 25])
                c.line(v.xy(X - 1.3 * r, r, s), v.xy(X + 1.3 * r, r, s), max(1, 0.025 * s * self.size), kind, frame)
                c.line(v.xy(X, r, s), v.xy(X, 0.17, s), max(1, 0.025 * s * self.size), kind, frame)
            else:
                x, y = v.xy(X, r, s)
                c.ellipse((x, y), (r * 0.45 * s * self.size, r * s * self.size), kind, [25, 25, 25])
                c.line(v.xy(X, r, s), v.xy(X, 0.16, s), max(1, 0.03 * s * self.size), kind, frame)
            if rider is not None:
                rider()

        return draw

    def _rails(self):
        """Tram rails along the road's middle: rail track is void in Cityscapes."""
        v, c = self.view, self.canvas
        color = _grey(self.rng, 80, 120, 5)
        return lambda: c.poly(_ground(v, -0.18, 0.18, 0.0, 1.6), RAIL_TRACK, color)

    def _ego_vehicle(self) -> None:
        if self.rng.random() < 0.75:
            S = self.size
            y = S * self.rng.uniform(0.8, 0.92)
            hood = np.array([[0, S], [0, y + 0.03 * S], [S / 2, y], [S, y + 0.03 * S], [S, S]])
            self.canvas.poly(hood, EGO, _grey(self.rng, 20, 70, 5))

    def _light_and_texture(self) -> np.ndarray:
        rng, S, labels = self.rng, self.size, self.canvas.labels
        photo = self.canvas.photo.astype(np.float32)
        # Grain: uniform noise of unit variance (a tenth of the cost of normal noise), and
        # low-frequency blotches; each class has its own strength of both.
        fine = rng.integers(-127, 128, (S, S), dtype=np.int8).astype(np.float32) * np.float32(1 / 73.3)
        blotch = cv2.resize(rng.standard_normal((S // 8, S // 8), dtype=np.float32), (S, S), interpolation=cv2.INTER_CUBIC)
        photo += (fine * FINE[labels] + blotch * BLOTCH[labels])[..., None]
        # Light: exposure, colour temperature, a soft left-right gradient and gamma.
        gain = rng.uniform(0.65, 1.25) * np.array([1 + rng.uniform(-0.08, 0.08), 1, 1 + rng.uniform(-0.08, 0.08)], np.float32)
        ramp = 1 + rng.uniform(-0.25, 0.25) * np.linspace(-1, 1, S, dtype=np.float32)[None, :, None]
        gamma = (255 * (np.arange(256) / 255) ** rng.uniform(0.8, 1.25)).astype(np.uint8)
        photo *= gain * ramp
        return cv2.LUT(np.clip(photo, 0, 255, out=photo).astype(np.uint8), gamma)


def _ground(v: View, X0: float, X1: float, s0: float, s1: float) -> np.ndarray:
    return np.array([v.xy(X0, 0, s0), v.xy(X1, 0, s0), v.xy(X1, 0, s1), v.xy(X0, 0, s1)])


def render_scene(seed: int, split: str, index: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (RGB photo (S, S, 3) uint8, labelId map (S, S) uint8), a function of its arguments."""
    split_key = int.from_bytes(split.encode()[:8].ljust(8, b"\0"), "little")
    rng = np.random.default_rng([seed, split_key, index])
    return SceneRenderer(rng, size).render()


def _write_pairs(out: str, split: str, indices: range, size: int, seed: int, labels: bool, quality: int) -> None:
    folder, label_folder = Path(out) / split, Path(out) / f"{split}_labels"
    for i in indices:
        photo, label_ids = render_scene(seed, split, i, size)
        pair = np.concatenate([photo, LABEL_COLORS[label_ids]], axis=1)
        cv2.imwrite(str(folder / f"{i}.jpg"), pair[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality, *JPEG_444])
        if labels:
            cv2.imwrite(str(label_folder / f"{i}.png"), TRAIN_IDS[label_ids])


def write_split(
    out: str | Path, split: str, count: int, size: int = 256, seed: int = 0, labels: bool = False, quality: int = 95,
    workers: int = 1,
) -> Path:
    """Write `count` pairs as ``out/split/{1..count}.jpg`` (photo | colour mask), and with
    `labels` the exact trainId masks as ``out/{split}_labels/{i}.png``. With `workers`
    processes the files are the same: each scene is a function of (seed, split, index).

    JPEGs use full-resolution chroma (4:4:4): with the common 4:2:0 subsampling, colour
    bleeds across every mask boundary and about 2.5% of mask pixels change class.
    """
    folder = Path(out) / split
    folder.mkdir(parents=True, exist_ok=True)
    if labels:
        (Path(out) / f"{split}_labels").mkdir(parents=True, exist_ok=True)
    if workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    workers = min(workers, count)
    if workers <= 1:
        _write_pairs(str(out), split, range(1, count + 1), size, seed, labels, quality)
        return folder
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: the workers need only numpy and OpenCV, already imported (spawn would import torch again)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    chunks = [range(1 + k, count + 1, workers) for k in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        for done in [pool.submit(_write_pairs, str(out), split, c, size, seed, labels, quality) for c in chunks]:
            done.result()
    return folder


def generator_record(seed: int, size: int, labels: bool, splits: dict[str, int]) -> dict:
    """What `synthesize` writes to ROOT/synthetic.json: the generator version and its arguments."""
    return {"generator": "hybridunet.data.synthetic", "generator_version": GENERATOR_VERSION, "seed": seed,
            "size": size, "labels": labels, "splits": splits}


def synthesize(
    out: str | Path, train: int = 200, val: int = 50, size: int = 256, seed: int = 0, labels: bool = False,
    overwrite: bool = False, test: int = 0, workers: int = 1,
) -> Path:
    """Write a synthetic data set in the Kaggle layout (``out/train``, ``out/val`` and, with
    `test`, a held-out ``out/test``), recording the generator version and arguments in
    ``out/synthetic.json`` so data of another generator never mixes in silently.

    Data already in the splits' folders is replaced only with `overwrite`."""
    out = Path(out)
    record_path = out / GENERATOR_JSON
    splits = {"train": train, "val": val, **({"test": test} if test else {})}
    existing = [p for split in ("train", "val", "test")
                for p in [*(out / split).glob("*.jpg"), *(out / f"{split}_labels").glob("*.png")]]
    if (existing or record_path.exists()) and not overwrite:
        found = _describe(record_path)
        raise OutputExistsError(f"{out} already holds synthetic data ({len(existing)} files; {found}); "
                                "pass --overwrite to replace it")
    for path in existing:
        path.unlink()
    record_path.unlink(missing_ok=True)
    for split, count in splits.items():
        write_split(out, split, count, size=size, seed=seed, labels=labels, workers=workers)
    record = generator_record(seed, size, labels, splits)
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return out


def ensure_synthetic(out: str | Path, train: int = 200, val: int = 50, size: int = 256, seed: int = 0,
                     test: int = 0, workers: int = 1) -> bool:
    """Generate the set if `out` holds none; if it holds one, check that this generator
    version with these arguments made it. True when it generated."""
    out = Path(out)
    if not any((out / "train").glob("*.jpg")):
        synthesize(out, train=train, val=val, size=size, seed=seed, test=test, workers=workers)
        return True
    wanted = generator_record(seed, size, False, {"train": train, "val": val, **({"test": test} if test else {})})
    found = read_record(out)
    keys = ("generator_version", "seed", "size", "splits")
    if found is None or any(found.get(k) != wanted[k] for k in keys):
        got = "no record (generator version 1)" if found is None else ", ".join(f"{k} {found.get(k)}" for k in keys)
        raise DataError(f"{out / GENERATOR_JSON}: {got}; expected {', '.join(f'{k} {wanted[k]}' for k in keys)}. "
                        f"Regenerate it: hybridunet data synth --out {out} --overwrite "
                        f"--train {train} --val {val}{f' --test {test}' if test else ''} --size {size} --seed {seed}")
    return False


def read_record(root: str | Path) -> dict | None:
    """ROOT/synthetic.json, or None where the data has none (not synthetic, or older than version 2)."""
    path = Path(root) / GENERATOR_JSON
    return json.loads(path.read_text()) if path.is_file() else None


def _describe(record_path: Path) -> str:
    if not record_path.is_file():
        return f"no {record_path.name}: generator version 1 or not synthetic"
    try:
        r = json.loads(record_path.read_text())
        return (f"generator version {r.get('generator_version')}, seed {r.get('seed')}, size {r.get('size')}, "
                f"splits {r.get('splits')}")
    except (OSError, ValueError) as err:
        return f"{record_path.name} unreadable: {err}"
