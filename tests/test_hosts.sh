#!/usr/bin/env bash
# test_hosts: the mesh on three hosts, as network namespaces.
#   test_hosts.sh BUILD_DIR SOURCE_DIR
# Host A (namespace ...a) runs pond-store and pond-broker, host B the four
# actors, host C two devices and pond-gateway; a fourth namespace holds the
# bridge they hang on (10.X.Y.0/24, unique per run, as are the namespace
# names: the pid is in both). Everything goes over tcp with CURVE; keys are
# made on host A and copied as the README says: every public key to every
# host, each secret key only to where it runs.
# Under load (two devices publishing a few thousand QUACKED events, and
# events POSTed to the gateway) host C's link and then host B's go down for
# a few seconds each (ip link set eth0 down, then up). Afterwards: the
# devices' outboxes are empty, every event is stored exactly once (store
# count == events made, ids unique), each actor's position is the head of
# the log, the quack counts add up, and pond verify passes for every view.
# Failure paths: a device that holds a wrong broker public key gets no
# answer, keeps its events in its outbox and stores nothing (then syncs them
# once given the right key); an actor whose key the broker does not know
# never catches up, and says why in its log.
# Without the rights to make namespaces (root or CAP_NET_ADMIN), it exits 77
# (CTest: skipped) and says so.
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
. "$src/tests/pond_check.sh"
bin=$build/bin
py=/usr/bin/python3    #  Debian's (python3 in ./run), whatever else is on PATH
export PATH=$bin:$PATH
started=$(date +%s.%N)

