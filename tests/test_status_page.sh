#!/usr/bin/env bash
# test_status_page: pond-gateway's status page (GET /) in a real browser.
# A mesh is started with `pond up` in a fresh directory, events are
# published, and Debian's chromium loads the page headless: after its
# script ran (--virtual-time-budget) the rendered DOM must show every
# process at the head, the latest events and the customer's mobile
# document; a screenshot is saved as BUILD/docs/status-page.png (the
# README's docs/status-page.png is one). Then the broker is stopped
# (SIGSTOP) and the page must say it is down.
#
# Usage: test_status_page.sh BUILD_DIR SOURCE_DIR. Exits 77 (skipped) when
# chromium is not installed.
set -euo pipefail
build=$1
bin=$build/bin

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "SKIP: chromium is not installed (apt-get install chromium; ./run installs it)"
    exit 77
fi

tmp=$(mktemp -d /tmp/pond-status-page.XXXXXX)
data=$tmp/data
broker_pid=
cleanup () {
    [ -n "$broker_pid" ] && kill -CONT "$broker_pid" 2>/dev/null || true
    local pids=""
    [ -f "$data/supervisor.zpl" ] && pids=$(grep -E '^ *pid = ' "$data/supervisor.zpl" | tr -dc '0-9\n' || true)
    "$bin/pond" down --data "$data" >/dev/null 2>&1 || true
    [ -f "$tmp/kdata/supervisor.zpl" ] && pids="$pids $(grep -E '^ *pid = ' "$tmp/kdata/supervisor.zpl" | tr -dc '0-9\n' || true)"
    "$bin/pond" down --data "$tmp/kdata" >/dev/null 2>&1 || true
    for pid in $pids; do
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$tmp"; then
            echo "test_status_page: pid $pid still runs after pond down: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [ -n "${POND_KEEP_TEST_DIR:-}" ]; then echo "test data kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

fail () { echo "FAIL: $*" >&2; exit 1; }

"$bin/pond" up --data "$data" >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fail "pond up"; }
url=$(sed -n 's/^ *url = "\(.*\)"/\1/p' "$data/gateway.zpl")
[ -n "$url" ] || fail "no gateway URL in $data/gateway.zpl"

for i in $(seq 1 12); do
    "$bin/pond" publish --data "$data" --name QUACKED --entity anna \
        --payload "{\"duration_ms\":$((100 + i)),\"loudness\":0.$i}" >/dev/null
done
"$bin/pond" publish --data "$data" --name LABEL_ADDED --entity anna \
    --payload '{"container":"c1","label":"milk"}' >/dev/null
"$bin/pond" publish --data "$data" --name LABEL_ADDED --entity anna \
    --payload '{"container":"c2","label":"eggs"}' >/dev/null
"$bin/pond" publish --data "$data" --name QUACKED --entity ben >/dev/null

# Every actor at the head before the browser looks (badges add events)
python3 - "$url" <<'EOF' || fail "the actors did not reach the head"
import json, sys, time, urllib.request
deadline = time.time() + 20
while time.time() < deadline:
    status = json.load(urllib.request.urlopen(sys.argv[1] + "/v1/status?latest=0"))
    actors = [p for p in status["processes"] if p.get("kind") == "actor"]
    if status["head"] and actors and all(p.get("lag") == 0 and p.get("live") for p in actors):
        sys.exit(0)
    time.sleep(0.2)
sys.exit(1)
EOF

# One headless page load; the DOM after its script ran on stdout
render () {
    timeout 90 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$tmp/chromium" --virtual-time-budget=5000 "$@" 2>>"$tmp/chromium.log"
}

render --dump-dom "$url/?customer=anna" >"$tmp/dom.html" || fail "chromium --dump-dom failed"
python3 - "$tmp/dom.html" <<'EOF' || fail "the rendered page (kept in $tmp/dom.html with POND_KEEP_TEST_DIR=1)"
import html.parser, json, sys

class Page(html.parser.HTMLParser):
    """Text by element id, and table cells by row (data-name / data-seq) and class"""
    def __init__(self):
        super().__init__()
        self.ids, self.rows, self.stack, self.row, self.cell = {}, {}, [], None, None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.stack.append(a.get("id"))
        if tag == "tr" and ("data-name" in a or "data-seq" in a):
            self.row = self.rows.setdefault(a.get("data-name") or "seq " + a["data-seq"], {})
        if tag == "td" and self.row is not None:
            self.cell = (a.get("class") or "").split()
            self.row.setdefault("_cells", []).append("")
    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()
        if tag == "tr":
            self.row = None
    def handle_data(self, text):
        for i in self.stack:
            if i:
                self.ids[i] = self.ids.get(i, "") + text
        if self.row is not None and self.cell is not None:
            self.row["_cells"][-1] += text
            for c in self.cell:
                self.row[c] = self.row.get(c, "") + text

page = Page()
page.feed(open(sys.argv[1]).read())
def check(ok, what):
    if not ok:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
head = page.ids.get("head", "").strip()
check(head.isdigit() and int(head) >= 15, "the head is shown: %r" % head)
check(page.ids.get("broker-state", "").strip() == "up", "broker up: %r" % page.ids.get("broker-state"))
for name in ("store", "broker", "quack-counter", "badge-granter", "alexa-view", "mobile-view", "gateway"):
    check(name in page.rows, "a row for %s: %s" % (name, sorted(page.rows)))
    check(page.rows[name].get("restarts", "").strip() == "0", "%s restarts 0" % name)
