"""The study's RDB storage: sqlite by default, PostgreSQL for many machines."""

from __future__ import annotations

import importlib.util
import time
import warnings

import optuna

from hybridunet.errors import ConfigError, UsageError


def open_storage(url: str, heartbeat: float = 30) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage with heartbeats; a database that cannot be reached fails within
    seconds, in one line naming its host and port."""
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(f"--storage {url!r} is not a database URL (e.g. sqlite:///optuna.db, "
                          "postgresql://user:password@host:5432/optuna)") from None
    if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg2") is None:
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, the [postgres] extra
    backend = parsed.get_backend_name()
    connect_args = {"timeout": 60} if backend == "sqlite" else {"connect_timeout": 5}
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5; they are what resumes need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            for attempt in range(3):
                try:
                    return optuna.storages.RDBStorage(
                        parsed.render_as_string(hide_password=False), engine_kwargs={"connect_args": connect_args},
                        heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
                    )
                except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError) as err:
                    # Workers started together on a new storage: one of them created the schema
                    # first (a duplicate row, or on sqlite "table ... already exists"); use it.
                    racing = isinstance(err, sqlalchemy.exc.IntegrityError) or "already exists" in str(err.orig)
                    if not racing or attempt == 2:
                        raise
                    time.sleep(1 + attempt)
        except ModuleNotFoundError as err:
            raise UsageError(f"--storage {backend}: its driver {err.name!r} is not installed "
                             f"(for PostgreSQL: pip install 'hybridunet[postgres]')") from None
        except sqlalchemy.exc.OperationalError as err:
            where = f"{parsed.host}:{parsed.port or 'default port'}" if parsed.host else str(parsed.database)
            reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
            raise UsageError(f"cannot reach the Optuna storage {backend} at {where}: {reason}") from None
