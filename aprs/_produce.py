"""The producer: read the inputs lazily, cut mini-batches, pickle each once, queue them.

    sources ──► by_count / by_bytes (files, iterables) ──┐
            ──► plan_table, 64 slices at a time (tables) ─┼─► Attempt ──► Dispatcher.push
            ──► file_groups / table_groups / by_keys ─────┘    (waits while pending holds
                (partition_keys: grouped in a thread)            HIGH batches)

Runs as one task of the job's task group; everything it changes belongs to the job (``_Job``
in aprs._scheduler) and is changed on the loop. A resumed job's first ``skip`` batches are
planned but not sent. With ship_inputs (Ray) each file batch's bytes are read in a thread
first, within the job's byte budget. An input that cannot be read stops the job with an
InputError; a batch that cannot be pickled (or shipped) fails alone.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from ._backends import KIND_ITEMS, KIND_KEYED, KIND_TABLE, Attempt, Failed
from ._datasets import FileDataset, IterableInput, TabularDataset
from ._datasets._partitions import file_groups, table_groups
from ._datasets._table_plan import plan as plan_table
from ._errors import InputError, UsageError
from ._partition import by_bytes, by_count, by_count_async, by_keys

if TYPE_CHECKING:
    from ._scheduler import _Job

__all__ = ("HIGH", "SHIP_BUDGET", "Producer")

HIGH = 256  # pending batches before the producer waits: covers every worker's pipeline
SHIP_BUDGET = 256 << 20  # ship_inputs: file bytes read and not yet written or given up


class Producer:
    """Feeds one job's dispatcher from its inputs (``run`` is the task)."""

    def __init__(self, job: _Job) -> None:
        self.job = job

    async def run(self) -> None:
        """Read the inputs into ``pending``; an input that fails to read stops the job."""
        try:
            await self._produce()
        except UsageError as exc:  # InputError, or partition keys not in the paths
            self.job.stop("input_error", str(exc), cause=exc)
        except Exception as exc:
            error = InputError(
                f"Reading the inputs failed after {self.job.scheduled} mini-batches: "
                f"{type(exc).__name__}: {exc}. Rows of the mini-batches that finished are "
                "kept in the partial output; fix the input and run the job again."
            )
            error.__cause__ = exc
            self.job.stop("input_error", str(error), cause=error)

    async def _produce(self) -> None:
        skip = self.job.plan.resume.next if self.job.plan.resume else 0
        index = 0
        keys = self.job.plan.partition_keys
        for source in self.job.plan.sources:
            if keys and isinstance(source, IterableInput):
                for key_value, items in await self._keyed_batches(source, keys):
                    index = await self._offer(index, skip, items, key_value)
                    if self.job.stop_reason is not None:
                        return
            elif keys and isinstance(source, (FileDataset, TabularDataset)):
                index = await self._offer_partitions(source, keys, index, skip)
                if self.job.stop_reason is not None:
                    return
            elif isinstance(source, TabularDataset):
                index = await self._offer_tables(source, index, skip)
                if self.job.stop_reason is not None:
                    return
            elif isinstance(source, IterableInput) and source.is_async:
                async for items in by_count_async(
                    source.source, self.job.plan.batch_value
                ):
                    index = await self._offer(index, skip, items)
                    if self.job.stop_reason is not None:
                        return
            elif self.job.ship and isinstance(source, FileDataset):
                for items in await self._sync_batches(source):
                    index = await self._offer(index, skip, items, ship=True)
                    if self.job.stop_reason is not None:
                        return
            else:
                batches = await self._sync_batches(source)
                index = await self._offer_all(batches, index, skip)
                if self.job.stop_reason is not None:
                    return
        self.job.scheduled = index
        self.job.source_done = True
        self.job.acc.scheduling_finished(index)
        self.job.fill()
        self.job.after_change()

    async def _offer_tables(self, source: TabularDataset, index: int, skip: int) -> int:
        """Plan the table in a thread, 64 slices at a time; offer each as a batch.

        Slices below ``skip`` (already in a resumed job's output) are planned, not read.
        """
        plan = self.job.plan
        slices = plan_table(source, plan.base_dir, plan.unit, plan.batch_value)
        while True:
            chunk = await anyio.to_thread.run_sync(lambda: list(islice(slices, 64)))
            if not chunk:
                return index
            for part in chunk:
                if index < skip:
                    index += 1
                    continue
                # rows not known yet (byte ranges) count as 1 until a worker reads them
                size = max(1, part.rows)
                self.job.items_total += size
                payload = pickle.dumps(part, protocol=5)
                index = await self._push(Attempt(index, 1, size, payload, KIND_TABLE))
                if self.job.stop_reason is not None:
                    return index

    async def _offer_partitions(
        self,
        source: FileDataset | TabularDataset,
        keys: list[str],
        index: int,
        skip: int,
    ) -> int:
        """One batch per key combination; grouping runs in a thread (it lists or reads
        the key columns of every file before the first batch)."""
        base = self.job.plan.base_dir
        if isinstance(source, FileDataset):
            groups = await anyio.to_thread.run_sync(file_groups, source, base, keys)
            for key_value, files in groups:
                index = await self._offer(
                    index, skip, files, key_value, ship=self.job.ship
                )
                if self.job.stop_reason is not None:
                    break
            return index
        tables = await anyio.to_thread.run_sync(table_groups, source, base, keys)
        for _key_value, parts, size in tables:
            if index < skip:
                index += 1
                continue
            self.job.items_total += size
            payload = pickle.dumps(parts, protocol=5)
            index = await self._push(Attempt(index, 1, size, payload, KIND_TABLE))
            if self.job.stop_reason is not None:
                break
        return index

    async def _keyed_batches(
        self, source: IterableInput, keys: list[str]
    ) -> list[tuple[dict[str, Any], list[Any]]]:
        if source.is_async:
            items = [item async for item in source.source]  # type: ignore[union-attr]
        else:
            items = source.source  # type: ignore[assignment]
        # grouping reads the whole input: do it off the loop
        return await anyio.to_thread.run_sync(lambda: list(by_keys(items, keys)))

    async def _sync_batches(
        self, source: FileDataset | IterableInput
    ) -> Iterator[list[Any]]:
        if isinstance(source, FileDataset):
            base = self.job.plan.base_dir
            if self.job.plan.unit == "bytes":
                sized = await anyio.to_thread.run_sync(
                    lambda: list(source.iter_sized(base))
                )
                return by_bytes(sized, self.job.plan.batch_value)
            paths = await anyio.to_thread.run_sync(source.resolve, base)
            return by_count(paths, self.job.plan.batch_value)
        return by_count(source.source, self.job.plan.batch_value)  # type: ignore[arg-type]

    async def _offer(
        self,
        index: int,
        skip: int,
        items: list[Any],
        key_value: dict[str, Any] | None = None,
        *,
        ship: bool = False,
    ) -> int:
        if index < skip:
            return index + 1
        attempt = self._attempt(index, items, key_value)
        if attempt is None:
            return index + 1
        if ship and not await self._ship(attempt, items):
            self.job.scheduled = index + 1
            return index + 1
        return await self._push(attempt)

    async def _offer_all(
        self, batches: Iterator[list[Any]], index: int, skip: int
    ) -> int:
        """``_offer`` for each batch of a plain input, the common case: nothing awaited
        but room in the queue (two coroutines per mini-batch cost ~0.5 us of the parent's
        ~13 us per one-item batch)."""
        job = self.job
        for items in batches:
            if index >= skip:
                attempt = self._attempt(index, items)
                if attempt is not None and self._queue(attempt):
                    await self._room()
            index += 1
            if job.stop_reason is not None:
                break
        return index

    def _attempt(
        self, index: int, items: list[Any], key_value: dict[str, Any] | None = None
    ) -> Attempt | None:
        """The batch's first try, pickled once; None when it cannot be (it failed)."""
        self.job.items_total += len(items)
        kind = KIND_ITEMS if key_value is None else KIND_KEYED
        try:
            payload = pickle.dumps(
                items if key_value is None else (items, key_value), 5
            )
        except Exception as exc:
            self._pickle_failed(index, items, exc)
            self.job.scheduled = index + 1
            return None
        return Attempt(index, 1, len(items), payload, kind)

    async def _ship(self, attempt: Attempt, paths: list[str]) -> bool:
        """Read the batch's files into ``attempt.files`` (a thread), within the budget.

        False when a file cannot be read: that batch fails (as run() on a missing file
        would), the job goes on.
        """
        while (
            self.job.shipped_bytes >= self.job.ship_budget
            and self.job.shipped
            and self.job.stop_reason is None
        ):
            self.job.producer_waiting = True
            await self.job.space.wait()
            self.job.space = anyio.Event()
        ship_files = getattr(self.job.backend, "ship_files", None)
        if ship_files is None:  # pragma: no cover - the config allows it on Ray only
            raise UsageError("ship_inputs needs compute_target='ray'.")
        try:
            files = await anyio.to_thread.run_sync(ship_files, paths)
        except OSError as exc:
            self._pickle_failed(
                attempt.batch_id,
                paths,
                exc,
                f"an input file could not be read to ship it (ship_inputs): {exc}",
            )
            return False
        attempt.files = files
        self.job.shipped[attempt.batch_id] = files.nbytes
        self.job.shipped_bytes += files.nbytes
        return True

    async def _push(self, attempt: Attempt) -> int:
        """Queue a new batch, waiting while the queue is full; returns the next index."""
        if self._queue(attempt):
            await self._room()
        return attempt.batch_id + 1

    def _queue(self, attempt: Attempt) -> bool:
        """Queue a new batch; True when the queue is full (then wait in ``_room``)."""
        self.job.scheduled = attempt.batch_id + 1
        # sent at once when the queue was empty (a slow input must not wait for HIGH)
        self.job.dispatch.push(attempt)
        return len(self.job.pending) >= HIGH

    async def _room(self) -> None:
        """Send what the workers take, then wait until the queue is short again."""
        self.job.fill()
        while len(self.job.pending) >= HIGH and self.job.stop_reason is None:
            self.job.producer_waiting = True
            await self.job.space.wait()
            self.job.space = anyio.Event()

    def _pickle_failed(
        self, index: int, items: list[Any], exc: Exception, message: str = ""
    ) -> None:
        """The batch cannot be sent at all: it fails at once, as after its last try."""
        attempt = Attempt(index, self.job.max_try, len(items), b"")
        outcome = Failed(
            type(exc).__name__,
            message or f"the mini-batch's items could not be pickled: {exc}",
        )
        self.job.log_failure(attempt, outcome, items=items)
        self.job.acc.record_failed_try(index, len(items), self.job.max_try)
        self.job.put(index, b"", 0, len(items), True)
        self.job.after_change()
