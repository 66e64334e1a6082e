"""`python -m app`: serve on the configured loopback port or unix socket, in one process or
`APP_WORKERS` processes sharing it (uvicorn's supervisor restarts a worker that dies)."""

from __future__ import annotations

import uvicorn

from app.settings import Settings
from app.workers import metrics_dir


def main() -> None:
    settings = Settings()
    where = (
        {"uds": str(settings.uds)}
        if settings.uds
        else {"host": settings.host, "port": settings.port}
    )
    with metrics_dir(settings):
        uvicorn.run(
            "app.main:app",
            access_log=False,
            log_level=settings.log_level.lower(),
            workers=settings.workers,
            **where,
        )


if __name__ == "__main__":
    main()
