"""Server settings, read from environment variables so that `harmscan serve`, `bentoml serve` and a built
Bento (whose `envs` set them) configure the service the same way.

Every limit has a documented default (docs/serving.md); a malformed value stops the server at start-up with
a message naming the variable, never at the first request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harmscan.errors import InputError

ENV_BUNDLE = "HARMSCAN_BUNDLE"
ENV_POLICY = "HARMSCAN_POLICY"
ENV_API_KEYS = "HARMSCAN_API_KEYS"
ENV_AUDIT_LOG = "HARMSCAN_AUDIT_LOG"
ENV_BATCHING = "HARMSCAN_BATCHING"
ENV_MAX_BATCH_SIZE = "HARMSCAN_MAX_BATCH_SIZE"
ENV_MAX_LATENCY_MS = "HARMSCAN_MAX_LATENCY_MS"
ENV_MAX_TEXTS = "HARMSCAN_MAX_TEXTS"
ENV_MAX_CHARS = "HARMSCAN_MAX_CHARS"
ENV_MAX_REQUEST_CHARS = "HARMSCAN_MAX_REQUEST_CHARS"
ENV_MAX_BODY_BYTES = "HARMSCAN_MAX_BODY_BYTES"
ENV_THREADS = "HARMSCAN_THREADS"
ENV_VARIANT = "HARMSCAN_VARIANT"
ENV_HOST = "HARMSCAN_HOST"
ENV_TIMEOUT = "HARMSCAN_TIMEOUT"
ENV_MAX_WINDOWS = "HARMSCAN_MAX_WINDOWS"
ENV_METRICS_REQUIRE_KEY = "HARMSCAN_METRICS_REQUIRE_KEY"
ENV_MAX_QUEUE = "HARMSCAN_MAX_QUEUE"
ENV_DRAIN_TIMEOUT_S = "HARMSCAN_DRAIN_TIMEOUT_S"

# Where bentofile.yaml puts the bundle inside a Bento (relative to the Bento's src/, the serving directory).
BENTO_BUNDLE_DIR = "build/bento/bundle"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000
DEFAULT_MAX_TEXTS = 256
# Long texts are scanned in full (overlapping windows), so characters, not texts, drive the cost.
DEFAULT_MAX_CHARS = 100_000
# All texts of a request together: about 15 s of scoring on one contended core, so that the largest valid
# request finishes well within the request timeout (a timeout would be a 5xx for valid input).
DEFAULT_MAX_REQUEST_CHARS = 200_000
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
# Token windows per request, counted after normalisation: what the model really computes. Prose within the
# character limits stays below it (200,000 characters are about 180 windows of 256 tokens); text that
# normalisation expands (NFKC turns U+FDFA into 18 characters) or that is dense in tokens is refused instead
# of holding the model for minutes. About 20 s of scoring on one contended core.
DEFAULT_MAX_WINDOWS = 256
DEFAULT_MAX_BATCH_SIZE = 64
# How long a request may wait in the batching queue before it is refused with 503 (overload, not a bug).
DEFAULT_MAX_LATENCY_MS = 30_000
DEFAULT_TIMEOUT_S = 120
# Token windows admitted to each lane of the engine (short texts, long texts) and not yet scored; a request
# that would go over is refused at once with 429 and Retry-After (a short text is one window). 1,024 windows
# are about 2-4 s of scoring for a MiniLM int8 bundle on one contended core: well inside the 30 s wait limit,
# so an accepted request is answered rather than timed out.
DEFAULT_MAX_QUEUE = 1024
# On SIGTERM/SIGINT, how long requests already running may take before they are answered 503 and the worker
# exits (serving/lifecycle.py). Below Kubernetes' default terminationGracePeriodSeconds (30 s).
DEFAULT_DRAIN_TIMEOUT_S = 25


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    """The integer setting `name` (>= minimum), `default` when unset or blank; a one-line error otherwise.
    Shared with the gateway's settings (serving/gateway_config.py)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{name} must be an integer >= {minimum}, got {raw!r}") from None
    if value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise InputError(f"{name} must be 1 or 0 (true/false), got {raw!r}")


def parse_api_keys(raw: str | None) -> tuple[str, ...]:
    """Comma- or newline-separated keys; blanks ignored. Keys are secrets: never echo them in errors."""
    if not raw:
        return ()
    keys = tuple(k.strip() for k in raw.replace("\n", ",").split(",") if k.strip())
    for key in keys:
        if any(ch.isspace() for ch in key) or not key.isprintable():
            raise InputError(f"{ENV_API_KEYS} holds a key with spaces or control characters: "
                             "use printable tokens")
    return keys


