"""One street scene from a random generator: layers drawn far to near, then light and texture."""

from __future__ import annotations

import cv2
import numpy as np

from hybridunet.data.synthetic.scene import (
    BICYCLE,
    BLOTCH,
    BUILDING,
    BUS,
    CAR,
    EGO,
    FENCE,
    FINE,
    GROUND,
    LIGHT,
    MOTORCYCLE,
    PARKING,
    PERSON,
    POLE,
    RAIL_TRACK,
    RIDER,
    ROAD,
    SIDEWALK,
    SIGN,
    SKY,
    STATIC,
    TERRAIN,
    TRAIN,
    TRUCK,
    VEGETATION,
    WALL,
    Canvas,
    View,
    grey,
    ground,
)


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
        blue_sky = (60, 120), (120, 170), (190, 245)  # per channel, drawn in order
        top = grey(rng, 170, 225, 5) if overcast else np.array([rng.uniform(*r) for r in blue_sky])
        bottom = grey(rng, 190, 240, 5) if overcast else top + rng.uniform(20, 60)
        ramp = np.linspace(0, 1, S, dtype=np.float32)[:, None, None]
        c.photo[:] = np.clip(top + (bottom - top) * ramp, 0, 255).astype(np.uint8)
        c.labels[:] = SKY
        far, near = 0.0, 1.6
        road_color = grey(rng, 70, 130, 6) + np.array([4, 0, 6])
        for side in (-1, 1):
            kerb, outer = side * self.road, side * (self.road + self.walk)
            walk_color = grey(rng, 105, 175, 8) + (np.array([18, 0, 6]) if rng.random() < 0.3 else 0)
            c.poly(ground(v, kerb, outer, far, near), SIDEWALK, walk_color)
            if self.setback:
                grass = [rng.uniform(lo, hi) for lo, hi in ((80, 150), (130, 185), (50, 100))]
                c.poly(ground(v, outer, side * self.facade, far, near), TERRAIN, grass)
            beyond = side * (self.facade + 3)
            c.poly(ground(v, side * self.facade, beyond, far, near), GROUND, walk_color * 0.9)
            if rng.random() < 0.3:  # a parking bay on the sidewalk (void in Cityscapes)
                s0 = rng.uniform(0.3, 0.7)
                c.poly(ground(v, kerb, kerb + side * self.walk * 0.6, s0, s0 + 0.25), PARKING, walk_color * 0.92)
        c.poly(ground(v, -self.road, self.road, far, near), ROAD, road_color)
        # Distant buildings along the horizon: a city's skyline, not open sky, ends the street.
        edges = np.sort(rng.uniform(0, S, rng.integers(4, 9)))
        tops = v.horizon - S * rng.uniform(0.15, 0.36, len(edges) + 1)
        xs = np.concatenate([[0], edges, [S]])
        skyline = [np.array([[x0, v.horizon + 1], [x0, t], [x1, t], [x1, v.horizon + 1]])
                   for x0, x1, t in zip(xs[:-1], xs[1:], tops)]
        c.poly(skyline, BUILDING, grey(rng, 110, 170, 8))
        # Dashed centre line and shadows: photo only, the label stays road.
        for s in np.arange(rng.uniform(0.05, 0.2), near, 0.22):
            c.paint(ground(v, -0.012, 0.012, s, s + 0.09), grey(rng, 190, 230, 3))
        for _ in range(rng.integers(0, 3)):
            s0 = rng.uniform(0.3, 1.0)
            X0 = rng.uniform(-self.facade, self.facade)
            c.paint(ground(v, X0, X0 + rng.uniform(0.2, 0.6), s0, s0 + rng.uniform(0.1, 0.3)), road_color * 0.6)

    def _buildings(self, side: int) -> list:
        rng = self.rng
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
        color = grey(rng, 60, 200, 12) + (np.array([25, 12, -5]) if rng.random() < 0.35 else 0)
        rows, cols = rng.integers(2, 7), rng.integers(2, 6)
        window = grey(rng, 30, 90, 10) + np.array([0, 5, 15])

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
        color = grey(rng, 95, 165, 10) if kind == WALL else grey(rng, 100, 190, 15) + np.array([15, 5, 5])

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
        rng = self.rng
        out = []
        X = side * (self.road + 0.04)
        for s in np.sort(rng.uniform(0.15, 1.3, rng.integers(2, 7))):
            kind = rng.choice(["pole", "light", "sign", "tree", "static"], p=[0.23, 0.16, 0.28, 0.18, 0.15])
            if kind == "tree":
                out.append((s, self._tree_at(X + side * 0.04, s)))
            elif kind == "static":  # a bin or box: void in Cityscapes
                out.append((s, self._box_at(X, s)))
            else:
                out.append((s, self._pole_at(X, s, kind)))
        return out

    def _box_at(self, X: float, s: float):
        box = grey(self.rng, 40, 140, 20)
        return lambda: self.canvas.poly(self.view.quad(X - 0.04, X + 0.04, 0, 0.1, s), STATIC, box)

    def _pole_at(self, X: float, s: float, kind: str):
        """A bare pole, a traffic light or a sign on a pole."""
        rng, v, c = self.rng, self.view, self.canvas
        top = rng.uniform(0.45, 0.9)
        metal = grey(rng, 90, 170, 4)
        lamp = [(250, 40, 30), (250, 190, 30), (40, 220, 80)][rng.integers(3)]
        size = rng.uniform(0.05, 0.08)
        face = [(200, 30, 30), (30, 70, 170), (240, 240, 240), (230, 200, 40)][rng.integers(4)]
        round_sign = rng.random() < 0.5

        def draw() -> None:  # every random value is drawn above, when the pole is placed
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

        return draw

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
        glass = grey(rng, 20, 70, 5) + np.array([0, 5, 12])

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
        color = grey(self.rng, 80, 120, 5)
        return lambda: c.poly(ground(v, -0.18, 0.18, 0.0, 1.6), RAIL_TRACK, color)

    def _ego_vehicle(self) -> None:
        if self.rng.random() < 0.75:
            S = self.size
            y = S * self.rng.uniform(0.8, 0.92)
            hood = np.array([[0, S], [0, y + 0.03 * S], [S / 2, y], [S, y + 0.03 * S], [S, S]])
            self.canvas.poly(hood, EGO, grey(self.rng, 20, 70, 5))

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


def render_scene(seed: int, split: str, index: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (RGB photo (S, S, 3) uint8, labelId map (S, S) uint8), a function of its arguments."""
    split_key = int.from_bytes(split.encode()[:8].ljust(8, b"\0"), "little")
    rng = np.random.default_rng([seed, split_key, index])
    return SceneRenderer(rng, size).render()
