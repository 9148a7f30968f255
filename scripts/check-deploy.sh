#!/usr/bin/env bash
# Checks what can be checked of the deployment without a Docker engine or a cluster:
#   - docker-compose.yml against Compose's schema (Debian's docker-compose, `config -q`);
#   - the Dockerfile with hadolint (settings in .hadolint.yaml);
#   - deploy/k8s's built-in kinds against the Kubernetes 1.37 schemas, strictly (unknown fields
#     fail). The KEDA ScaledObject has no schema there; tests/it/deploy.rs checks its fields
#     against the settings and the compose topics.
# The tools are hash-pinned (requirements-deploy-tools.txt) in a virtualenv outside the clone.
# Called by test.sh after scripts/setup.sh --test, which installs docker-compose.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE="${FIRESIGHT_CACHE:-$HOME/.cache/firesight}"
VENV="$CACHE/venv-deploy-tools"
REQUIREMENTS=scripts/requirements-deploy-tools.txt
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "check-deploy: installing hadolint and kubernetes-validate into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$REQUIREMENTS"
  echo "$want" > "$STAMP"
fi
docker-compose --project-directory . -f docker-compose.yml config -q
"$VENV/bin/hadolint" Dockerfile
"$VENV/bin/kubernetes-validate" --strict --quiet deploy/k8s/deployment.yaml deploy/k8s/service.yaml deploy/k8s/pdb.yaml
echo "check-deploy: docker-compose.yml, Dockerfile and deploy/k8s pass" >&2
