#!/usr/bin/env bash
# `make demo`: build every model (`dvc repro`, a no-op when nothing changed; each stage's time is
# printed and kept in .run/demo_timings.json), start the services in the background (each in its
# own process group, PIDs in .run/), wait until ready, print URLs.
# `scripts/demo.sh stop` stops them by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=.run
mkdir -p "$RUN/monitor"

stop() {
  for pidfile in "$RUN"/*.pid; do
    [[ -e "$pidfile" ]] || continue
    pid=$(<"$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" || true
      for _ in {1..20}; do  # graceful shutdown finishes in-flight requests; then insist
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.5
      done
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "stopped $(basename "$pidfile" .pid) (pid $pid)"
    fi
    rm -f "$pidfile"
  done
}

start() {  # start NAME PORT CMD...: one service in its own session, so stop() ends its children
  local name=$1 port=$2
  shift 2
  local pidfile="$RUN/$name.pid"
  if [[ -e "$pidfile" ]] && kill -0 "$(<"$pidfile")" 2>/dev/null; then
    echo "$name already running (pid $(<"$pidfile"))"
    return
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is taken: stop what runs there or set another port" >&2
    exit 1
  fi
  setsid "$@" >"$RUN/$name.log" 2>&1 &
  echo $! >"$pidfile"
}

wait_ready() {  # wait_ready NAME URL TIMEOUT_S
  local deadline=$((SECONDS + $3))
  until curl -fs -o /dev/null "$2"; do
    if ((SECONDS > deadline)) || ! kill -0 "$(<"$RUN/$1.pid")" 2>/dev/null; then
      echo "$1 did not become ready; last log lines:" >&2
      tail -n 20 "$RUN/$1.log" >&2
      exit 1
    fi
    sleep 1
  done
}

[[ "${1:-}" == "stop" ]] && { stop; exit 0; }

echo "== building models (dvc repro)"
# Passes dvc's output through with each stage's time and the total, writes them to
# $RUN/demo_timings.json, and exits with dvc's status (so set -e stops here when it fails).
python scripts/stage_timings.py --out "$RUN/demo_timings.json" -- dvc repro
echo "== starting services"
IMAGE_CLASSIFIER_MONITOR_DIR="$RUN/monitor/image_classifier" \
  start image-classifier 8001 image-classifier serve --host 127.0.0.1 --port 8001
# The LLM chat page's Agent tab calls search from the browser (origin :8003): CORS must allow
# it, under either name the page may be opened by. A JSON list; a value already set wins.
SEMANTIC_SEARCH_CORS_ORIGINS=${SEMANTIC_SEARCH_CORS_ORIGINS:-'["http://127.0.0.1:8003","http://localhost:8003"]'} \
SEMANTIC_SEARCH_MONITOR_DIR="$RUN/monitor/semantic_search" \
  start semantic-search 8002 semantic-search serve --host 127.0.0.1 --port 8002
LLM_CHAT_MONITOR_DIR="$RUN/monitor/llm_chat" \
  start llm-chat 8003 llm-chat serve --host 127.0.0.1 --port 8003
RAG_CHATBOT_MONITOR_DIR="$RUN/monitor/rag_chatbot" \
  start rag-chatbot 8004 rag-chatbot serve --host 127.0.0.1 --port 8004
start mlflow 5000 mlflow server --backend-store-uri sqlite:///mlflow.db \
  --default-artifact-root ./mlruns --host 127.0.0.1 --port 5000 --workers 1
wait_ready image-classifier http://127.0.0.1:8001/readyz 120
wait_ready semantic-search http://127.0.0.1:8002/readyz 120
wait_ready llm-chat http://127.0.0.1:8003/readyz 120
wait_ready rag-chatbot http://127.0.0.1:8004/readyz 120
wait_ready mlflow http://127.0.0.1:5000/health 180
cat <<TXT

Ready:
  Image classifier demo  http://127.0.0.1:8001/
  Image classifier API   http://127.0.0.1:8001/docs   (POST /v1/classify, /v1/classify/imagenet)
  Semantic search demo   http://127.0.0.1:8002/
  Semantic search API    http://127.0.0.1:8002/docs   (POST /v1/search, /v1/embeddings, /v1/documents)
  LLM chat demo          http://127.0.0.1:8003/
  LLM chat API           http://127.0.0.1:8003/docs   (OpenAI: POST /v1/chat/completions, /v1/completions)
  RAG chatbot demo       http://127.0.0.1:8004/       (answers with citations; upload documents)
  RAG chatbot API        http://127.0.0.1:8004/docs   (POST /v1/chat, /v1/retrieve, /v1/documents)
  Metrics                http://127.0.0.1:800{1,2,3,4}/metrics
  MLflow                 http://127.0.0.1:5000/
Logs in $RUN/*.log; stop with: make stop
TXT
