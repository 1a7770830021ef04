"""Where a grid's tasks run, registered by name (`EXECUTORS`).

    local  worker processes on this machine (spawned, one task each at a time); one worker runs
           the tasks in this process
    dask   a Dask distributed cluster: the scheduler at `scheduler` (e.g. tcp://10.0.0.5:8786, or
           one that dask-jobqueue started on SLURM/PBS), or a LocalCluster of `workers` processes

A task trains its runs and writes them to the store; nothing comes back but a count, so every
worker must see the store (and the data folder) at the same path: a shared file system. A
ticket's numbers do not depend on where or beside what it trains, so results are the same
whatever the executor (tests/test_executors.py).
"""
import ctypes
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from ticketlib.errors import TicketError, unknown

POLL_SECONDS = 0.5  # how often progress is refreshed while tasks run
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): a signal for this process when its parent dies
CONNECT_TIMEOUT = "30s"  # to reach a Dask scheduler


def check_executor(name: str, workers: int | None) -> None:
    if name not in EXECUTORS:
        raise unknown("executor", name, EXECUTORS)
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise TicketError(f"workers must be a positive integer; got {workers!r}")


def default_workers(executor: str, scheduler: str | None, device: str) -> int:
    """One task per CPU core here (one per GPU: 1), or per thread of the running Dask cluster."""
    if executor == "dask" and scheduler:
        with connect(scheduler) as client:
            return max(1, sum(client.nthreads().values()))
    return os.cpu_count() if device == "cpu" else 1


def distributed():
    try:
        import dask.distributed
    except ImportError as error:
        raise TicketError(f"the dask executor needs dask.distributed ({error}); "
                          "pip install 'dask[distributed]'") from None
    return dask.distributed


def connect(scheduler: str):
    try:
        return distributed().Client(scheduler, timeout=CONNECT_TIMEOUT)
    except OSError as error:
        raise TicketError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None


def run_tasks(task, arguments: list, executor="local", workers=1, scheduler=None, poll=lambda: None) -> list:
    """task(argument) for every argument, in parallel; poll() is called while they run (in this
    process, task(argument, poll=poll) calls it as it goes).

    The first task that fails, Ctrl-C or SIGTERM stops the grid: local workers are killed at once
    (the rounds they finished are kept; the ones under way are lost), tasks not started are
    cancelled, and the error is raised here. Arguments are checked by the caller (check_executor).
    """
    return EXECUTORS[executor](task, arguments, workers, scheduler, poll)


def run_local(task, arguments, workers, scheduler, poll) -> list:
    if workers == 1 or len(arguments) <= 1:
        return [task(argument, poll=poll) for argument in arguments]
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has started threads
    with ProcessPoolExecutor(min(workers, len(arguments)), mp_context=context, initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(task, argument) for argument in arguments]
        try:
            return collect(futures, poll)
        except BaseException:  # a failed task, Ctrl-C or SIGTERM: stop every worker now, not after its task
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def die_with_parent(parent: int) -> None:
    """A local worker ends when the grid's process does (killed or not), instead of training on
    unseen; a round is written atomically, so killing one mid-round loses only that round. Ctrl-C
    reaches the workers too, but the grid's process stops them: they ignore it (no tracebacks)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def run_on_dask(task, arguments, workers, scheduler, poll) -> list:
    if scheduler:
        client = connect(scheduler)
    else:  # single-threaded worker processes on loopback, as the local executor's
        cluster = distributed().LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                             host="127.0.0.1", dashboard_address=None)
        client = distributed().Client(cluster)
    futures = client.map(task, arguments, pure=False)
    try:
        return collect(futures, poll)
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        client.close()
        if not scheduler:
            cluster.close()


def collect(futures: list, poll) -> list:
    """Results of concurrent.futures or Dask futures in order, polling until all are done."""
    while True:
        poll()
        for future in futures:
            if future.done() and future.exception() is not None:
                raise future.exception()
        if all(future.done() for future in futures):
            return [future.result() for future in futures]
        time.sleep(POLL_SECONDS)


# name → run(task, arguments, workers, scheduler, poll): every task's result, in order
EXECUTORS = {"local": run_local, "dask": run_on_dask}
