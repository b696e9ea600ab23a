# tracegate as a container: `tracegate serve` by default, any other subcommand as arguments.
#   docker build -t tracegate .
#   docker run --rm -v "$PWD/certs:/srv/tracegate/certs:ro" -v tracegate-var:/srv/tracegate/var \
#     -e TRACEGATE_BROKER_URL=amqp://tracegate:...@rabbitmq:5672/ tracegate
# Keys, trust material and the database live in mounted volumes, never in the image: certs/ (trust material,
# see certs/README.md), var/ (the SQLite store and the gateway's key under var/pki unless
# TRACEGATE_GATEWAY_KEY names another path), config/routing.toml (mount the administrators' table over it).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# lxml and xmlsec come as wheels linked against the same libxml2 (checked at start): no compiler, no system
# libxml2 or libxmlsec1 needed.
COPY pyproject.toml README.md /build/
COPY gateway /build/gateway
COPY schemas /build/schemas
RUN pip install /build && rm -rf /build \
    && useradd --system --uid 10001 --home-dir /srv/tracegate --create-home tracegate

WORKDIR /srv/tracegate
COPY config/tracegate.toml config/routing.toml config/makes.toml config/
RUN mkdir -p certs var && chown tracegate:tracegate certs var
USER tracegate

# JSON log lines for a collector; /health on 127.0.0.1 inside the container, for the check below.
ENV TRACEGATE_LOG_FORMAT=json \
    TRACEGATE_HEALTH_PORT=8081
VOLUME ["/srv/tracegate/var"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=4).status != 200)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tracegate"]
CMD ["serve"]
