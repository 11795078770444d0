"""Settings from the environment (``GPULEASE_*``), with defaults for one machine.

``GPULEASE_DATABASE_URL`` selects the database: SQLite in a file by default, or PostgreSQL
(``postgresql+psycopg://user@host/db``). Cores never read settings: services pass values in.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GPULEASE_", extra="ignore")

    database_url: str = "sqlite:///gpulease.db"
    data_dir: Path = Path("var")  # job logs of the local executor
    executor: str = Field(default="simulated", pattern="^(simulated|local)$")
    policy: str = "default"
    scheduler_interval_s: float = Field(default=1.0, gt=0)
    preemption_grace_s: float = Field(default=30.0, ge=0)
    # GPUs of the rack-local block gangs use (64 on NVL72) that work without a rack
    # requirement should leave whole when other racks have room; 0 = off
    keep_blocks: int = Field(default=0, ge=0)
    price_per_gpu_hour: Decimal = Decimal("3.50")
    currency: str = "USD"
    run_scheduler: bool = True  # `serve` also runs the scheduler loop (leader election decides)
    # Compliance
    policy_files: list[Path] = Field(default_factory=list)  # operator packs beside the shipped
    review_threshold: float = Field(default=85.0, ge=0, le=100)
    block_threshold: float = Field(default=95.0, ge=0, le=100)
    kyc_approvals: int = Field(default=1, ge=1, le=2)  # 2 = four-eyes
    kyc_validity_days: int = Field(default=365, ge=1)
    operator_country: str = "ID"  # customers from elsewhere are foreign
    suspended_running: str = Field(default="drain", pattern="^(drain|keep)$")
