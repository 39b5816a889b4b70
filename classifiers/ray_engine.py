"""`harmscan scan --engine ray`: the single-process scan spread over a Ray Data actor pool.

Data flow, and why:
- One Ray Data read task streams the input through the single-process reader (`records.iter_records`: the
  same parsing, ids, line numbers and bad-row messages) and cuts it into chunks of `batch_size` records,
  exactly as `scan_file` does. It runs on the driver's node (`supports_distributed_reads = False`), so a
  local input path works on a cluster too.
- A chunk travels as ONE dataset row (its records pickled): Ray Data merges and splits blocks as it likes,
  but never splits a row, so every model call sees the same texts as the single-process scan's call for that
  chunk. That matters for int8 bundles: dynamic quantisation scales activations per call, so a text's score
  depends (by ~1e-4) on which texts share its call; with the same chunks the two engines agree exactly.
- `map_batches` over an actor pool: each actor holds one `HarmClassifier` session (CPU threads or a GPU)
  and scores a chunk with the single-process code (`scan.score_chunk`: `result_row`, `error_row`).
- The driver receives the chunks in input order (`preserve_order`) and hands them to the driver both engines
  share (`scan.ScanCheckpoint`): same writers, schema, thresholds, errors file, commit protocol and
  progress file, so a scan started with one engine can be resumed with the other.

Exactly once: when an actor dies, Ray restarts it and re-runs its unfinished chunks (`max_restarts` and
`max_task_retries` are unlimited for actor pools); a chunk reaches the driver only from the attempt that
finished. On top of that the shared driver keeps a chunk only if it starts at the next record expected, so a
chunk delivered twice is dropped and a missing one stops the scan instead of silently shrinking the output.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import logging
import os
import pickle
import re
import socket
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harmscan.errors import HarmscanError, InputError, require

if TYPE_CHECKING:  # the CLI imports this module for its arguments: keep onnxruntime and ray out of it
    import pyarrow as pa

    from harmscan.classifiers.bundle import Bundle
    from harmscan.classifiers.policy import Policy
    from harmscan.classifiers.scan import Chunk, ScanCheckpoint, ScanSummary

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1024  # records per actor call: the local scan's default chunk
ACTOR_NAME = "_ScanActor"  # the actor processes are titled "ray::MapWorker(MapBatches(_ScanActor))"
_BUNDLE_CACHE = "harmscan-bundles"


# -- the read task ---------------------------------------------------------------------------------------
def _record_chunks(
    source: str, fmt: str, text_field: str, id_field: str, skip: int, chunk_size: int
) -> Iterator[pa.Table]:
    """One-row tables {start, records}: the index of the chunk's first record and its pickled Records."""
    import pyarrow as pa

    from harmscan.classifiers.records import iter_records

    records = itertools.islice(iter_records(source, fmt, text_field, id_field), skip, None)
    start = skip
    while chunk := list(itertools.islice(records, chunk_size)):
        blob = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)  # ids of any type survive as they are
        yield pa.table({"start": pa.array([start], pa.int64()), "records": pa.array([blob], pa.large_binary())})
        start += len(chunk)


