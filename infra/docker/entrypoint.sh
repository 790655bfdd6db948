#!/bin/sh
# Entrypoint of every service image (infra/docker/service.Dockerfile). It says up front, in the
# log, what would otherwise surface later as a bare 500 or a /readyz error that names the wrong
# cause: model files the container user cannot read (safetensors writes 0600 files) and data
# folders it cannot write (a bind mount owned by the host user, or one docker created root-owned).
# It only warns: a service does not need every model under /srv/models.
set -eu
unreadable=$(find /srv/models -type f ! -readable 2>/dev/null | head -5)
if [ -n "$unreadable" ]; then
  echo "service-entrypoint: uid $(id -u) cannot read these model files (and maybe more):" >&2
  echo "$unreadable" | sed 's/^/  /' >&2
  echo "  fix on the host: chmod -R a+rX models" >&2
fi
for dir in /srv/data /srv/monitor; do
  if [ -d "$dir" ] && [ ! -w "$dir" ]; then
    echo "service-entrypoint: $dir is not writable by uid $(id -u): mount a named volume there" \
      "(docker-compose.yml does), or chown the host folder to 10001" >&2
  fi
done
# a bind mount of a host folder that does not exist yet: docker creates it empty (root-owned)
if [ -d /srv/corpus-index ] && [ -z "$(ls -A /srv/corpus-index)" ]; then
  echo "service-entrypoint: /srv/corpus-index is empty: the pipeline's index is missing on the" \
    "host (run \`dvc repro\` before \`docker compose up\`)" >&2
fi
exec "$SERVICE_COMMAND" "$@"
