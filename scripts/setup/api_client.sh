#!/usr/bin/env bash
# A client nobody here wrote, for the workflow API tests (tests/workflow_api.rs): Python
# with `requests`, `openapi-spec-validator` (checks the OpenAPI document against the 3.1
# specification) and `jsonschema` (checks requests and answers against the document's
# schemas), in $DAGGR_TEST_ENV/api-client-venv. Reused when the pinned versions are there.
set -euo pipefail
: "${DAGGR_TEST_ENV:=$HOME/.cache/daggr-test-env}"
mkdir -p "$DAGGR_TEST_ENV"
venv="$DAGGR_TEST_ENV/api-client-venv"
PINS=("openapi-spec-validator==0.9.0" "requests==2.34.2" "jsonschema==4.26.0")

ready() {
    [ -x "$venv/bin/python" ] && "$venv/bin/python" - "${PINS[@]}" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    if m.version(name) != version:
        sys.exit(1)
PY
}
ready && exit 0

exec 9>"$DAGGR_TEST_ENV/api-client.lock"
flock 9
ready && exit 0
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}"
ready
echo "api_client.sh: ready in $venv"