def _record_source(job: _Job, skip: int) -> Any:
    """A Ray Data datasource: one streaming read task over the input, run on the driver's node."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    args = (job.source, job.fmt_in, job.text_field, job.id_field, skip, job.batch_size)

    class RecordSource(Datasource):  # defined here so that importing this module does not import ray
        @property
        def supports_distributed_reads(self) -> bool:
            return False  # the input path is the driver's: read it there, wherever the actors run

        def estimate_inmemory_data_size(self) -> int | None:
            return os.path.getsize(job.source)

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[ReadTask]:
            meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=(job.source,))
            return [ReadTask(lambda: _record_chunks(*args), meta)]

    return RecordSource()


# -- the actors --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _BundleShipment:
    """The bundle as the driver sees it. `files` (a one-item list holding an ObjectRef to {relpath: bytes})
    is set when the cluster has several nodes: an actor on a node without the bundle folder fetches it."""

    path: str
    manifest: bytes
    files: list[Any] | None = None

    @property
    def key(self) -> str:
        return hashlib.sha256(self.manifest).hexdigest()[:16]


def ship_bundle(bundle_dir: Path, multi_node: bool) -> _BundleShipment:
    from harmscan.classifiers.bundle import MANIFEST

    manifest = (bundle_dir / MANIFEST).read_bytes()
    if not multi_node:
        return _BundleShipment(str(bundle_dir), manifest)
    import ray

    files = {p.relative_to(bundle_dir).as_posix(): p.read_bytes() for p in bundle_dir.rglob("*") if p.is_file()}
    # Nested in a list so that Ray does not fetch 100 MB into actors that have the folder already.
    return _BundleShipment(str(bundle_dir), manifest, [ray.put(files)])


def local_bundle(shipment: _BundleShipment) -> Path:
    """The bundle folder on this node: the driver's path when it holds the same manifest, else a copy
    materialised from the shipment under the temp dir (shared by this node's actors, written atomically).
    Loading it verifies every file's sha256 either way."""
    from harmscan.classifiers.bundle import MANIFEST, BundleError

    path = Path(shipment.path)
    if (path / MANIFEST).is_file() and (path / MANIFEST).read_bytes() == shipment.manifest:
        return path
    if shipment.files is None:
        raise BundleError(
            f"bundle {path} is not on node {socket.gethostname()}: put it on storage every node mounts"
        )
    cache = Path(tempfile.gettempdir()) / _BUNDLE_CACHE / shipment.key
    if (cache / MANIFEST).is_file():
        return cache
    import shutil

    import ray

    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{shipment.key}.", dir=cache.parent))
    for rel, data in ray.get(shipment.files[0]).items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_bytes(data)
    (staging / MANIFEST).write_bytes(shipment.manifest)  # last: a folder with a manifest is complete
    try:
        os.replace(staging, cache)
    except OSError:  # another actor on this node got there first, with the same bundle
        shutil.rmtree(staging, ignore_errors=True)
    return cache


class _ScanActor:
    """One HarmClassifier session per actor; called with one chunk row at a time."""

    def __init__(self, shipment: _BundleShipment, variant: str, device: str, threads: int, policy: Policy,
                 model_batch_size: int | None, max_batch_tokens: int | str | None, spans: bool) -> None:
        from harmscan.classifiers.classifier import HarmClassifier

        self.clf = HarmClassifier.load(
            local_bundle(shipment), variant=variant, device=device, threads=threads, policy=policy,
            batch_size=model_batch_size, max_batch_tokens=max_batch_tokens,
        )
        self.spans = spans

    def __call__(self, batch: pa.Table) -> pa.Table:
        """{start, records} -> {start, count, result}: `result` pickles (output rows, error rows)."""
        import pyarrow as pa

        from harmscan.classifiers.scan import score_chunk

        counts, results = [], []
        for blob in batch.column("records").to_pylist():
            chunk = pickle.loads(blob)
            counts.append(len(chunk))
            results.append(pickle.dumps(score_chunk(chunk, self.clf, self.spans), protocol=pickle.HIGHEST_PROTOCOL))
        return pa.table({"start": batch.column("start"), "count": pa.array(counts, pa.int64()),
                         "result": pa.array(results, pa.large_binary())})


# -- the driver --------------------------------------------------------------------------------------------
def scan_with_ray(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    bundle: str | os.PathLike[str],
    *,
    text_field: str = "text",
    id_field: str = "id",
    input_format: str | None = None,
    output_format: str | None = None,
    policy: Policy | str | os.PathLike[str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    num_actors: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_gpus_per_actor: float = 0.0,
    threads_per_actor: int = 1,
    variant: str = "auto",
    model_batch_size: int | None = None,
    max_batch_tokens: int | str | None = "auto",
    errors_path: str | os.PathLike[str] | None = None,
    ray_address: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    spans: bool = False,
    progress: bool = True,
) -> ScanSummary:
    """Scan `input` into `output` like `scan.scan_file`, on a pool of HarmClassifier actors on Ray.

    `num_actors`: None = one per `threads_per_actor` CPUs of the cluster, or per `num_gpus_per_actor` share
    of its GPUs (> 0 runs the actors on CUDA). `batch_size`: records per actor call and per commit; equal to
    the local scan's chunk size (the default), int8 scores are identical to the local engine's (dynamic
    quantisation scales activations per model call, so they depend on which texts share a call by ~1e-4).
    `ray_address`: an existing cluster ("auto", "10.0.0.5:6379"); None = $RAY_ADDRESS when set (as under
    `ray job submit`), else a local Ray instance started and stopped by this call. `resume`/`overwrite`,
    the output, errors and progress files are exactly the single-process scan's (see scan.py).
    """
    from harmscan.classifiers.bundle import Bundle
    from harmscan.classifiers.classifier import choose_variant
    from harmscan.classifiers.policy import Policy
    from harmscan.classifiers.records import detect_input_format
    from harmscan.classifiers.scan import ScanCheckpoint
    from harmscan.classifiers.scan_progress import default_errors_path, scan_identity
    from harmscan.classifiers.writers import detect_output_format

    if str(input) == "-":
        raise InputError("--engine ray cannot read stdin (its read task runs in a Ray worker): pass a file, "
                         "or use --engine local")
    for name, value in (("--chunk-size", batch_size), ("--threads", threads_per_actor),
                        ("--batch-size", 1 if model_batch_size is None else model_batch_size),
                        ("--num-actors", 1 if num_actors is None else num_actors)):
        if value < 1:
            raise InputError(f"{name} must be >= 1, got {value}")
    if num_gpus_per_actor < 0:
        raise InputError(f"--gpus-per-actor must be >= 0, got {num_gpus_per_actor}")
    source, out = Path(input), Path(output)
    fmt_in = detect_input_format(source, input_format)
    fmt_out = detect_output_format(out, output_format)
    if not source.is_file():
        raise InputError(f"cannot read input {source}: no such file")
    errors_file = Path(errors_path) if errors_path else default_errors_path(out)
    if errors_file.resolve() == out.resolve() or source.resolve() == out.resolve():  # before the bundle loads
        raise InputError(f"output {out} must differ from the input and from the errors file")

    # Everything a user can get wrong is checked here, before any Ray worker starts.
    b = Bundle.load(bundle)
    device = "cuda" if num_gpus_per_actor > 0 else "cpu"
    job = _Job(  # paths absolute: Ray's workers do not share the driver's working directory
        source=str(source.resolve()), fmt_in=fmt_in, text_field=text_field, id_field=id_field, fmt_out=fmt_out,
        out=out, errors_file=errors_file, bundle=b, variant=choose_variant(b, variant, device), device=device,
        policy=Policy.resolve(policy, b.label_names, thresholds, default=b.policy), num_actors=num_actors, batch_size=batch_size,
        gpus=num_gpus_per_actor, threads=threads_per_actor, model_batch_size=model_batch_size,
        max_batch_tokens=max_batch_tokens, spans=spans,
    )
    ray = require("ray", "ray")
    address = _cluster_address(ray_address)
    # The same identity and progress file as the single-process scan: either engine can resume the other.
    identity = scan_identity(source, fmt_in, text_field, id_field, bundle_fingerprint=b.fingerprint,
                             variant=job.variant, thresholds=dict(job.policy.thresholds), fmt_out=fmt_out, spans=spans)
    checkpoint = ScanCheckpoint.open(out, errors_file, identity, labels=b.label_names, resume=resume,
                                     overwrite=overwrite)
    if checkpoint.complete:
        return checkpoint.summary()

    started_here = _connect(ray, address)
    try:
        return _run(ray, job, checkpoint, progress)
    except Exception as exc:
        cause = _harmscan_cause(exc)
        if cause is not None and cause is not exc:
            raise cause from None
        raise
    finally:
        if started_here:
            ray.shutdown()


@dataclass(frozen=True)
class _Job:
    """What the Ray run needs, checked on the driver."""

    source: str
    fmt_in: str
    text_field: str
    id_field: str
    fmt_out: str
    out: Path
    errors_file: Path
    bundle: Bundle
    variant: str
    device: str
    policy: Policy
    num_actors: int | None
    batch_size: int
    gpus: float
    threads: int
    model_batch_size: int | None
    max_batch_tokens: int | str | None
    spans: bool


def _run(ray: Any, job: _Job, checkpoint: ScanCheckpoint, progress: bool) -> ScanSummary:
    actors = _actor_count(ray, job)
    alive_nodes = [n for n in ray.nodes() if n.get("Alive")]
    shipment = ship_bundle(job.bundle.path.resolve(), multi_node=len(alive_nodes) > 1)
    return checkpoint.run(lambda: _scored_chunks(ray, job, shipment, actors, checkpoint.skip), progress=progress,
                          desc=f"scan (ray, {actors} actors)", record={"engine": "ray", "actors": actors})


def _scored_chunks(ray: Any, job: _Job, shipment: _BundleShipment, actors: int, skip: int) -> Iterator[Chunk]:
    """The input from record `skip`, scored by the actor pool, chunk by chunk in input order."""
    from harmscan.classifiers.scan import Chunk

    with _DataSettings(ray):  # around building the dataset too: a Dataset copies the settings
        dataset = ray.data.read_datasource(
            _record_source(job, skip),
            num_cpus=0,  # light work; a CPU reserved for it would be one actor fewer
        ).map_batches(
            _ScanActor,
            batch_size=1,  # one chunk per call
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=job.threads,
            num_gpus=job.gpus or None,
            fn_constructor_kwargs={
                "shipment": shipment, "variant": job.variant, "device": job.device, "threads": job.threads,
                "policy": job.policy, "model_batch_size": job.model_batch_size,
                "max_batch_tokens": job.max_batch_tokens, "spans": job.spans,
            },
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            columns = (batch.column(name).to_pylist() for name in ("start", "count", "result"))
            for start, count, result in zip(*columns, strict=True):
                rows, bad = pickle.loads(result)
                yield Chunk(start, count, rows, bad)


def _cluster_address(address: str | None) -> str | None:
    """The cluster to join (`address`, else $RAY_ADDRESS), None for a local instance."""
    existing = address or os.environ.get("RAY_ADDRESS") or None
    if existing and existing.startswith("ray://"):
        raise InputError(
            f"--ray-address {existing}: Ray Client is not supported (the input is read and the output written "
            "on the driver's machine): submit the scan with `ray job submit`, or run it on a cluster node "
            "with --ray-address auto"
        )
    return existing


def _connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at `address`, or start a local instance; True when this call started Ray (and must
    stop it). An already initialised Ray is used as it is."""
    if ray.is_initialized():
        return False
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(
            f"cannot join the Ray cluster at {address or 'a new local instance'}: {exc}; check "
            "--ray-address (or $RAY_ADDRESS), or start one with `ray start --head`"
        ) from None
    return not address


def _actor_count(ray: Any, job: _Job) -> int:
    """`num_actors`, else as many as the cluster holds. Fails when not even one actor fits: Ray would wait
    for resources forever."""
    total = ray.cluster_resources()
    if job.gpus > 0:
        fits = int(total.get("GPU", 0) / job.gpus)
        if fits < 1:
            raise InputError(
                f"--gpus-per-actor {job.gpus}: the Ray cluster has {total.get('GPU', 0):g} GPUs; add GPU "
                "nodes (on KubeRay keep the GPU group's minReplicas >= 1) or use --gpus-per-actor 0"
            )
    else:
        fits = int(total.get("CPU", 0) // job.threads)
        if fits < 1:
            raise InputError(f"--threads {job.threads}: the Ray cluster has only {total.get('CPU', 0):g} CPUs")
    return job.num_actors or fits


class _DataSettings:
    """Ray Data settings for the scan, restored afterwards: rows in input order (the writers and the
    exactly-once check need it) and our progress bar instead of Ray's."""

    def __init__(self, ray: Any) -> None:
        self.ctx = ray.data.DataContext.get_current()
        self.saved = (self.ctx.execution_options.preserve_order, self.ctx.enable_progress_bars,
                      self.ctx.target_max_block_size)
        # Quieter while we run: "Starting execution of Dataset ..." lines, and the notice that Ray's
        # progress bars are off (ours replaces them). Warnings about resources still show.
        self.levels = {logging.getLogger("ray.data"): logging.WARNING,
                       logging.getLogger("ray.data._internal.progress"): logging.ERROR}
        self.saved_levels = {logger: logger.level for logger in self.levels}

    def __enter__(self) -> None:
        self.ctx.execution_options.preserve_order = True
        self.ctx.enable_progress_bars = False
        # One chunk per block (a chunk is one row, so the smallest target does it): Ray would otherwise merge
        # the read task's chunks into blocks of up to 128 MiB before any reached an actor, and an actor task
        # works a block at a time. This way chunks stream to the actors as they are read, spread evenly over
        # the pool, come back one by one to be committed, and a failure re-runs one chunk.
        self.ctx.target_max_block_size = 1
        for logger, level in self.levels.items():
            logger.setLevel(max(level, logger.level))

    def __exit__(self, *exc: object) -> None:
        (self.ctx.execution_options.preserve_order, self.ctx.enable_progress_bars,
         self.ctx.target_max_block_size) = self.saved
        for logger, level in self.saved_levels.items():
            logger.setLevel(level)


_REMOTE_ERROR = re.compile(r"^(harmscan(?:\.\w+)+)\.(\w+): (.+)$", re.MULTILINE)


def _harmscan_cause(exc: BaseException) -> HarmscanError | None:
    """The HarmscanError behind an exception from Ray (a bundle missing on a node, CUDA missing), so the CLI
    prints its one-line message. Ray wraps a worker's exception in its own types and, for an actor that
    failed to start, keeps only the traceback text: rebuild the error from its last line."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    texts = []
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, HarmscanError):
            return e
        texts.append(str(e))
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    for text in texts:
        found = _REMOTE_ERROR.findall(text)
        if found:
            module, name, message = found[-1]
            try:
                cls = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                cls = HarmscanError
            return (cls if isinstance(cls, type) and issubclass(cls, HarmscanError) else HarmscanError)(message)
    return None
