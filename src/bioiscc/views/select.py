"""Which views a scene offers, in which order, and which planes they need (docs/views.md, section 2).

Strategies, each per *effective* channel (IMAGEWALK's c * S + s), extra dimensions at index 0:

- `mip`: the maximum over Z of the binned planes, at the first, middle and last time point;
- `best_focus`: the Z plane with the highest focus measure (`focus_measure`), at those time points;
- `representative`: the (t, z) positions of the scene, time-major, split into three segments
  (start, middle, end); in each, three evenly spaced candidate planes, and the one with the most
  information (entropy of its 8-bit view) wins;
- `composite`: the MIPs of the first (up to) three channels at the first time point, as red, green
  and blue.

The candidate views are put in one priority order that depends only on the scene's dimensions
(`priority_specs`); at most CANDIDATES_PER_VIEW x max_views of them are planned, so a scene with many
channels or time points is read only where its first candidates need it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..scene import SceneInfo
from .normalize import entropy_bits, stretch_of, to_uint8
from .reduce import Grid

STRATEGIES = ("mip", "best_focus", "representative", "composite")
COMPOSITE_CHANNELS = 3
REPRESENTATIVE_SEGMENTS = 3
CANDIDATES_PER_SEGMENT = 3
#: At most this many candidates per kept view are planned (and their planes read).
CANDIDATES_PER_VIEW = 3


@dataclass(frozen=True, order=True)
class PlaneKey:
    """One 2D plane of a scene, sorted in IMAGEWALK order: z, effective channel c, t."""

    z: int
    c: int
    t: int


@dataclass(frozen=True)
class ViewSpec:
    """A candidate view before any pixel is read."""

    strategy: str
    channels: tuple[int, ...]
    t: int | None = None
    segment: int | None = None


@dataclass(frozen=True)
class Candidate:
    """A candidate view with its binned grids (one per channel) and its placement."""

    id: str
    strategy: str
    channels: tuple[int, ...]
    z: int | None
    t: int
    grids: tuple[Grid, ...]
    figures: dict[str, Any] = field(default_factory=dict)


def time_points(size_t: int) -> list[int]:
    """The first, middle and last time point (one when T = 1)."""
    return sorted({0, (size_t - 1) // 2, size_t - 1})


def representative_segments(size_t: int, size_z: int) -> list[list[PlaneKey]]:
    """Candidate positions of each segment: 9 evenly spaced positions over the time-major (t, z) range.

    Position k of 0..8 is round_half_up(k * (N - 1) / 8) of the N = T * Z positions; positions 0-2,
    3-5 and 6-8 form the start, middle and end segments. Repeated segments are dropped.
    """
    count = size_t * size_z
    steps = REPRESENTATIVE_SEGMENTS * CANDIDATES_PER_SEGMENT - 1
    positions = [(2 * k * (count - 1) + steps) // (2 * steps) for k in range(steps + 1)]
    segments: list[list[PlaneKey]] = []
    for start in range(0, len(positions), CANDIDATES_PER_SEGMENT):
        chosen = sorted(set(positions[start : start + CANDIDATES_PER_SEGMENT]))
        keys = [PlaneKey(z=p % size_z, c=0, t=p // size_z) for p in chosen]
        if keys not in segments:
            segments.append(keys)
    return segments


def priority_specs(info: SceneInfo, strategies: Sequence[str]) -> list[ViewSpec]:
    """Every candidate view of a scene, most wanted first.

    Order: composite; mip of each channel; best_focus of each channel (these at the first time
    point); representative, segment by segment, each channel; then mip and best_focus of each channel
    at the middle and last time points.
    """
    channels = info.dims["C"] * info.dims["S"]
    times = time_points(info.dims["T"])
    wanted = set(strategies)
    specs: list[ViewSpec] = []
    if "composite" in wanted and channels > 1:
        specs.append(ViewSpec("composite", tuple(range(min(COMPOSITE_CHANNELS, channels))), times[0]))
    for strategy in ("mip", "best_focus"):
        if strategy in wanted:
            specs += [ViewSpec(strategy, (c,), times[0]) for c in range(channels)]
    if "representative" in wanted:
        segments = len(representative_segments(info.dims["T"], info.dims["Z"]))
        specs += [
            ViewSpec("representative", (c,), segment=s) for s in range(segments) for c in range(channels)
        ]
    for t in times[1:]:
        for strategy in ("mip", "best_focus"):
            if strategy in wanted:
                specs += [ViewSpec(strategy, (c,), t) for c in range(channels)]
    return specs


def focus_measure(mean: np.ndarray) -> float:
    """Mean squared second difference of the binned plane along X and Y (its high-frequency energy).

    Cells without a finite value take the mean of the finite cells. An axis shorter than 3 cells
    contributes nothing; when both are, the measure is the variance.
    """
    finite = np.isfinite(mean)
    if not finite.any():
        return 0.0
    with np.errstate(all="ignore"):
        values = np.where(finite, mean, mean[finite].mean())
        energies = []
        if values.shape[1] >= 3:
            energies.append(_mean_square(np.diff(values, n=2, axis=1)))
        if values.shape[0] >= 3:
            energies.append(_mean_square(np.diff(values, n=2, axis=0)))
        measure = float(sum(energies) / len(energies)) if energies else float(values.var())
    return measure if np.isfinite(measure) else 0.0


def _mean_square(values: np.ndarray) -> float:
    """Mean of the squares, summed by numpy's own (fixed-order) reduction, never BLAS."""
    return float(np.square(values, out=values).mean())


