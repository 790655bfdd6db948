#!/usr/bin/env bash
# A throwaway Docker engine for the container tests (tests/containers/), on a Debian 12 machine
# without a running daemon or registry access. Run as root from the repository root:
#
#   scripts/docker_lab.sh install   # docker.io, debootstrap, iptables from Debian (when missing)
#   scripts/docker_lab.sh daemon    # dockerd started by hand (no systemd), all state under $LAB
#   scripts/docker_lab.sh base      # python:3.11-slim, or a stand-in for it when it cannot be pulled
#   scripts/docker_lab.sh build     # the four service images, tagged ghcr.io/ml-monorepo/<name>:$TAG
#   scripts/docker_lab.sh clean     # stop what daemon/build started (by PID), restore the network
#   scripts/docker_lab.sh env       # the DOCKER_HOST line to export
#   scripts/docker_lab.sh ci        # .ci/run's container stage: all of the above and the tests
#
# Why a stand-in base: Docker Hub may not resolve, while Debian's mirror and PyPI do. debootstrap
# gives a bookworm with python3.11 (python:3.11-slim is bookworm too), with python at the same
# /usr/local/bin path. Egress can go through a TLS-intercepting proxy, so the host's extra CAs are
# trusted in it and pip uses the system bundle. torch's CPU index may be unreachable as well: the
# CPU wheel in pip's find-links folder is then served from a tiny HTTPS index on the docker bridge
# under download.pytorch.org's name (docker build --add-host), with a throwaway CA the base trusts.
# Environment: LAB (state; default /tmp/ml-docker-lab), TAG (default lab), NICE (heavy steps).
set -euo pipefail

LAB=${LAB:-/tmp/ml-docker-lab}
TAG=${TAG:-lab}
read -r -a NICE <<< "${NICE:-nice -n 19 ionice -c3}"
export DOCKER_HOST=unix://$LAB/docker.sock
export DOCKER_BUILDKIT=0   # the classic builder uses the local base image and needs no buildx
SERVICES=(image_classifier semantic_search rag_chatbot llm_chat)
BRIDGE_IP=172.17.0.1       # docker0's address (dockerd's default)
log() { printf '== %s\n' "$*" >&2; }