@dataclass(frozen=True)
class ServeConfig:
    bundle: Path | None = None
    policy: Path | None = None
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    audit_log: Path | None = None
    batching: bool = True
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_latency_ms: int = DEFAULT_MAX_LATENCY_MS
    max_texts: int = DEFAULT_MAX_TEXTS
    max_chars: int = DEFAULT_MAX_CHARS
    max_request_chars: int = DEFAULT_MAX_REQUEST_CHARS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_windows: int = DEFAULT_MAX_WINDOWS
    # /metrics is open like the probes unless this is set (and keys are configured).
    metrics_require_key: bool = False
    max_queue: int = DEFAULT_MAX_QUEUE
    drain_timeout_s: int = DEFAULT_DRAIN_TIMEOUT_S
    threads: int | None = None
    variant: str = "auto"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServeConfig:
        env = os.environ if env is None else env
        bundle = env.get(ENV_BUNDLE, "").strip()
        policy = env.get(ENV_POLICY, "").strip()
        audit = env.get(ENV_AUDIT_LOG, "").strip()
        threads = env_int(env, ENV_THREADS, 0, minimum=0)
        return cls(
            bundle=Path(bundle) if bundle else None,
            policy=Path(policy) if policy else None,
            api_keys=parse_api_keys(env.get(ENV_API_KEYS)),
            audit_log=Path(audit) if audit else None,
            batching=_flag(env, ENV_BATCHING, True),
            max_batch_size=env_int(env, ENV_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_SIZE),
            max_latency_ms=env_int(env, ENV_MAX_LATENCY_MS, DEFAULT_MAX_LATENCY_MS),
            max_texts=env_int(env, ENV_MAX_TEXTS, DEFAULT_MAX_TEXTS),
            max_chars=env_int(env, ENV_MAX_CHARS, DEFAULT_MAX_CHARS),
            max_request_chars=env_int(env, ENV_MAX_REQUEST_CHARS, DEFAULT_MAX_REQUEST_CHARS),
            max_body_bytes=env_int(env, ENV_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, minimum=1024),
            max_windows=env_int(env, ENV_MAX_WINDOWS, DEFAULT_MAX_WINDOWS),
            metrics_require_key=_flag(env, ENV_METRICS_REQUIRE_KEY, False),
            max_queue=env_int(env, ENV_MAX_QUEUE, DEFAULT_MAX_QUEUE),
            drain_timeout_s=env_int(env, ENV_DRAIN_TIMEOUT_S, DEFAULT_DRAIN_TIMEOUT_S, minimum=0),
            threads=threads or None,
            variant=env.get(ENV_VARIANT, "").strip() or "auto",
        )

    def require_bundle(self) -> Path:
        """The bundle to serve: $HARMSCAN_BUNDLE, else the one packed into a Bento (served from its src/)."""
        if self.bundle is not None:
            if not self.bundle.is_absolute() and not self.bundle.exists():
                # A Bento's env sets a path relative to its src/, while a container starts in the Bento root.
                in_bento = Path(os.environ.get("BENTO_PATH", ".")) / "src" / self.bundle
                if in_bento.exists():
                    return in_bento
            return self.bundle
        if Path(BENTO_BUNDLE_DIR).is_dir():
            return Path(BENTO_BUNDLE_DIR)
        raise InputError(
            f"{ENV_BUNDLE} is not set: start the server with `harmscan serve --bundle PATH` "
            f"or set {ENV_BUNDLE}=PATH before `bentoml serve`"
        )

    def limits(self) -> dict[str, int]:
        """The limits as clients see them (GET /v1/labels)."""
        return {
            "max_texts_per_request": self.max_texts,
            "max_chars_per_text": self.max_chars,
            "max_chars_per_request": self.max_request_chars,
            "max_body_bytes": self.max_body_bytes,
            "max_windows_per_request": self.max_windows,
        }


def service_host(env: Mapping[str, str] | None = None) -> str:
    """The default bind address: loopback unless HARMSCAN_HOST (or --host) says otherwise."""
    env = os.environ if env is None else env
    return env.get(ENV_HOST, "").strip() or DEFAULT_HOST


def service_timeout(env: Mapping[str, str] | None = None) -> int:
    return env_int(os.environ if env is None else env, ENV_TIMEOUT, DEFAULT_TIMEOUT_S)
