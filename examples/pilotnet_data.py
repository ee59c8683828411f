"""A procedural steering-angle data set for the PilotNet examples (no download).

Each sample is a short clip of a road seen from the car, ``(3, H, W, T)`` RGB
in ``[0, 1]``: sky, grass, grey road with white edges and a dashed centre
line that moves towards the car (the car drives), the road bending with a
known curvature ``k`` in ``[-1, 1]`` and the car drifting slowly sideways. The
label is the steering angle ``k`` (one value per frame, constant per clip),
so a network has to read the bend of the far road.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

SKY = np.array([0.55, 0.7, 0.9])
GRASS = np.array([0.2, 0.45, 0.2])
ROAD = np.array([0.35, 0.35, 0.35])
LINE = np.array([0.95, 0.95, 0.95])


def road_clip(
    curvature: float,
    offset: float,
    drift: float,
    phase: float,
    steps: int,
    height: int = 32,
    width: int = 64,
) -> np.ndarray:
    """``(3, H, W, T)`` float32 clip of a road with the given curvature."""
    horizon = height // 4
    rows = np.arange(height)[:, None, None]
    cols = np.arange(width)[None, :, None]
    t = np.arange(steps)[None, None, :]
    depth = np.clip((rows - horizon + 1) / (height - horizon), 1e-3, 1.0)  # 1 = nearest
    centre = (
        width / 2
        + (offset + drift * t) * depth * width * 0.3
        + curvature * (1 - depth) ** 2 * width * 0.7
    )
    half = (0.06 + 0.42 * depth) * width
    dist = np.abs(cols - centre)
    dash = ((4.0 / depth + phase + 0.35 * t) % 1.0) < 0.5
    img = np.broadcast_to(GRASS[:, None, None, None], (3, height, width, steps)).copy()
    on_road = dist < half
    edge = on_road & (dist > half - np.maximum(1.0, 0.06 * half))
    mid = on_road & (dist < np.maximum(0.6, 0.03 * half)) & dash
    for mask, colour in ((on_road, ROAD), (edge, LINE), (mid, LINE)):
        m = np.broadcast_to(mask, (height, width, steps))
        img[:, m] = colour[:, None]
    img[:, :horizon] = SKY[:, None, None, None]
    return img.astype(np.float32)


class RoadDataset(Dataset):
    """``(clip, angle)`` pairs: clip ``(3, H, W, T)``, angle ``(1, T)`` (the curvature)."""

    def __init__(
        self, num_samples: int, steps: int = 24, height: int = 32, width: int = 64, seed: int = 0
    ) -> None:
        rng = np.random.default_rng(seed)
        self.params = [
            (rng.uniform(-1, 1), rng.uniform(-0.3, 0.3), rng.uniform(-0.01, 0.01), rng.uniform())
            for _ in range(num_samples)
        ]
        self.steps, self.height, self.width = steps, height, width

    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, i: int):
        k, offset, drift, phase = self.params[i]
        clip = road_clip(k, offset, drift, phase, self.steps, self.height, self.width)
        return torch.from_numpy(clip), torch.full((1, self.steps), float(k))
