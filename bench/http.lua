-- bench/http.lua: the wrk script of bench/http, for pond-gateway.
--
--   wrk -t2 -c50 -d5s -s bench/http.lua http://127.0.0.1:PORT -- post
--   wrk -t2 -c50 -d5s -s bench/http.lua http://127.0.0.1:PORT -- get
--
-- post: POST /v1/events, one QUACKED a request, entities cust-0000 ..
-- cust-0099 in turn, each with an id of its own: a UUIDv7 (its first 48
-- bits the time in ms, so the gateway takes ts from it) made of this
-- run's time, a random salt, the wrk thread and a counter, so that no two
-- requests of a run, or of two runs, share one (a shared id would be a
-- resend: 200 instead of 201, nothing stored).
-- get: GET /v1/views/quacks/cust-NNNN, the same entities in turn.
-- done() prints one line of key=value figures (latency in microseconds).

local mode = "post"
local counter = 0
local prefix = ""
local thread_count = 0

function setup (thread)
    thread_count = thread_count + 1
    thread:set ("thread_index", thread_count)
end

function init (args)
    mode = args [1] or "post"
    local index = thread_index or 1
    math.randomseed (os.time () * 1000 + index)
    local ms = string.format ("%012x", os.time () * 1000 + math.random (0, 999))
    prefix = ms:sub (1, 8) .. "-" .. ms:sub (9, 12) .. "-7" .. string.format ("%03x", math.random (0, 4095))
             .. "-" .. string.format ("%04x", 0x8000 + index % 0x4000)
             .. "-" .. string.format ("%04x", math.random (0, 65535))
end

function request ()
    counter = counter + 1
    local entity = string.format ("cust-%04d", counter % 100)
    if mode == "get" then
        return wrk.format ("GET", "/v1/views/quacks/" .. entity)
    end
    local body = '{"id":"' .. prefix .. string.format ("%08x", counter) ..
                 '","name":"QUACKED","entity":"' .. entity .. '","data":{"loudness_db":61}}'
    return wrk.format ("POST", "/v1/events", { ["Content-Type"] = "application/json" }, body)
end

function done (summary, latency, requests)
    local seconds = summary.duration / 1e6
    local errors = summary.errors
    io.write (string.format ("requests=%d seconds=%.3f requests_per_s=%.0f p50_us=%.0f " ..
                             "p99_us=%.0f p999_us=%.0f max_us=%.0f non_2xx=%d socket_errors=%d\n",
                             summary.requests, seconds, summary.requests / seconds,
                             latency:percentile (50), latency:percentile (99),
                             latency:percentile (99.9), latency.max, errors.status,
                             errors.connect + errors.read + errors.write + errors.timeout))
end