class StackTracker:
    """Follows the Z planes of one channel at one time point: their MIP and their sharpest plane."""

    def __init__(self) -> None:
        self.mip: np.ndarray | None = None
        self.best: tuple[float, int, Grid] | None = None
        self.finite_sum = 0.0
        self.planes = 0

    def feed(self, z: int, grid: Grid) -> None:
        self.mip = grid.mean.copy() if self.mip is None else np.fmax(self.mip, grid.mean)
        self.finite_sum += grid.finite_fraction
        self.planes += 1
        focus = focus_measure(grid.mean)
        if self.best is None or (focus, -z) > (self.best[0], -self.best[1]):
            self.best = (focus, z, grid)

    def mip_grid(self) -> Grid:
        if self.mip is None:
            raise ValueError("no plane of the stack was read")
        return Grid(mean=self.mip, finite_fraction=self.finite_sum / self.planes)


class SegmentTracker:
    """Follows the candidate planes of one representative segment: the most informative wins."""

    def __init__(self, positions: list[PlaneKey], size_z: int) -> None:
        self.positions = positions
        self.size_z = size_z
        self.best: tuple[float, int, PlaneKey, Grid] | None = None

    def feed(self, key: PlaneKey, grid: Grid) -> None:
        entropy = entropy_bits(to_uint8(grid.mean, stretch_of(grid.mean)))
        position = key.t * self.size_z + key.z
        if self.best is None or (entropy, -position) > (self.best[0], -self.best[1]):
            self.best = (entropy, position, key, grid)


class ViewPlan:
    """The candidate views of one scene, the planes they need, and the trackers that collect them."""

    def __init__(self, info: SceneInfo, strategies: Sequence[str], max_views: int) -> None:
        unknown = sorted(set(strategies) - set(STRATEGIES))
        if unknown:
            raise ValueError(f"unknown view strategies: {', '.join(unknown)}")
        self.info = info
        self.depth = info.dims["Z"]
        self.specs = priority_specs(info, strategies)[: CANDIDATES_PER_VIEW * max_views]
        self.stacks: dict[tuple[int, int], StackTracker] = {}
        self.segments: dict[tuple[int, int], SegmentTracker] = {}
        layout = representative_segments(info.dims["T"], info.dims["Z"])
        self.wanted: dict[PlaneKey, list[StackTracker | SegmentTracker]] = {}
        for spec in self.specs:
            if spec.strategy == "representative":
                assert spec.segment is not None
                self._track_segment(spec.channels[0], spec.segment, layout[spec.segment])
            else:
                assert spec.t is not None
                for c in spec.channels:
                    self._track_stack(c, spec.t)

    def _track_stack(self, c: int, t: int) -> None:
        if (c, t) in self.stacks:
            return
        tracker = self.stacks[(c, t)] = StackTracker()
        for z in range(self.depth):
            self.wanted.setdefault(PlaneKey(z=z, c=c, t=t), []).append(tracker)

    def _track_segment(self, c: int, segment: int, positions: list[PlaneKey]) -> None:
        keys = [PlaneKey(z=p.z, c=c, t=p.t) for p in positions]
        tracker = self.segments[(c, segment)] = SegmentTracker(keys, self.depth)
        for key in keys:
            self.wanted.setdefault(key, []).append(tracker)

    def needed(self) -> list[PlaneKey]:
        """The planes to read, in IMAGEWALK order."""
        return sorted(self.wanted)

    def wants(self, key: PlaneKey) -> bool:
        return key in self.wanted

    def feed(self, key: PlaneKey, grid: Grid) -> None:
        for tracker in self.wanted.get(key, []):
            if isinstance(tracker, StackTracker):
                tracker.feed(key.z, grid)
            else:
                tracker.feed(key, grid)

    def candidates(self) -> Iterator[Candidate]:
        """The planned candidate views in priority order (after every needed plane was fed)."""
        for spec in self.specs:
            yield self._candidate(spec)

    def _candidate(self, spec: ViewSpec) -> Candidate:
        if spec.strategy == "representative":
            assert spec.segment is not None
            c = spec.channels[0]
            chosen = self.segments[(c, spec.segment)].best
            if chosen is None:
                raise ValueError(f"representative segment {spec.segment} of channel {c} was not read")
            entropy, _, key, grid = chosen
            return Candidate(
                id=f"representative_c{c}_t{key.t}_z{key.z}",
                strategy=spec.strategy,
                channels=spec.channels,
                z=key.z,
                t=key.t,
                grids=(grid,),
                figures={"segment": spec.segment, "entropy_selected": round(entropy, 6)},
            )
        assert spec.t is not None
        t = spec.t
        if spec.strategy == "composite":
            grids = tuple(self.stacks[(c, t)].mip_grid() for c in spec.channels)
            label = "-".join(str(c) for c in spec.channels)
            return Candidate(f"composite_c{label}_t{t}", "composite", spec.channels, None, t, grids)
        stack = self.stacks[(spec.channels[0], t)]
        c = spec.channels[0]
        if spec.strategy == "mip":
            return Candidate(f"mip_c{c}_t{t}", "mip", spec.channels, None, t, (stack.mip_grid(),))
        if stack.best is None:
            raise ValueError(f"no plane of channel {c} at t={t} was read")
        focus, z, grid = stack.best
        return Candidate(
            id=f"best_focus_c{c}_t{t}_z{z}",
            strategy="best_focus",
            channels=spec.channels,
            z=z,
            t=t,
            grids=(grid,),
            figures={"focus": float(f"{focus:.6g}")},
        )
