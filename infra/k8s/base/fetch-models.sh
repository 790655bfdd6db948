#!/bin/sh
# Model delivery, run by each Deployment's `fetch-models` init container (the MLflow image): every
# "URI=DIR" pair of $MODEL_SOURCES is downloaded with MLflow's own client into /srv/models/DIR,
# the pod's models volume, before the service starts. URI is any MLflow artifact URI: a registered
# model by alias (models:/NAME@champion: promoting a version and `kubectl rollout restart` ships
# it), a run's artifacts (runs:/ID/PATH) or the artifact store itself (s3://, gs://, ...).
# A failed download fails the init container, so the pod never starts on a missing model.
set -eu
: "${MODEL_SOURCES:?MODEL_SOURCES is empty: set it in the model-sources ConfigMap}"
for entry in $MODEL_SOURCES; do
  uri=${entry%=*}
  dir=${MODELS_DIR:-/srv/models}/${entry##*=}
  echo "fetch-models: $uri -> $dir"
  mkdir -p "$dir"
  mlflow artifacts download --artifact-uri "$uri" --dst-path "$dir" >/dev/null
done
