"""`python -m app`: serve on the configured loopback port or unix socket."""

import uvicorn

from app.settings import Settings


def main() -> None:
    settings = Settings()
    where = (
        {"uds": str(settings.uds)}
        if settings.uds
        else {"host": settings.host, "port": settings.port}
    )
    uvicorn.run("app.main:app", access_log=False, log_level=settings.log_level.lower(), **where)


if __name__ == "__main__":
    main()
