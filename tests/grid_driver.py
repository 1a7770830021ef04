"""A small grid run in its own process, for the crash-safety tests to kill and rerun.

    python tests/grid_driver.py STORE DATA_ROOT [--workers N] [--slow-writes]

With --slow-writes (one worker: this process) every store file takes 0.15 s more to write, so a test
watching the store can SIGKILL the run in the middle of writing a round.
"""
import argparse
import sys
import time

import ticketlib.store.runs as store_module
from ticketlib.imp.grid import expand_grid, run_grid
from ticketlib.store.runs import Store

GRID = dict(datasets=["mnist1d"], models=["lenet_300_100"], inits=["xavier_normal", "kaiming_uniform"],
            seeds=[0], conditions=["ticket", "random"], rounds=4, iterations=300, eval_every=100,
            num_samples=1000, val_size=80, hidden=[32, 16])


def grid() -> list[dict]:
    return expand_grid(**GRID)


def slow_writes() -> None:
    write_synced = store_module.write_synced

    def slow(path, data):
        time.sleep(0.15)
        write_synced(path, data)
    store_module.write_synced = slow


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("data_root")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--slow-writes", action="store_true")
    args = parser.parse_args()
    if args.slow_writes:
        slow_writes()
    counts = run_grid(grid(), Store(args.store), "cpu", args.data_root, args.workers, progress=False)
    print("trained", counts["trained"], flush=True)
    sys.exit(0)
