#!/bin/sh
# Makes the Temporal namespace of the refunds match the settings (the compose `temporal-namespace`
# step, once the server answers): creates it with its retention, or sets the retention of an
# existing one, then registers the search attributes ops filter on in the Web UI.
# Re-running it changes nothing; changing TEMPORAL_RETENTION and running it again applies it.
#
#   TEMPORAL_ADDRESS   the frontend, e.g. temporal:7233
#   NAMESPACE          the namespace the API, the workers and the schedules use
#   RETENTION          how long closed workflows stay visible, e.g. 30d
#   SEARCH_ATTRIBUTES  space-separated Name=Type pairs, e.g. "RefundNo=Keyword RefundAmount=Int"
set -eu

: "${TEMPORAL_ADDRESS:?set TEMPORAL_ADDRESS}"
: "${NAMESPACE:?set NAMESPACE}"
: "${RETENTION:?set RETENTION}"
: "${SEARCH_ATTRIBUTES:?set SEARCH_ATTRIBUTES}"
ATTEMPTS=${TEMPORAL_SETUP_ATTEMPTS:-60}
SLEEP_SECONDS=${TEMPORAL_SETUP_SLEEP_SECONDS:-2}

# A server that has just started answers health before its namespace registry has caught up,
# so every step is retried rather than the first failure ending the setup.
retry() {
    attempt=1
    until "$@"; do
        if [ "$attempt" -ge "$ATTEMPTS" ]; then
            echo "temporal-namespace: gave up after $attempt attempts: $*" >&2
            return 1
        fi
        attempt=$((attempt + 1))
        sleep "$SLEEP_SECONDS"
    done
}

tctl() {
    temporal operator "$@" --address "$TEMPORAL_ADDRESS"
}

namespace() {
    if tctl namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
        tctl namespace update --namespace "$NAMESPACE" --retention "$RETENTION"
    else
        tctl namespace create --namespace "$NAMESPACE" --retention "$RETENTION"
    fi
}

retry tctl cluster health
retry namespace
for pair in $SEARCH_ATTRIBUTES; do
    retry tctl search-attribute create --namespace "$NAMESPACE" \
        --name "${pair%%=*}" --type "${pair#*=}"
done
echo "temporal-namespace: $NAMESPACE ready (retention $RETENTION; search attributes $SEARCH_ATTRIBUTES)"
