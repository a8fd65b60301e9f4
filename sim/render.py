"""Pictures of a fleet rollout: the ring's zones, workers coloured by zone, the k sampled
workers ringed, the depot and the zone it heads for. One PNG frame or an animated GIF.

Frames come from sim/rollout.py's run_episode (the same loop the evaluator runs): one
frame per decision epoch, drawn as the epoch starts, with the k-subset the depot saw
and the global action it chose from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from altmarl_ros.core import budget
from altmarl_ros.core._checks import integer
from altmarl_ros.core.atomic import atomic_writer
from altmarl_sim.fleet import FleetSim
from altmarl_sim.rollout import check_policy, run_episode, running_observer
from altmarl_sim.sampler import SamplerError
from altmarl_sim.scenario import Scenario

FORMATS = {".png": "PNG", ".gif": "GIF"}
FRAME_SECONDS = 0.5  # GIF frame duration
SIZE_INCHES, DPI = 6.0, 100
FRAME_BYTES_PER_ROBOT = 3 * 8 + 8 + 8  # a Frame: pose, zone, and (at most) a sampled id


class RenderError(SamplerError):
    """Bad arguments to the renderer (output file type, sizes)."""


@dataclass(frozen=True)
class Frame:
    """The fleet as decision epoch `epoch` starts: poses [n+1, 3] (depot last), the
    workers' zones [n], the sampled worker ids [k], the depot's zone and its action."""

    epoch: int
    poses: np.ndarray
    zones: np.ndarray
    sampled: np.ndarray
    depot_zone: int
    global_action: int


def record_frames(scenario: Scenario, pi_g, pi_l, k: int, n: int, epochs: int, seed: int = 0,
                  observer=None, prediction=None, progress=None) -> list:
    """Run one rollout of `epochs` epochs (pi_g None: uniformly random global actions) and
    keep a Frame per epoch. `observer`, `prediction`: as sim_rollout_welfare takes them.
    `progress(done, total)` is called after every epoch."""
    k, n, epochs = (integer(RenderError, name, value, 1) for name, value in
                    (("k", k), ("n", n), ("epochs", epochs)))
    if k > n:
        raise RenderError("k", f"k = {k} exceeds the number of workers n = {n}: use k <= n")
    pi_g, pi_l = check_policy(scenario, pi_g, pi_l, k, observer, prediction)
    budget.require(f"{epochs} frames of n = {n} robots", float(epochs) * (n + 1) * FRAME_BYTES_PER_ROBOT,
                   "use a smaller --n or --epochs")
    running = None if pi_g is None else running_observer(scenario, k, observer, prediction)
    sim = FleetSim(scenario, n=n, seed=seed)
    frames = []

    def keep(sim, sampled, a_g):
        frames.append(Frame(len(frames), sim.poses.copy(), sim.zones(), np.sort(sampled),
                            sim.depot_zone(), a_g))
        if progress is not None:
            progress(len(frames), epochs)

    run_episode(sim, pi_g, pi_l, k, epochs, np.random.default_rng([seed, 1]), on_epoch=keep, observer=running)
    return frames


def _zone_colours(n_zones: int) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["tab10" if n_zones <= 10 else "tab20"](np.arange(n_zones) % 20)


def _draw(fig, scenario: Scenario, frame: Frame, colours: np.ndarray) -> None:
    from matplotlib.patches import Wedge

    ring = scenario.ring
    outer = ring.radius + 0.5 * ring.width
    fig.clear()
    ax = fig.add_axes([0.02, 0.02, 0.96, 0.88])
    ax.set_aspect("equal")
    ax.set_axis_off()
    limit = outer * 1.15
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    sector = math.degrees(ring.sector)
    for zone in range(ring.n_zones):
        heading_here = zone == frame.global_action
        ax.add_patch(Wedge((0, 0), outer, zone * sector, (zone + 1) * sector, width=ring.width,
                           facecolor=(*colours[zone][:3], 0.15),
                           edgecolor="black" if heading_here else "grey",
                           linewidth=2.0 if heading_here else 0.5))
        angle = math.radians((zone + 0.5) * sector)
        ax.text(1.08 * outer * math.cos(angle), 1.08 * outer * math.sin(angle), str(zone),
                ha="center", va="center", fontsize=10)
    workers = frame.poses[:-1]
    ax.scatter(workers[:, 0], workers[:, 1], s=6, c=colours[frame.zones], linewidths=0)
    picked = workers[frame.sampled]
    ax.scatter(picked[:, 0], picked[:, 1], s=40, facecolors="none", edgecolors="black",
               linewidths=0.8, label=f"sampled (k = {frame.sampled.size})")
    depot = frame.poses[-1]
    ax.scatter([depot[0]], [depot[1]], s=220, marker="*", c=[colours[frame.depot_zone]],
               edgecolors="black", linewidths=1.0, label="depot", zorder=3)
    ax.legend(loc="center", frameon=False, fontsize=9)
    counts = np.bincount(frame.zones[frame.sampled], minlength=ring.n_zones)
    fig.suptitle(f"{scenario.name}  epoch {frame.epoch}  n = {workers.shape[0]}\n"
                 f"depot in zone {frame.depot_zone}, sees F = {counts.tolist()}, "
                 f"heads for zone {frame.global_action}", fontsize=10)


def _image(fig):
    from PIL import Image

    fig.canvas.draw()
    return Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")


def render(scenario: Scenario, frames: list, out) -> Path:
    """Write `frames` to `out`: .png draws the last frame, .gif animates all of them.
    Written atomically (a reader never sees half a picture)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    image_format = FORMATS.get(out.suffix.lower())
    if image_format is None:
        raise RenderError("out", f"{out}: picture files end in {' or '.join(FORMATS)}")
    if not frames:
        raise RenderError("epochs", "no frames to draw: run at least one epoch")
    fig = Figure(figsize=(SIZE_INCHES, SIZE_INCHES), dpi=DPI)
    FigureCanvasAgg(fig)
    colours = _zone_colours(scenario.ring.n_zones)
    chosen = frames if image_format == "GIF" else frames[-1:]
    images = []
    for frame in chosen:
        _draw(fig, scenario, frame, colours)
        images.append(_image(fig))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(out) as stream:
        if image_format == "GIF":
            images[0].save(stream, format="GIF", save_all=True, append_images=images[1:],
                           duration=int(FRAME_SECONDS * 1000), loop=0)
        else:
            images[0].save(stream, format="PNG")
    return out
