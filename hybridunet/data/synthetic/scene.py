"""What a synthetic scene is made of: its classes (labelIds), textures, a one-point
perspective view and a canvas that paints the photo and its labels together."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# labelIds (see labels.LABELS)
EGO, STATIC, GROUND, ROAD, SIDEWALK, PARKING = 1, 4, 6, 7, 8, 9
BUILDING, WALL, FENCE, POLE = 11, 12, 13, 17
LIGHT, SIGN, VEGETATION, TERRAIN, SKY = 19, 20, 21, 22, 23
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = 24, 25, 26, 27, 28, 31, 32, 33
RAIL_TRACK = 10

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


def grey(rng: np.random.Generator, lo: float, hi: float, tint: float = 8) -> np.ndarray:
    return rng.uniform(lo, hi) + rng.uniform(-tint, tint, 3)


def ground(v: View, X0: float, X1: float, s0: float, s1: float) -> np.ndarray:
    return np.array([v.xy(X0, 0, s0), v.xy(X1, 0, s0), v.xy(X1, 0, s1), v.xy(X0, 0, s1)])
