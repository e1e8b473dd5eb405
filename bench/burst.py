"""The burst both scaling benchmarks drive (cluster_scaling.py, local_fleet.py), so they compare."""

import argparse


def burst_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--task-seconds", type=float, default=0.5)
    return parser.parse_args()
