"""Settings of the guardrail gateway (serving/gateway.py), read from environment variables like the moderation
server's (serving/config.py), so `harmscan gateway`, `bentoml serve` and a container configure it alike.
Kept apart from gateway.py so that the CLI can validate them without importing BentoML.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from harmscan.errors import InputError
from harmscan.serving.config import env_int

ENV_UPSTREAM = "HARMSCAN_UPSTREAM"
ENV_UPSTREAM_API_KEY = "HARMSCAN_UPSTREAM_API_KEY"
ENV_UPSTREAM_TIMEOUT = "HARMSCAN_UPSTREAM_TIMEOUT"
ENV_ON_INPUT_BLOCK = "HARMSCAN_ON_INPUT_BLOCK"
ENV_REFUSAL = "HARMSCAN_REFUSAL"
ENV_CHUNK_CHARS = "HARMSCAN_GUARD_CHUNK_CHARS"
ENV_CONTEXT_CHARS = "HARMSCAN_GUARD_CONTEXT_CHARS"

ON_BLOCK = ("refusal", "error")
DEFAULT_REFUSAL = "I can't help with that."
DEFAULT_UPSTREAM_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class GatewayConfig:
    upstream: str
    upstream_api_key: str | None = field(default=None, repr=False)
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT_S
    on_input_block: str = "refusal"  # answer a blocked prompt with a refusal completion, or an OpenAI error
    refusal: str = DEFAULT_REFUSAL
    chunk_chars: int = 200
    context_chars: int = 200

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayConfig:
        env = os.environ if env is None else env
        upstream = check_upstream(env.get(ENV_UPSTREAM, ""))
        on_block = env.get(ENV_ON_INPUT_BLOCK, "").strip() or "refusal"
        if on_block not in ON_BLOCK:
            raise InputError(f"{ENV_ON_INPUT_BLOCK} must be refusal or error, got {on_block!r}")
        raw_timeout = env.get(ENV_UPSTREAM_TIMEOUT, "").strip()
        try:
            timeout = float(raw_timeout) if raw_timeout else DEFAULT_UPSTREAM_TIMEOUT_S
        except ValueError:
            raise InputError(f"{ENV_UPSTREAM_TIMEOUT} must be a number of seconds, got {raw_timeout!r}") from None
        if not timeout > 0:
            raise InputError(f"{ENV_UPSTREAM_TIMEOUT} must be > 0 seconds, got {timeout}")
        return cls(
            upstream=upstream,
            upstream_api_key=env.get(ENV_UPSTREAM_API_KEY, "").strip() or None,
            upstream_timeout=timeout,
            on_input_block=on_block,
            refusal=env.get(ENV_REFUSAL, "").strip() or DEFAULT_REFUSAL,
            chunk_chars=env_int(env, ENV_CHUNK_CHARS, 200, 1),
            context_chars=env_int(env, ENV_CONTEXT_CHARS, 200, 0),
        )


def check_upstream(url: str) -> str:
    """The upstream's base URL (up to /v1), without a trailing slash."""
    url = url.strip()
    if not url:
        raise InputError(f"{ENV_UPSTREAM} is not set: pass --upstream URL (e.g. http://127.0.0.1:8000/v1)")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InputError(f"the upstream must be an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}")
    return url.rstrip("/")

