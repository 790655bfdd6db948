"""Service settings, read from environment variables and an optional `.env` file."""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServeSettings(BaseSettings):
    """Settings every service shares. Projects subclass it and set their own `env_prefix`.

    Example: `MLSTACK_PORT=9000 MLSTACK_API_KEY=secret python -m my_service`.
    """

    model_config = SettingsConfigDict(
        env_prefix="MLSTACK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    model_path: Path | None = None
    api_key: SecretStr | None = Field(
        None,
        description="When set, every route but health, metrics and the demo page needs it. "
        "Several keys, comma-separated, are all accepted (rotation).",
    )
    api_keys_file: Path | None = Field(
        None,
        description="A file of keys, one a line (a mounted Secret); re-read when it changes. "
        "Named but missing or empty: the service refuses to start.",
    )
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_batch_size: int = Field(32, ge=1, description="Largest batch the micro-batcher forms.")
    max_wait_ms: float = Field(5.0, ge=0, description="How long a batch waits to fill up.")
    queue_size: int = Field(256, ge=1, description="Queued items before the service answers 503.")
    request_timeout_s: float = Field(30.0, gt=0)
    cpu_workers: int = Field(
        0,
        ge=0,
        description="Threads for input-sized CPU work (decode, tokenize); 0 = min(4, cores).",
    )
    cpu_queue: int = Field(64, ge=1, description="CPU tasks that may wait before 503 busy.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins whose pages may call the service from a browser; in the environment "
        "a JSON list: '[\"http://127.0.0.1:8003\"]'. Preflights need no API key, requests do.",
    )
    exit_on_load_failure: bool = Field(
        False,
        description="Exit with status 3 when loading fails, for supervisors that restart on exit "
        "(compose's restart policy); otherwise /healthz fails and a liveness probe restarts it.",
    )
    graceful_shutdown_s: float = Field(20.0, ge=0)
    log_level: str = "info"
    monitor_dir: Path | None = Field(None, description="Inference log folder; off when unset.")
    inference_log_sample_rate: float = Field(1.0, ge=0, le=1)
    shadow_share: float = Field(
        1.0, ge=0, le=1, description="Share of requests copied to a shadow model, when one is set."
    )
    shadow_queue: int = Field(
        8, ge=1, description="Requests waiting for the shadow; past that copies are dropped."
    )
    shadow_timeout_s: float = Field(
        10.0, gt=0, description="A shadow answer slower than this is counted `late`, not logged."
    )
    shadow_seed: int | None = Field(None, description="Seeds which requests are shadowed.")
    shadow_nice: int = Field(
        10, ge=0, le=19, description="Linux nice value of the shadow's thread (0: same priority)."
    )