install() {
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  command -v iptables >/dev/null || need+=(iptables)
  command -v openssl >/dev/null || need+=(openssl)
  command -v docker-compose >/dev/null || need+=(docker-compose)  # the smoke test's compose
  ((${#need[@]})) || return 0
  log "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${NICE[@]}" apt-get install -y -qq --no-install-recommends \
    "${need[@]}" ca-certificates >/dev/null
}

daemon() {
  if docker version >/dev/null 2>&1; then log "dockerd answers on $DOCKER_HOST"; return; fi
  mkdir -p "$LAB/data" "$LAB/exec"
  # what dockerd changes on the host network, so that `clean` can put it back
  sysctl -n net.ipv4.ip_forward > "$LAB/ip_forward.before"
  iptables -S FORWARD | awk '$1 == "-P" {print $3; exit}' > "$LAB/forward_policy.before"
  log "starting dockerd (state and log in $LAB)"
  # setsid: its own session, so it outlives this shell; `clean` stops it by its pidfile. The
  # nice level is inherited by containerd, the builds and the containers (shared machine).
  setsid "${NICE[@]}" dockerd --data-root "$LAB/data" --exec-root "$LAB/exec" \
    --pidfile "$LAB/dockerd.pid" -H "$DOCKER_HOST" --storage-driver overlay2 \
    >"$LAB/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && return; sleep 1; done
  log "dockerd did not answer in 60 s; tail of $LAB/dockerd.log:"; tail -20 "$LAB/dockerd.log" >&2
  return 1
}

labca() {  # a throwaway CA, and a certificate for the stand-in download.pytorch.org signed by it
  [[ -f $LAB/labca/srv.crt ]] && return
  mkdir -p "$LAB/labca"
  local d=$LAB/labca
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days 2 \
    -subj "/CN=ml-docker-lab-ca" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$d/srv.key" -out "$d/srv.csr" \
    -subj "/CN=download.pytorch.org" 2>/dev/null
  printf 'subjectAltName=DNS:download.pytorch.org\n' > "$d/ext.cnf"
  openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -out "$d/srv.crt" -days 2 -extfile "$d/ext.cnf" 2>/dev/null
}

base() {
  docker image inspect python:3.11-slim >/dev/null 2>&1 && return
  # dockerd retries an unresolvable registry for about a minute: ask DNS first (a cold run's
  # minute saved where Docker Hub is unreachable)
  if timeout 10 getent hosts registry-1.docker.io >/dev/null \
      && timeout 120 docker pull -q python:3.11-slim >/dev/null 2>&1; then return; fi
  log "python:3.11-slim cannot be pulled: building a stand-in from Debian bookworm"
  labca
  local r=$LAB/rootfs n
  # Three tries: a mirror caught mid-update (or a proxy's truncated copy) once gave debootstrap a
  # Release file its signature did not match, while the same file fetched again verified.
  for n in 1 2 3; do
    [[ -x $r/usr/bin/python3.11 ]] && break
    rm -rf "$r"
    "${NICE[@]}" debootstrap --variant=minbase \
      --include=python3.11,python3.11-venv,python3-venv,ca-certificates,libpython3.11 \
      bookworm "$r" http://deb.debian.org/debian >"$LAB/debootstrap.log" 2>&1 \
      || { log "debootstrap failed (try $n): $(tail -1 "$LAB/debootstrap.log")"; sleep 5; }
  done
  [[ -x $r/usr/bin/python3.11 ]] || { log "no stand-in base: see $LAB/debootstrap.log"; return 1; }
  for n in python python3 python3.11; do ln -sf /usr/bin/python3.11 "$r/usr/local/bin/$n"; done
  cp /usr/local/share/ca-certificates/*.crt "$r/usr/local/share/ca-certificates/" 2>/dev/null || true
  cp "$LAB/labca/ca.crt" "$r/usr/local/share/ca-certificates/ml-docker-lab-ca.crt"
  chroot "$r" update-ca-certificates >/dev/null
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$r/etc/pip.conf"
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb
  tar -C "$r" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - python:3.11-slim >/dev/null
}

torch_index() {  # prints the docker build args that point pip at a reachable CPU torch index
  getent hosts download.pytorch.org >/dev/null && return 0   # the real index resolves: use it
  local links wheel w idx=$LAB/torchindex
  links=$(python3 -m pip config get global.find-links 2>/dev/null || true)
  wheel=$(find "${links:-/nonexistent}" -maxdepth 1 -name 'torch-*+cpu-cp311-*x86_64.whl' \
    2>/dev/null | sort | tail -1)
  [[ -n $wheel ]] || { log "no CPU torch wheel in pip's find-links: llm_chat's build may fail"; return 0; }
  labca
  w=$(basename "$wheel")
  mkdir -p "$idx/whl/cpu/torch" "$idx/files"
  [[ -f $idx/files/$w ]] || cp "$wheel" "$idx/files/"
  printf '<!DOCTYPE html><html><body><a href="/files/%s#sha256=%s">%s</a></body></html>\n' \
    "${w//+/%2B}" "$(sha256sum "$idx/files/$w" | cut -d' ' -f1)" "$w" > "$idx/whl/cpu/torch/index.html"
  if [[ ! -f $LAB/torchindex.pid ]] || ! kill -0 "$(<"$LAB/torchindex.pid")" 2>/dev/null; then
    setsid python3 "$(dirname "$0")/torch_index.py" "$idx" "$BRIDGE_IP" 443 \
      "$LAB/labca/srv.crt" "$LAB/labca/srv.key" >"$LAB/torchindex.log" 2>&1 < /dev/null &
    echo $! > "$LAB/torchindex.pid"
    sleep 1
  fi
  echo "--add-host download.pytorch.org:$BRIDGE_IP"
}

# an image whose lock comes from PyTorch's CPU index (the Dockerfile's PIP_EXTRA_INDEX_URL)
needs_torch_index() { grep -q '^ARG PIP_EXTRA_INDEX_URL=.*download.pytorch.org' "projects/$1/Dockerfile"; }

build() {  # build [SERVICE...]: writes $LAB/build-times.json (seconds per image)
  local services=("$@") s t0 extra=() times=()
  ((${#services[@]})) || services=("${SERVICES[@]}")
  mkdir -p "$LAB/logs"
  for s in "${services[@]}"; do
    extra=()
    if needs_torch_index "$s"; then read -r -a extra <<< "$(torch_index)"; fi
    t0=$SECONDS
    log "build $s"
    if ! "${NICE[@]}" docker build "${extra[@]}" -f "projects/$s/Dockerfile" \
        -t "ghcr.io/ml-monorepo/$s:$TAG" . >"$LAB/logs/build-$s.log" 2>&1; then
      log "build $s failed; tail of $LAB/logs/build-$s.log:"; tail -25 "$LAB/logs/build-$s.log" >&2
      return 1
    fi
    times+=("\"$s\": $((SECONDS - t0))")
  done
  stop_pid torchindex
  (IFS=,; echo "{${times[*]}}") > "$LAB/build-times.json"
}

stop_pid() {  # stop_pid NAME: the process in $LAB/NAME.pid, TERM then up to 30 s
  local pid
  [[ -f $LAB/$1.pid ]] || return 0
  pid=$(<"$LAB/$1.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  rm -f "$LAB/$1.pid"
}

clean() {
  stop_pid torchindex
  if docker version >/dev/null 2>&1; then
    docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1 || true
  fi
  stop_pid dockerd
  # dockerd leaves its bridges and iptables rules behind, switches net.ipv4.ip_forward on and may
  # set the FORWARD policy to DROP. Undo just those.
  local t r c br
  for t in nat filter; do
    iptables -t "$t" -S | grep -E -- '^-A .*(DOCKER|docker0|br-[0-9a-f]{12})' | sed 's/^-A //' |
      while read -r -a r; do iptables -t "$t" -D "${r[@]}" || true; done
    for c in DOCKER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2 DOCKER-USER; do
      { iptables -t "$t" -F "$c" && iptables -t "$t" -X "$c"; } 2>/dev/null || true
    done
  done
  for br in $(ip -o link show type bridge | awk -F': ' '{print $2}' | grep -E '^(docker0|br-[0-9a-f]{12})$'); do
    ip link delete "$br" || true
  done
  if [[ -s $LAB/forward_policy.before ]]; then iptables -P FORWARD "$(<"$LAB/forward_policy.before")"; fi
  if [[ -s $LAB/ip_forward.before ]]; then sysctl -qw net.ipv4.ip_forward="$(<"$LAB/ip_forward.before")"; fi
  log "dockerd stopped; docker bridges and iptables rules removed"
}

loud() { printf '\n%s\n!! %s\n%s\n\n' "$(printf '!%.0s' {1..78})" "$*" "$(printf '!%.0s' {1..78})" >&2; }

ci() {  # the engine (started here, stopped at exit), then tests/containers; prints its seconds
  local started=$SECONDS
  if [[ $(id -u) != 0 ]]; then
    loud "CONTAINER TESTS SKIPPED: starting dockerd needs root"; return 0
  fi
  if ! install; then loud "CONTAINER TESTS SKIPPED: docker.io could not be installed"; return 0; fi
  # stop the engine at exit only if this stage starts it (a developer's may already be up)
  docker version >/dev/null 2>&1 || trap clean EXIT
  if ! daemon; then loud "CONTAINER TESTS SKIPPED: no Docker engine could start here"; return 0; fi
  # required: the tests fail rather than skip if the engine goes away under them; the engine
  # is kept for the trap to stop, its image store for the next run's layers
  ML_CONTAINER_TESTS=required ML_DOCKER_LAB_KEEP=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    "$(dirname "$0")/../.venv/bin/python" -m pytest tests/containers -x -n 0  # one engine, one build at a time
  log "container stage: $((SECONDS - started)) s"
}

case ${1:-} in
  install|daemon|base|clean|ci) "$1" ;;
  build) shift; build "$@" ;;
  env) echo "export DOCKER_HOST=$DOCKER_HOST DOCKER_BUILDKIT=0" ;;
  *) echo "usage: $0 install|daemon|base|build [SERVICE...]|clean|env|ci" >&2; exit 2 ;;
esac