elapsed () {
    awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

#  Names and addresses unique to this run
run=pond$$
ns_switch=${run}sw
net=10.$((20 + $$ % 200)).$((($$ / 200) % 250))
ip_a=$net.1 ip_b=$net.2 ip_c=$net.3
pond_check_start test_hosts
namespaces=()
hosts_pids=()

#  Stop our processes (by pid) first, then remove the namespaces: their
#  veth pairs and the bridge go with them
hosts_cleanup () {
    local pid ns
    for pid in "${hosts_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${hosts_pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
pond_check_cleanups+=(hosts_cleanup)

#  Can we make namespaces at all?
if ! ip netns add "$ns_switch" 2>/dev/null; then
    echo "test_hosts: SKIPPED: cannot create network namespaces (ip netns add needs root" \
        "or CAP_NET_ADMIN, and iproute2)"
    exit 77
fi
namespaces+=("$ns_switch")

#  on HOST COMMAND...: run in host's namespace (a, b or c)
on () {
    local host=$1
    shift
    ip netns exec "$run$host" "$@"
}

#  start HOST NAME COMMAND...: in the background, output in $tmp/logs/NAME.log
start () {
    local host=$1 name=$2
    shift 2
    ip netns exec "$run$host" "$@" >"$tmp/logs/$name.log" 2>&1 &
    hosts_pids+=($!)
    eval "pid_${name//-/_}=$!"
}

#  wait_file FILE SECONDS
wait_file () {
    local file=$1 limit=$(($2 * 10))
    for _ in $(seq "$limit"); do
        [ -s "$file" ] && return 0
        sleep 0.1
    done
    return 1
}

#  The network: a bridge in its own namespace, one veth pair per host
if ! ip -n "$ns_switch" link add br0 type bridge 2>/dev/null; then
    echo "test_hosts: SKIPPED: cannot create a bridge (no bridge support in this kernel?)"
    exit 77
fi
ip -n "$ns_switch" link set br0 up
for host in a b c; do
    ip netns add "$run$host"
    namespaces+=("$run$host")
    ip -n "$ns_switch" link add "v$host" type veth peer name eth0 netns "$run$host"
    ip -n "$ns_switch" link set "v$host" master br0 up
    eval "address=\$ip_$host"
    ip -n "$run$host" addr add "$address/24" dev eth0
    ip -n "$run$host" link set eth0 up
    ip -n "$run$host" link set lo up
done
ok "hosts A $ip_a, B $ip_b, C $ip_c on a bridge (namespaces $run{sw,a,b,c})"

#  Keys: all made on host A, public keys copied everywhere, each secret
#  only where it runs
mkdir -p "$tmp/logs"
made=$tmp/made-keys
customers=()
for i in $(seq 0 9); do customers+=(--customer "cust-$i"); done
pond keys new --keys "$made" --role broker >/dev/null
pond keys new --keys "$made" --role store >/dev/null
pond keys new --keys "$made" --role admin --name admin >/dev/null
pond keys new --keys "$made" --role admin --name gateway >/dev/null
actors=(quack-counter badge-granter alexa-view mobile-view)
for actor in "${actors[@]}"; do pond keys new --keys "$made" --role actor --name "$actor" >/dev/null; done
for device in silo-1 silo-2 silo-3; do
    pond keys new --keys "$made" --role device --name "$device" "${customers[@]}" >/dev/null
done
declare -A secrets=([a]="broker store admin" [b]="${actors[*]} admin" [c]="silo-1 silo-2 silo-3 gateway")
for host in a b c; do
    mkdir -p "$tmp/$host/keys/public" "$tmp/$host/keys/secret" "$tmp/$host/data"
    cp "$made"/public/*.cert "$tmp/$host/keys/public/"
    for name in ${secrets[$host]}; do
        cp "$made/secret/$name.cert_secret" "$tmp/$host/keys/secret/"
    done
    chmod 700 "$tmp/$host/keys/secret"
done
ok "keys made on A; public keys on every host, secrets only where they run"

#  Host A: store (its link on loopback) and broker (on its address)
da=$tmp/a/data ka=$tmp/a/keys
db=$tmp/b/data kb=$tmp/b/keys
dc=$tmp/c/data kc=$tmp/c/keys
ingest=tcp://$ip_a:7001 pub=tcp://$ip_a:7002 control=tcp://$ip_a:7003
start a store pond-store --data "$da" --keys "$ka" --endpoint tcp://127.0.0.1:7000
wait_file "$da/store.zpl" 20 || { cat "$tmp/logs/store.log"; fail "pond-store starts on A"; }
start a broker pond-broker --data "$da" --keys "$ka" --store tcp://127.0.0.1:7000 \
    --ingest "tcp://$ip_a:7001" --pub "tcp://$ip_a:7002" --control "tcp://$ip_a:7003"
wait_file "$da/broker.zpl" 20 || { cat "$tmp/logs/broker.log"; fail "pond-broker starts on A"; }
ok "host A: pond-store, pond-broker on $ip_a:7001-7003 with CURVE"

#  Host B: the actors, each told where the broker is
port=7010
for actor in "${actors[@]}"; do
    start b "$actor" "pond-$actor" --data "$db" --keys "$kb" --ingest "$ingest" --pub "$pub" \
        --control "$control" --query "tcp://$ip_b:$port"
    eval "port_${actor//-/_}=$port"
    port=$((port + 1))
done
for actor in "${actors[@]}"; do
    wait_file "$db/$actor.zpl" 30 || { cat "$tmp/logs/$actor.log"; fail "pond-$actor starts on B"; }
done
ok "host B: the four actors, query sockets on $ip_b:7010-7013"

#  Host C: the gateway, told where the broker and the actors are
start c gateway pond-gateway --data "$dc" --keys "$kc" --as gateway --listen "$ip_c:8080" \
    --ingest "$ingest" --pub "$pub" --control "$control" \
    --actor "quacks=tcp://$ip_b:$port_quack_counter" \
    --actor "badges=tcp://$ip_b:$port_badge_granter" --actor "alexa=tcp://$ip_b:$port_alexa_view" \
    --actor "mobile=tcp://$ip_b:$port_mobile_view"
wait_file "$dc/gateway.zpl" 20 || { cat "$tmp/logs/gateway.log"; fail "pond-gateway starts on C"; }
gw=http://$ip_c:8080
#  With keys its clients send a bearer token: here the gateway's own key's
#  (an admin key, whose secret is on C)
auth="Authorization: Bearer $(pond keys token gateway --keys "$kc" 2>/dev/null)"
ok "host C: pond-gateway at $gw"

#  The gateway's /metrics (from host C: broker on A, actors on B) into
#  $tmp/metrics; metric NAME: one value of it
metrics () {
    on c curl -s --max-time 10 -H "$auth" "$gw/metrics" >"$tmp/metrics" || true
}
metric () {
    awk -v name="$1" '$1 == name { print $2 }' "$tmp/metrics"
}

#  post_events DIR: POST each array DIR/*.json to the gateway, one every
#  0.2 s or so (over the whole load, cuts included), sending it
#  again (same ids: harmless) until it is answered 200 or 201 (at most 100
#  times in all); the number of arrays sent again goes to DIR/resends
post_events () {
    local dir=$1 resends=0 body status
    for body in "$dir"/*.json; do
        while true; do
            status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST -H 'Expect:' -H "$auth" \
                -H 'Content-Type: application/json' --data "@$body" "$gw/v1/events" || true)
            [ "$status" = 201 ] || [ "$status" = 200 ] && break
            resends=$((resends + 1))
            [ "$resends" -lt 100 ] || { echo "$body: answered $status"; return 1; }
            sleep 0.2
        done
        sleep 0.2    #  spread over the load, and the cuts
    done
    echo "$resends" >"$dir/resends"
}

#  Load: two devices on C publish QUACKED for cust-0..9 from their durable
#  outboxes; events go to the gateway too
per_device=3000 rate=300 gateway_events=400
t_load=$(elapsed)
for device in silo-1 silo-2; do
    start c "$device" pond-device --data "$dc" --keys "$kc" --device "$device" --ingest "$ingest" \
        --load --rate "$rate" --count "$per_device" --customers 10 --sync-timeout 45
done
mkdir "$tmp/post"
$py - "$tmp/post" "$gateway_events" 10 <<'PY'
import json, sys, time, uuid
where, count, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for n in range(count // batch):
    events = [{"id": str(uuid.uuid4()), "name": "BUTTON_CLICKED", "entity": "cust-%d" % (i % 10),
               "ts": int(time.time() * 1e6), "data": {"button": 1}} for i in range(batch)]
    with open("%s/%04d.json" % (where, n), "w") as out:
        json.dump(events, out)
PY
export gw auth
export -f post_events
start c poster bash -c "post_events $tmp/post"

#  Cut host C's link (devices and gateway), then host B's (actors)
sleep 2
on c ip link set eth0 down
t_cut_c=$(elapsed)
sleep 3
on c ip link set eth0 up
sleep 1.5
on b ip link set eth0 down
t_cut_b=$(elapsed)
sleep 3
on b ip link set eth0 up
ok "cut C's link at ${t_cut_c}s, B's at ${t_cut_b}s, 3 s each, under load"

#  The devices empty their outboxes, the poster gets every answer
for device in silo-1 silo-2; do
    eval "pid=\$pid_${device//-/_}"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 0 ] || { cat "$tmp/logs/$device.log"; fail "$device synced its outbox (exit $status)"; }
done
t_synced=$(elapsed)
status=0
wait "$pid_poster" || status=$?
[ "$status" -eq 0 ] || { cat "$tmp/logs/poster.log"; fail "every POST to the gateway answered (exit $status)"; }
t_posted=$(elapsed)
created=0 resends=0
for device in silo-1 silo-2; do
    summary=$(grep '^{' "$tmp/logs/$device.log" | tail -1)
    for field in created queued rejected resends; do
        eval "$field=$(echo "$summary" | sed -n "s/.*\"$field\":\([0-9]*\).*/\1/p")"
    done
    [ "$queued" -eq 0 ] && [ "$rejected" -eq 0 ] && [ "$created" -eq "$per_device" ] \
        || fail "$device: created $created of $per_device, queued $queued, rejected $rejected"
    eval "resends_${device//-/_}=$resends"
done
ok "both outboxes empty at ${t_synced}s (resends: silo-1 $resends_silo_1, silo-2 $resends_silo_2);" \
    "gateway: $gateway_events events, $(cat "$tmp/post/resends") arrays sent again"

#  The actors catch up: each one's position is the head, and live
expected=$((2 * per_device + gateway_events))
caught=""
for _ in $(seq 300); do
    metrics
    head=$(metric pond_store_head)
    caught=yes
    for actor in "${actors[@]}"; do
        [ "$(metric "pond_actor_position{actor=\"$actor\"}")" = "$head" ] \
            && [ "$(metric "pond_actor_live{actor=\"$actor\"}")" = 1 ] || caught=""
    done
    [ -n "$caught" ] && [ "$head" -ge "$expected" ] && break
    sleep 0.1
done
t_caught=$(elapsed)
[ -n "$caught" ] || { grep actor "$tmp/metrics"; fail "every actor at the head ($head)"; }
ok "every actor at the head (seq $head) and live at ${t_caught}s"

#  Every event once
stats=$(on a pond stats --data "$da" --keys "$ka")
read -r events dups quacked clicked < <(echo "$stats" | $py -c '
import json, sys
s = json.load(sys.stdin)
st, names = s["store"], s["store"].get("names", {})
print(st["events"], s["broker"]["dups"], names.get("QUACKED", 0), names.get("BUTTON_CLICKED", 0))')
[ "$quacked" -eq $((2 * per_device)) ] && [ "$clicked" -eq "$gateway_events" ] \
    || fail "store: $quacked QUACKED (want $((2 * per_device))), $clicked BUTTON_CLICKED (want $gateway_events)"
on a pond replay --data "$da" --keys "$ka" --from-seq 1 >"$tmp/log.jsonl" 2>/dev/null
lines=$(wc -l <"$tmp/log.jsonl")
unique=$(grep -o '"id":"[^"]*"' "$tmp/log.jsonl" | sort -u | wc -l)
[ "$lines" -eq "$events" ] && [ "$unique" -eq "$events" ] && [ "$events" -eq "$head" ] \
    || fail "log: $lines events replayed, $unique ids, store events $events, head $head"
ok "every event once: $quacked QUACKED + $clicked BUTTON_CLICKED, $unique distinct ids," \
    "$dups resends answered as dups"

#  The views agree with the log: quack counts add up, pond verify on B
total=0
for i in $(seq 0 9); do
    count=$(on c curl -s --max-time 10 -H "$auth" "$gw/v1/views/quacks/cust-$i?after=$head" \
        | $py -c 'import json,sys; print(json.load(sys.stdin)["quacks"])')
    total=$((total + count))
done
[ "$total" -eq $((2 * per_device)) ] || fail "quacks add up to $total, not $((2 * per_device))"
ok "the quack counts of cust-0..9 (through the gateway) add up to $total"
on b pond verify --data "$db" --keys "$kb" --control "$control" >"$tmp/verify.log" 2>&1 \
    || { cat "$tmp/verify.log"; fail "pond verify on host B"; }
grep -q "4 of 4 views match" "$tmp/verify.log" || { cat "$tmp/verify.log"; fail "pond verify: 4 of 4"; }
ok "pond verify on host B: 4 of 4 views match their rebuild from the log"
#  Failure path: a device on C that holds a wrong broker public key (its
#  own key is known to the broker) gets no answer: its events stay in its
#  outbox and nothing is stored; given the right key, it sends them
store_events () {
    on a pond stats --data "$da" --keys "$ka" --compact | sed -n 's/.*"events":\([0-9]*\).*/\1/p'
}
before=$(store_events)
wrong=$tmp/c/wrong-keys
pond keys new --keys "$tmp/impostor" --role broker >/dev/null
mkdir -p "$wrong/public" "$wrong/secret"
cp "$kc"/public/*.cert "$wrong/public/"
cp "$tmp/impostor/public/broker.cert" "$wrong/public/broker.cert"
cp "$kc/secret/silo-3.cert_secret" "$wrong/secret/"
status=0
on c pond-device --data "$dc" --keys "$wrong" --device silo-3 --customer cust-3 --quack 5 \
    --ingest "$ingest" --sync-timeout 4 >"$tmp/logs/silo-3.log" 2>&1 || status=$?
[ "$status" -eq 1 ] && grep -q '"queued":5' "$tmp/logs/silo-3.log" \
    && grep -q "5 events still queued.*is public/broker.cert of --keys the broker.s own key" "$tmp/logs/silo-3.log" \
    || { cat "$tmp/logs/silo-3.log"; fail "a device with a wrong broker key keeps its 5 events (exit $status)"; }
[ "$(store_events)" -eq "$before" ] || fail "nothing stored from a device with a wrong broker key"
ok "a device with a wrong broker public key: no answer, 5 events kept in its outbox, none stored"
on c pond-device --data "$dc" --keys "$kc" --device silo-3 --ingest "$ingest" --sync-timeout 20 \
    >"$tmp/logs/silo-3-again.log" 2>&1 || { cat "$tmp/logs/silo-3-again.log"; fail "silo-3 syncs with the right key"; }
[ "$(store_events)" -eq $((before + 5)) ] || fail "the 5 kept events stored once given the right key"
ok "given the right key, it sends the 5 events it kept"

#  Failure path: an actor on B whose key the broker does not know cannot
#  catch up, and says why in its log
stranger=$tmp/b/stranger-keys
mkdir -p "$stranger/public"
cp "$kb"/public/*.cert "$stranger/public/"
pond keys new --keys "$stranger" --role actor --name stranger >/dev/null
start b stranger pond-quack-counter --data "$tmp/b/stranger-data" --keys "$stranger" --as stranger \
    --ingest "$ingest" --pub "$pub" --control "$control" --query "tcp://$ip_b:7020"
wait_for "$tmp/logs/stranger.log" "refused key 'stranger'" 15000 \
    || { cat "$tmp/logs/stranger.log"; fail "an actor with an unknown key says it is refused"; }
grep -q "caught up [1-9]" "$tmp/logs/stranger.log" && fail "an actor with an unknown key catches up nothing"
ok "an actor with a key unknown to the broker does not catch up: $(grep -o "refused key 'stranger'[^;]*" "$tmp/logs/stranger.log" | head -1)"

#  The pond command across hosts: a query on B, a publish from C as the
#  device's key, the counters on A
on b pond query quacks cust-0 --data "$db" --keys "$kb" | grep -q '"quacks":' \
    || fail "pond query on host B"
on c pond query quacks cust-0 --data "$dc" --keys "$kc" --as gateway \
    --query "tcp://$ip_b:$port_quack_counter" | grep -q '"quacks":' \
    || fail "pond query from host C, told the actor's endpoint on B"
head=$(store_events)
#  A live stream (SSE) from the gateway on C, fed by the broker's pub on A
start c sse curl -sN --max-time 30 -H "$auth" "$gw/v1/stream?names=QUACKED&entity=cust-0"
wait_for "$tmp/logs/sse.log" ": live after seq" 10000 \
    || { cat "$tmp/logs/sse.log"; fail "GET /v1/stream on C is live"; }
seq=$(on c pond publish --keys "$kc" --as silo-1 --ingest "$ingest" --name QUACKED --entity cust-0 \
    --seq-only) || fail "pond publish from host C as silo-1"
[ "$seq" -eq $((head + 1)) ] && [ "$(store_events)" -eq $((head + 1)) ] \
    || fail "pond publish from C stored seq $seq once (head was $head)"
wait_for "$tmp/logs/sse.log" "id: $seq" 10000 \
    || { cat "$tmp/logs/sse.log"; fail "the SSE stream on C got seq $seq"; }
ok "pond query on B and from C, pond publish from C (seq $seq), seen live by SSE on C, pond stats on A"

#  What the cuts did, from the logs
for device in silo-1 silo-2; do
    grep -h "no reply from the broker\|reachable again" "$tmp/logs/$device.log" | cut -c1-200 || true
done
for actor in "${actors[@]}"; do
    grep -h "heartbeat\|caught up [1-9]\|dropped" "$tmp/logs/$actor.log" | cut -c1-200 || true
done
echo "timings: load started ${t_load}s, outboxes empty ${t_synced}s, gateway done ${t_posted}s," \
    "actors at the head ${t_caught}s"
[ -n "${POND_HOSTS_LOGS:-}" ] && cp -r "$tmp/logs" "$POND_HOSTS_LOGS"
pond_check_done
