# The whole gateway in one container: supervisord running nginx, the app and the auth service.
# A thin wrapper: dependencies come from scripts/install (as in CI), processes from
# supervisord.conf (as in `make run` and the end-to-end tests). See docs/gateway.md.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# The stack's account, before scripts/install: as root it would create one itself (for hosts);
# here it has a fixed uid, and the container runs as it (USER below).
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin gateway

# Only what the serving stack needs (.dockerignore keeps the rest out).
COPY pyproject.toml README.md LICENSE supervisord.conf ./
COPY scripts/ scripts/
COPY modelkit/ modelkit/
COPY app/ app/
COPY auth_service/ auth_service/
COPY gateway/ gateway/
COPY nginx/ nginx/
RUN scripts/install --system --extras serving --venv none \
    && rm -rf /var/lib/apt/lists/* /root/.cache

# The committed models.
COPY models/ models/

RUN mkdir -p -m 0700 /app/var/run /app/data \
    && chown -R gateway:gateway /app/var /app/data
USER gateway

ENV GATEWAY_RUN_DIR=/app/var/run \
    GATEWAY_LISTEN=8080 \
    AUTH_DATABASE_PATH=/app/data/auth.sqlite3 \
    APP_MODELS_DIR=/app/models
VOLUME ["/app/data"]
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"]

STOPSIGNAL SIGTERM
CMD ["supervisord", "-c", "/app/supervisord.conf", "-n"]