for name in ("store", "quack-counter", "badge-granter", "alexa-view", "mobile-view"):
    row = page.rows[name]
    check(row.get("position", "").strip() == head and row.get("head", "").strip() == head,
          "%s at the head %s: %r" % (name, head, row))
for name in ("quack-counter", "badge-granter", "alexa-view", "mobile-view"):
    check(page.rows[name].get("lag", "").strip() == "0", "%s lag 0" % name)
    check(page.rows[name].get("state", "").strip() == "live", "%s live" % name)
newest = page.rows.get("seq " + head)
check(newest is not None, "the newest event (seq %s) among the latest: %s" % (head, sorted(page.rows)))
latest = [k for k in page.rows if k.startswith("seq ")]
check(len(latest) == 10, "10 latest events: %s" % latest)
doc = json.loads(page.ids.get("document", "{}"))
check(doc.get("customer") == "anna" and doc.get("quacks") == 12, "anna's mobile document: %r" % doc)
check(sorted(i["label"] for i in doc.get("inventory", [])) == ["eggs", "milk"], "inventory: %r" % doc)
summary = page.ids.get("summary", "")
check("12 quacks" in summary and "Junior" in summary and "milk" in summary, "summary: %r" % summary)
EOF

# The screenshot the README shows
mkdir -p "$build/docs"
render --window-size=1200,900 --screenshot="$build/docs/status-page.png" "$url/?customer=anna" \
    >/dev/null || fail "chromium --screenshot failed"
[ -s "$build/docs/status-page.png" ] || fail "no screenshot"
echo "screenshot: $build/docs/status-page.png"

# The broker stopped: the page says so
broker_pid=$(awk '/^    broker$/ { found = 1 } found && /pid = / { gsub(/[^0-9]/, ""); print; exit }' \
    "$data/supervisor.zpl")
[ -n "$broker_pid" ] || fail "no broker pid in supervisor.zpl"
kill -STOP "$broker_pid"
render --dump-dom "$url/?customer=anna" >"$tmp/dom-down.html" || fail "chromium --dump-dom failed"
kill -CONT "$broker_pid"
broker_pid=
grep -q 'id="broker-state" class="bad">down: ' "$tmp/dom-down.html" \
    || fail "the page says the broker is down: $(grep -o 'id="broker-state"[^<]*' "$tmp/dom-down.html")"
grep -q 'id="latest-error" class="warn">latest events: ' "$tmp/dom-down.html" \
    || fail "the page says the latest events are not there"

# Unknown paths are still JSON 404s
python3 - "$url" <<'EOF' || fail "unknown path"
import json, sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/no/such/page")
    sys.exit(1)
except urllib.error.HTTPError as e:
    body = json.load(e)
    sys.exit(0 if e.code == 404 and body["code"] == 404 else 1)
EOF
# Keys mode: without a token the page asks for one; with an admin token
# (in the link's fragment, never sent to the server) it shows the mesh
kdata=$tmp/kdata keys=$tmp/keys
for role in broker store; do "$bin/pond" keys new --keys "$keys" --role $role >/dev/null; done
for name in admin gateway; do
    "$bin/pond" keys new --keys "$keys" --role admin --name $name >/dev/null; done
for actor in quack-counter badge-granter alexa-view mobile-view; do
    "$bin/pond" keys new --keys "$keys" --role actor --name $actor >/dev/null; done
"$bin/pond" up --data "$kdata" --keys "$keys" >"$tmp/kup.log" 2>&1 \
    || { cat "$tmp/kup.log"; fail "pond up --keys"; }
kurl=$(sed -n 's/^ *url = "\(.*\)"/\1/p' "$kdata/gateway.zpl")
"$bin/pond" publish --data "$kdata" --keys "$keys" --as admin --name QUACKED --entity anna \
    --wait mobile >/dev/null || fail "pond publish --keys"
token=$("$bin/pond" keys token admin --keys "$keys" 2>/dev/null) || fail "pond keys token admin"
render --dump-dom "$kurl/?customer=anna" >"$tmp/dom-keys.html" || fail "chromium --dump-dom failed"
grep -q 'id="broker-state" class="bad">this gateway runs with keys: type a token' \
    "$tmp/dom-keys.html" || fail "keys mode without a token: $(grep -o 'id="broker-state"[^<]*' "$tmp/dom-keys.html")"
grep -q '<label id="token-box">' "$tmp/dom-keys.html" || fail "keys mode: the token box is shown"
render --dump-dom "$kurl/?customer=anna#token=$token" >"$tmp/dom-token.html" \
    || fail "chromium --dump-dom failed"
grep -q 'id="broker-state"[^>]*>up<' "$tmp/dom-token.html" \
    || fail "keys mode with a token: $(grep -o 'id="broker-state"[^<]*' "$tmp/dom-token.html")"
grep -q 'data-name="mobile-view"' "$tmp/dom-token.html" || fail "keys mode with a token: process rows"
grep -q '"customer": "anna"' "$tmp/dom-token.html" || fail "keys mode with a token: anna's document"
"$bin/pond" down --data "$kdata" >/dev/null 2>&1 || fail "pond down --keys"
echo "test_status_page: ok"
