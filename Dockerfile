# matcher's HTTP service: gunicorn + Flask on a slim Python, as a non-root user: an asyncio front that
# reads whole requests and queues matches for a pool of compute workers (gunicorn.conf.py starts both).
#   docker build -t matcher-service .
#   docker run --rm -p 127.0.0.1:8000:8000 matcher-service      (or: docker compose up -d)
# Settings: MATCHER_* environment variables (service/config.py), e.g. -e MATCHER_API_KEYS=...
#
# Base image: pinned by tag here. To pin it by digest as well (reproducible, immune to a re-pushed
# tag), look the digest up where a registry is reachable and write it after the tag:
#   docker buildx imagetools inspect python:3.11-slim-bookworm    (the "Digest: sha256:..." line)
#   FROM python:3.11-slim-bookworm@sha256:<that digest>
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, so code changes keep this layer cached: the service set only (no dask,
# distributed or tqdm: those serve `matcher batch`), every file checked against its sha256.
# requirements-service.lock is pip-compile --generate-hashes output of requirements-service.txt.
COPY requirements-service.lock ./
RUN pip install --require-hashes --no-deps -r requirements-service.lock

COPY matcher/ matcher/
COPY service/ service/
COPY gunicorn.conf.py ./
COPY samples/ samples/
# The `matcher` command line (match, batch without Dask's extras) from the same code, on PATH.
ENV PYTHONPATH=/app
RUN printf '#!/bin/sh\nexec python -m matcher "$@"\n' > /usr/local/bin/matcher \
    && chmod 0755 /usr/local/bin/matcher \
    && matcher --version \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin matcher
USER matcher

# Inside the container the service must listen on every interface of the container;
# publish it on the host's loopback only (-p 127.0.0.1:8000:8000) unless a proxy fronts it.
ENV MATCHER_BIND=0.0.0.0:8000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; port = os.environ['MATCHER_BIND'].rpartition(':')[2]; sys.exit(u.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status != 200)"]
CMD ["python", "-m", "gunicorn", "-c", "gunicorn.conf.py"]
