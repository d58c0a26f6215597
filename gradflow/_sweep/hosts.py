"""Several processes (hosts) on one sweep: `jax.distributed`, disjoint chunks, one store.

Each process solves the chunks `i` with `i % num_processes == process_id` on its own local
devices and writes them into the shared store; no collective communication is needed (the
coordinator only identifies the processes). Process 0 creates the store and, once every
`done` flag is set, assembles the dataset; the others return their partial view.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import jax


@dataclass(frozen=True)
class Hosts:
    process_id: int = 0
    num_processes: int = 1

    def mine(self, index: int) -> bool:
        return index % self.num_processes == self.process_id


def connect(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    distributed: bool = False,
) -> Hosts:
    """Join the process group when asked; otherwise a single process.

    With `coordinator_address`/`num_processes`/`process_id` they are passed to
    `jax.distributed.initialize`; with `distributed=True` alone jax detects them (SLURM,
    TPU pods, ...). It must happen before any JAX computation in the process; calling it
    again once initialised is a no-op.
    """
    asked = distributed or any(
        v is not None for v in (coordinator_address, num_processes, process_id)
    )
    if asked and not jax.distributed.is_initialized():
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    if jax.distributed.is_initialized():
        return Hosts(jax.process_index(), jax.process_count())
    return Hosts()


def wait_until(done: Callable[[], bool], *, timeout: float, what: str, poll: float = 0.5):
    """Poll `done()` until it is true; `TimeoutError` naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout:g} s waiting for {what}; the store keeps every "
                "finished chunk: re-run the same sweep (any number of processes) to finish it."
            )
        time.sleep(poll)
