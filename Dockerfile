# One image for every genkeep role: `serve`, `worker`, `db upgrade`, `ops sweep`
# (docs/deploy.md). Build: docker build -t genkeep:0.1.0 .
#
# The base is pinned to a patch release of Python on Debian bookworm, and the Debian
# packages to bookworm's versions: a rebuild gives the same system, and a bump is a diff.
FROM python:3.11.13-slim-bookworm AS python

# -- build: the project as a wheel, installed with its dependencies into a venv -----------
FROM python AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Every dependency ships wheels for this platform, so no compiler is needed here either;
# the final stage copies only the venv, never this stage's source tree or caches.
RUN pip wheel --no-deps --wheel-dir /dist . \
    && python -m venv /opt/genkeep \
    && /opt/genkeep/bin/pip install /dist/*.whl

# -- runtime ------------------------------------------------------------------------------
FROM python AS runtime
# WeasyPrint's text engine (Pango, HarfBuzz subsetting) and fonts, for PDF export.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        fonts-dejavu-core=2.37-6 \
        libharfbuzz-subset0=6.0.0+dfsg-3 \
        libpango-1.0-0=1.50.12+ds-1 \
        libpangoft2-1.0-0=1.50.12+ds-1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 genkeep \
    && useradd --system --uid 10001 --gid genkeep --home-dir /var/lib/genkeep \
        --no-create-home --shell /usr/sbin/nologin genkeep \
    && install -d -o genkeep -g genkeep -m 0750 /var/lib/genkeep
COPY --from=build /opt/genkeep /opt/genkeep
# Process plumbing only: every other setting (and every secret) comes from the
# environment the container is started with, never from the image.
ENV PATH=/opt/genkeep/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    GENKEEP_HOST=0.0.0.0 \
    GENKEEP_PORT=8000 \
    GENKEEP_DATA_DIR=/var/lib/genkeep
WORKDIR /var/lib/genkeep
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000
# For `docker run` of the API; Kubernetes ignores it (the manifests probe /healthz and
# /readyz), and a worker container has no HTTP port to answer it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GENKEEP_PORT', '8000') + '/healthz', timeout=4)"]
ENTRYPOINT ["genkeep"]
CMD ["serve"]
