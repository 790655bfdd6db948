# The one Dockerfile every service image follows. docker-compose.yml builds the services from it
# with their build args; projects/<name>/Dockerfile are this file with those args as defaults,
# written by `python scripts/render_dockerfiles.py` (tests/test_infra.py fails when they drift),
# so `docker build -f projects/<name>/Dockerfile .` builds the same image without args.
# Multi-stage: the build stage holds pip and the sources, the runtime stage only the virtualenv.
# Runs as uid 10001 with a read-only root filesystem in compose: /srv/monitor and /srv/data are
# the writable volumes, /tmp a tmpfs (caches go there).
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
# The virtualenv is installed in three layers, so that images reuse each other's: the serving
# stack all four share, declared before any build arg (an arg's value is part of the cache key of
# every RUN after it); then SHARED_LOCK, a lock this image shares with another (rag_chatbot:
# semantic search's, so the vector store is installed once for both); then LOCK, the service's
# own. The locks are compiled with requirements-serve.lock as a constraint (`make lock`), so a
# later layer never changes an earlier one's versions, only adds packages.
COPY requirements-serve.lock requirements-serve.lock
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-deps -r requirements-serve.lock
ARG SHARED_LOCK=requirements-serve.lock
COPY ${SHARED_LOCK} shared.lock
RUN /opt/venv/bin/pip install --no-deps -r shared.lock
# pip's extra index for the service's lock (llm_chat: the PyTorch CPU index, so torch comes
# without CUDA libraries); pip reads PIP_EXTRA_INDEX_URL itself
ARG LOCK=requirements-serve-image-classifier.lock
ARG PIP_EXTRA_INDEX_URL=""
COPY ${LOCK} service.lock
RUN /opt/venv/bin/pip install --no-deps -r service.lock
# the local packages the service needs besides mlstack (rag_chatbot reuses semantic_search);
# after the locks' layers, so a code change rebuilds only this one
ARG PACKAGES="./projects/image_classifier"
COPY libs/mlstack libs/mlstack
COPY projects projects
# PACKAGES is a list of paths: word splitting is wanted, so it goes through xargs
RUN echo "./libs/mlstack ${PACKAGES}" | xargs /opt/venv/bin/pip install --no-deps

FROM ${BASE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# PROJECT: the folder under projects/; PORT: where the service listens; ENV_PREFIX: its settings'
# env prefix; COMMAND: its CLI; SYSTEM_PACKAGES: Debian packages the runtime needs (none so far)
ARG PROJECT=image_classifier
ARG PORT=8001
ARG ENV_PREFIX=IMAGE_CLASSIFIER
ARG COMMAND=image-classifier
ARG SYSTEM_PACKAGES=""
RUN if [ -n "${SYSTEM_PACKAGES}" ]; then apt-get update \
      && echo "${SYSTEM_PACKAGES}" | xargs apt-get install -y --no-install-recommends \
      && rm -rf /var/lib/apt/lists/*; fi \
    && useradd --create-home --uid 10001 app && mkdir -p /srv/models /srv/monitor /srv/data \
    && chown 10001 /srv/monitor /srv/data
LABEL org.opencontainers.image.title="${PROJECT}"
COPY --from=build /opt/venv /opt/venv
COPY infra/docker/entrypoint.sh /usr/local/bin/service-entrypoint
# Paths the settings do not default under /srv: the writable index and uploads in the /srv/data
# volume, seeded from the index mounted read-only at /srv/corpus-index (search: its champion's;
# RAG: the pipeline's). A service ignores the variables its settings do not have. HF_HOME and
# XDG_CACHE_HOME: the root filesystem is read-only, /tmp is not.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    HF_HOME=/tmp/huggingface \
    XDG_CACHE_HOME=/tmp/cache \
    SERVICE_PORT=${PORT} \
    SERVICE_COMMAND=${COMMAND} \
    ${ENV_PREFIX}_HOST=0.0.0.0 \
    ${ENV_PREFIX}_PORT=${PORT} \
    ${ENV_PREFIX}_MONITOR_DIR=/srv/monitor \
    ${ENV_PREFIX}_INDEX_URI=/srv/data/index \
    ${ENV_PREFIX}_CORPUS_INDEX=/srv/corpus-index \
    ${ENV_PREFIX}_UPLOADS_DIR=/srv/data/uploads
WORKDIR /srv
USER 10001
EXPOSE ${PORT}
# uvicorn drains in-flight requests on SIGTERM for graceful_shutdown_s (20 s); compose's
# stop_grace_period (30 s) waits for it before SIGKILL
STOPSIGNAL SIGTERM
# /readyz, not /healthz: healthy means the model is loaded, so `depends_on: service_healthy` and
# rollouts wait for it
HEALTHCHECK --interval=15s --timeout=3s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['SERVICE_PORT'] + '/readyz', timeout=2)"]
ENTRYPOINT ["service-entrypoint"]
CMD ["serve"]
