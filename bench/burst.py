"""The burst both scaling benchmarks drive (cluster_scaling.py, local_fleet.py), so they compare,
and the backlog-and-workers plot of the local ones."""

import argparse
from pathlib import Path

# Imported first, so a machine without the bench extra (pip install -e '.[bench]') fails before
# minutes of measuring, not after.
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# (seconds, ready messages, workers running), sampled over a run.
Timeline = list[tuple[float, int, int]]


def burst_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--task-seconds", type=float, default=0.5)
    return parser.parse_args()


def plot_timelines(timelines: dict[str, Timeline], title: str, path: Path) -> None:
    """Backlog above, workers below, one line per run, on a shared time axis."""
    figure, (backlog, workers) = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
    for label, points in timelines.items():
        seconds = [point[0] for point in points]
        backlog.plot(seconds, [point[1] for point in points], label=label)
        workers.step(seconds, [point[2] for point in points], where="post", label=label)
    backlog.set_ylabel("ready messages")
    workers.set_ylabel("workers running")
    workers.set_xlabel("seconds since the first burst was confirmed")
    backlog.legend()
    backlog.set_title(title)
    path.parent.mkdir(exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
