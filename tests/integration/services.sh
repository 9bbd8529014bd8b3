# services.sh — the service set on free loopback ports, for integration tests
# and `make run` (source it after lib.sh; needs REDIS_URL and a published
# handbook).
#
#   start_services N [FILES]   skill-inference, router, learner, gateway and N
#                              replay workers answering from FILES (comma-
#                              separated datasets); waits until the N workers
#                              are registered.  Sets GATEWAY (client endpoint).
#   start_worker NAME [FILES]  one more worker (same settings)
#   gateway_registered N       true once the gateway log shows N registrations
#
# Extra settings go through the environment (SO_<SERVICE>_<KEY>, see
# config/*.conf), e.g. SO_AGENT_WORKER_DELAY_MS=200 before start_worker.

services_ports() {
    P_CLIENT=$(free_port); P_WORKERS=$(free_port); P_INFER=$(free_port); P_ROUTER=$(free_port)
    export SO_REDIS_URL="$REDIS_URL" SO_LOG_LEVEL=${SO_LOG_LEVEL:-info}
    export SO_STATS_MS=${SO_STATS_MS:-5000}
    export SO_GATEWAY_CLIENT_ENDPOINT="tcp://127.0.0.1:$P_CLIENT"
    export SO_GATEWAY_WORKERS_ENDPOINT="tcp://127.0.0.1:$P_WORKERS"
    export SO_GATEWAY_INFER_ENDPOINT="tcp://127.0.0.1:$P_INFER"
    export SO_GATEWAY_ROUTER_ENDPOINT="tcp://127.0.0.1:$P_ROUTER"
    export SO_SKILL_INFERENCE_ENDPOINT="tcp://127.0.0.1:$P_INFER"
    export SO_ROUTER_ENDPOINT="tcp://127.0.0.1:$P_ROUTER"
    export SO_AGENT_WORKER_GATEWAY_ENDPOINT="tcp://127.0.0.1:$P_WORKERS"
    GATEWAY="tcp://127.0.0.1:$P_CLIENT"
    INFER="tcp://127.0.0.1:$P_INFER"
    ROUTER="tcp://127.0.0.1:$P_ROUTER"
}

gateway_registered() {
    [ "$(grep -c worker_ready "$T_DIR/gateway.log" 2>/dev/null)" -ge "$1" ]
}

start_worker() {
    SO_AGENT_WORKER_WORKER_ID="$1" SO_AGENT_WORKER_REPLAY_FILES="${2:-$SO_REPLAY_FILES}" \
        start_bg "$1" "$SO_BIN/so-agent-worker"
}

start_services() {
    _ss_n=$1
    SO_REPLAY_FILES=${2:-${SO_REPLAY_FILES:-}}
    services_ports
    start_bg skill-inference "$SO_BIN/so-skill-inference"
    start_bg router "$SO_BIN/so-router"
    start_bg learner "$SO_BIN/so-learner"
    start_bg gateway "$SO_BIN/so-gateway"
    _ss_i=1
    while [ "$_ss_i" -le "$_ss_n" ]; do
        start_worker "worker-$_ss_i"
        _ss_i=$((_ss_i + 1))
    done
    wait_for "$_ss_n workers registered with the gateway" 60 gateway_registered "$_ss_n"
    for _ss_s in skill-inference router learner gateway; do
        alive "$_ss_s" || fail "$_ss_s exited at start-up"
    done
}
