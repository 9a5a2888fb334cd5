#!/usr/bin/python3
"""A pond client written from proto/PROTOCOL.md alone, with Debian's
python3-zmq and python3-msgpack: publish, ACK with seq, idempotent resend,
NACKs that name the event they refuse, 409 for an id reused for another
event, one result per event, UTF-8 refused where it is not, live delivery
on the pub socket, a PUBLISH batch answered by one RESULTS, replay with credit (every event read by a strict
reader: raw=False), CANCEL, ERROR with rid, stats, COMMAND and
COMMAND_STATUS.

Usage: protocol_client.py BIN_DIR
Starts pond-store and pond-broker (tcp on 127.0.0.1, ports picked by the
kernel) in a fresh temporary directory and stops them by pid at the end.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

TIMEOUT_MS = 5000
results = {"passed": 0, "failed": 0}


def check(condition, what):
    if condition:
        results["passed"] += 1
        print("ok   - " + what)
    else:
        results["failed"] += 1
        print("FAIL - " + what)


def uuid7():
    ms = int(time.time() * 1000)
    raw = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    raw[6] = 0x70 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    return bytes(raw)


def wait_file(path, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


def read_zpl(path):
    """Minimal ZPL reader: 'key = "value"' lines under a section."""
    values = {}
    for line in open(path):
        if "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().strip('"')
    return values


def strict(data):
    """Python msgpack's strict reading: str must be UTF-8, map keys str."""
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


def str_raw(text):
    """A msgpack str holding these bytes as they are (valid UTF-8 or not)."""
    assert len(text) < 32
    return bytes([0xa0 | len(text)]) + text


def recv(sock):
    if not sock.poll(TIMEOUT_MS):
        return None
    return sock.recv_multipart()


def main():
    bin_dir = sys.argv[1]
    data = tempfile.mkdtemp(prefix="pond-py-")
    procs = []
    ctx = zmq.Context()
    try:
        store_log = open(os.path.join(data, "store.log"), "w")
        procs.append(subprocess.Popen(
            [os.path.join(bin_dir, "pond-store"), "--data", data],
            stdout=store_log, stderr=subprocess.STDOUT))
        check(wait_file(os.path.join(data, "store.zpl")), "pond-store started")
        broker_log = open(os.path.join(data, "broker.log"), "w")
        procs.append(subprocess.Popen(
            [os.path.join(bin_dir, "pond-broker"), "--data", data,
             "--ingest", "tcp://127.0.0.1:*", "--pub", "tcp://127.0.0.1:*",
             "--control", "tcp://127.0.0.1:*"],
            stdout=broker_log, stderr=subprocess.STDOUT))
        check(wait_file(os.path.join(data, "broker.zpl")), "pond-broker started")
        endpoints = read_zpl(os.path.join(data, "broker.zpl"))

        # Subscribe first; the heartbeat tells us the subscription is live.
        sub = ctx.socket(zmq.SUB)
        sub.connect(endpoints["pub"])
        sub.setsockopt(zmq.SUBSCRIBE, b"QUACKED")
        sub.setsockopt(zmq.SUBSCRIBE, b"$HEARTBEAT")
        beat = recv(sub)
        check(beat is not None and beat[0] == b"$HEARTBEAT"
              and "head" in msgpack.unpackb(beat[1]), "heartbeat on the pub socket")

        ingest = ctx.socket(zmq.DEALER)
        ingest.connect(endpoints["ingest"])
        event = {
            "id": uuid7(),
            "name": "QUACKED",
            "ts": int(time.time() * 1_000_000),
            "entity": "cust-py",
            "source": "python-device",
            "data": {"duration_ms": 120, "loudness_db": 61.5, "firmware": "2.1"},
        }
        packed = msgpack.packb(event, use_bin_type=True)
        # The store may still be connecting: 503 means "retry after retry_ms".
        for _ in range(50):
            ingest.send_multipart([b"PUBLISH", packed])
            reply = recv(ingest)
            if reply and reply[0] == b"NACK" and msgpack.unpackb(reply[1])["code"] == 503:
                time.sleep(msgpack.unpackb(reply[1])["retry_ms"] / 1000)
                continue
            break
        check(reply is not None and reply[0] == b"ACK", "PUBLISH gets ACK")
        ack = msgpack.unpackb(reply[1])
        check(ack["id"] == event["id"] and ack["seq"] >= 1 and ack["dup"] is False,
              "ACK carries the event id and a seq (seq %s)" % ack.get("seq"))

        ingest.send_multipart([b"PUBLISH", packed])
        again = msgpack.unpackb(recv(ingest)[1])
        check(again["seq"] == ack["seq"] and again["dup"] is True,
              "resending the same id is idempotent: same seq, dup true")

        live = recv(sub)
        while live is not None and live[0] == b"$HEARTBEAT":
            live = recv(sub)
        check(live is not None and live[0] == b"QUACKED", "event delivered live, topic = name")
        live_event = msgpack.unpackb(live[1])
        check(live_event["id"] == event["id"] and live_event["seq"] == ack["seq"]
              and live_event["data"]["duration_ms"] == 120,
              "live event has the same id, data and the store's seq")

        # Refusals. Every NACK carries the id whenever it can be read.
        ingest.send_multipart([b"PUBLISH", b"\x93\x01\x02"])
        nack = recv(ingest)
        body = strict(nack[1])
        check(nack[0] == b"NACK" and body.get("code") == 400 and "id" in body
              and body["id"] is None, "malformed event gets NACK 400, id nil")
        bad = dict(event, name="quacked", id=uuid7())
        ingest.send_multipart([b"PUBLISH", msgpack.packb(bad, use_bin_type=True)])
        body = strict(recv(ingest)[1])
        check(body.get("code") == 400 and "name" in str(body.get("reason")),
              "bad name gets NACK 400 naming the rule: " + str(body.get("reason")))
        check(body.get("id") == bad["id"], "the NACK carries the refused event's id")
        big = dict(event, id=uuid7(), data={"blob": b"x" * 70000})
        ingest.send_multipart([b"PUBLISH", msgpack.packb(big, use_bin_type=True)])
        body = strict(recv(ingest)[1])
        check(body.get("code") == 413, "oversized event gets NACK 413")
        check(body.get("id") == big["id"], "the 413 carries the event's id too")
        ingest.send_multipart([b"FROB", b"x"])
        check(strict(recv(ingest)[1])["code"] == 404, "unknown command gets NACK 404")
        ingest.send_multipart([b"PING"])
        check(recv(ingest) == [b"PONG"], "PING gets PONG")

        # Strings are UTF-8: an entity "cu\xffs1" is refused, naming the key
        bad_id = uuid7()
        raw = (b"\x84" + msgpack.packb("id") + msgpack.packb(bad_id, use_bin_type=True)
               + msgpack.packb("name") + msgpack.packb("QUACKED")
               + msgpack.packb("ts") + msgpack.packb(event["ts"])
               + msgpack.packb("entity") + str_raw(b"cu\xffs1"))
        ingest.send_multipart([b"PUBLISH", raw])
        body = strict(recv(ingest)[1])
        check(body.get("code") == 400 and "entity" in str(body.get("reason")) and "UTF-8" in str(body.get("reason")),
              "entity not UTF-8 gets NACK 400 naming it: " + str(body.get("reason")))
        check(body.get("id") == bad_id, "... with the event's id")
        raw = (b"\x85" + msgpack.packb("id") + msgpack.packb(uuid7(), use_bin_type=True)
               + msgpack.packb("name") + msgpack.packb("QUACKED")
               + msgpack.packb("ts") + msgpack.packb(event["ts"])
               + msgpack.packb("entity") + msgpack.packb("cust-py")
               + msgpack.packb("data") + b"\x81" + str_raw(b"note") + str_raw(b"\xed\xa0\x80"))
        ingest.send_multipart([b"PUBLISH", raw])
        body = strict(recv(ingest)[1])
        check(body.get("code") == 400 and "data.note" in str(body.get("reason")),
              "a surrogate in data gets NACK 400 naming data.note: " + str(body.get("reason")))
        odd = dict(event, id=uuid7(), data={1: "int key"})
        ingest.send_multipart([b"PUBLISH", msgpack.packb(odd, use_bin_type=True)])
        body = strict(recv(ingest)[1])
        check(body.get("code") == 400 and "str" in str(body.get("reason")),
              "a non-str key in data gets NACK 400: " + str(body.get("reason")))
        odd = dict(event, id=uuid7(), data={"e": msgpack.ExtType(5, b"x")})
        ingest.send_multipart([b"PUBLISH", msgpack.packb(odd, use_bin_type=True)])
        body = strict(recv(ingest)[1])
        check(body.get("code") == 400 and "ext" in str(body.get("reason")),
              "an ext value in data gets NACK 400: " + str(body.get("reason")))

        # An id reused for a different event: 409, never a silent dup; an
        # event sent with it in the same moment by another producer is
        # stored (one result per event)
        other = ctx.socket(zmq.DEALER)
        other.connect(endpoints["ingest"])
        reuse = dict(event, data={"duration_ms": 999})
        fresh = dict(event, id=uuid7(), name="HONKED", entity="cust-py-2")
        ingest.send_multipart([b"PUBLISH", msgpack.packb(reuse, use_bin_type=True)])
        other.send_multipart([b"PUBLISH", msgpack.packb(fresh, use_bin_type=True)])
        reply = recv(ingest)
        body = strict(reply[1])
        check(reply[0] == b"NACK" and body.get("code") == 409 and body.get("id") == event["id"],
              "an id reused for another event gets NACK 409 with that id: %s" % body.get("reason"))
        reply = recv(other)
        check(reply is not None and reply[0] == b"ACK"
              and strict(reply[1])["id"] == fresh["id"], "the other event is ACKed")
        ingest.send_multipart([b"PUBLISH", packed])
        body = strict(recv(ingest)[1])
        check(body.get("dup") is True and body.get("seq") == ack["seq"],
              "the exact event again is still ACK dup true")

        # Replay by name over a time window, with credit
        second = dict(event, id=uuid7(), ts=event["ts"] - 1_000_000)
        ingest.send_multipart([b"PUBLISH", msgpack.packb(second, use_bin_type=True)])
        check(recv(ingest)[0] == b"ACK", "second event acked")
        control = ctx.socket(zmq.DEALER)
        control.connect(endpoints["control"])
        request = {"rid": 7, "names": ["QUACKED"], "from": event["ts"] - 10_000_000,
                   "to": event["ts"] + 1, "credit": 1}
        control.send_multipart([b"REPLAY", msgpack.packb(request)])
        replayed = []
        while True:
            frames = recv(control)
            if frames is None:
                break
            if frames[0] == b"CHUNK":
                head = msgpack.unpackb(frames[1])
                replayed += [msgpack.unpackb(f) for f in frames[2:]]
                control.send_multipart([b"CREDIT", msgpack.packb({"rid": head["rid"], "chunks": 1})])
            elif frames[0] == b"END":
                end = msgpack.unpackb(frames[1])
                break
        check(end.get("rid") == 7 and end.get("code") == 200 and end.get("count") == 2,
              "replay ends with END 200 and count 2")
        check(all(strict(msgpack.packb(e, use_bin_type=True)) is not None for e in replayed),
              "replayed events read with raw=False")
        check([e["id"] for e in replayed] == [second["id"], event["id"]],
              "replay is ordered by event time, not by seq")

        control.send_multipart([b"REPLAY", msgpack.packb({"rid": 8, "credit": 0})])
        error = recv(control)
        body = strict(error[1])
        check(error[0] == b"ERROR" and body.get("code") == 400 and body.get("rid") == 8,
              "replay with credit 0 gets ERROR 400 with its rid")

        # The whole log, read strictly: every event decodes with raw=False
        control.send_multipart([b"REPLAY", msgpack.packb({"rid": 9, "credit": 16})])
        log, end = [], None
        while True:
            frames = recv(control)
            if frames is None:
                break
            if frames[0] == b"CHUNK":
                try:
                    log += [strict(f) for f in frames[2:]]
                except (UnicodeDecodeError, ValueError) as error:
                    check(False, "a stored event a strict reader cannot read: %s" % error)
                control.send_multipart([b"CREDIT", msgpack.packb({"rid": 9, "chunks": 1})])
            elif frames[0] == b"END":
                end = strict(frames[1])
                break
        check(end is not None and end.get("code") == 200 and len(log) == end.get("count")
              and len(log) == 3, "the log holds the 3 stored events, all strict-readable"
              " (%d)" % len(log))

        # CANCEL: END with its own code (410), not 200
        for i in range(40):
            extra = dict(event, id=uuid7(), entity="cust-bulk", data={"i": i, "pad": "x" * 8000})
            ingest.send_multipart([b"PUBLISH", msgpack.packb(extra, use_bin_type=True)])
            recv(ingest)
        control.send_multipart([b"REPLAY", msgpack.packb({"rid": 10, "credit": 1})])
        first = recv(control)
        control.send_multipart([b"CANCEL", msgpack.packb({"rid": 10})])
        end = None
        while True:
            frames = recv(control)
            if frames is None or frames[0] == b"END":
                end = strict(frames[1]) if frames else None
                break
        check(first is not None and first[0] == b"CHUNK" and end is not None
              and end.get("rid") == 10 and end.get("code") == 410,
              "CANCEL ends the replay with END 410 (%s)" % (end and end.get("code")))

        control.send_multipart([b"STATS"])
        stats = recv(control)
        body = msgpack.unpackb(stats[1])
        check(stats[0] == b"STATS" and body["broker"]["acked"] >= 3,
              "STATS counts acked events (%d)" % body["broker"]["acked"])
        # malformed: the six events refused 400 and the REPLAY refused 400
        broker = body["broker"]
        check(broker.get("malformed") == 7 and broker.get("too_large") == 1
              and broker.get("unknown_command") == 1 and broker.get("conflicts") == 1,
              "each refusal in its own counter: %s" % {k: broker.get(k) for k in
              ("malformed", "too_large", "unknown_command", "conflicts")})

        # A batch: several events in one PUBLISH, one RESULTS with a result
        # per event in frame order; each event stands on its own
        good = dict(event, id=uuid7(), entity="cust-batch")
        ingest.send_multipart([b"PUBLISH", msgpack.packb(good, use_bin_type=True),
                               b"\x93\x01\x02", packed])
        reply = recv(ingest)
        body = strict(reply[1]) if reply else {}
        items = body.get("results", [])
        check(reply is not None and reply[0] == b"RESULTS" and body.get("code") == 200
              and len(items) == 3, "a batch of 3 gets one RESULTS with 3 results")
        check(len(items) == 3 and items[0]["code"] == 200 and items[0]["id"] == good["id"]
              and items[0]["seq"] > ack["seq"] and items[0]["dup"] is False,
              "the good event is stored: %s" % (items[:1],))
        check(len(items) == 3 and items[1]["code"] == 400 and items[1]["id"] is None
              and len(items[1]["reason"]) > 5, "the malformed one gets 400, id nil: %s"
              % (items[1:2],))
        check(len(items) == 3 and items[2]["code"] == 200 and items[2]["id"] == event["id"]
              and items[2]["dup"] is True and items[2]["seq"] == ack["seq"],
              "the duplicate gets 200 dup true with its first seq")
        check(not ingest.poll(200), "one reply for the whole batch")
        control.send_multipart([b"STATS"])
        broker = msgpack.unpackb(recv(control)[1])["broker"]
        check(broker.get("batches") == 1, "STATS counts the batch (%s)" % broker.get("batches"))

        # Commands: ACCEPTED at once with the client's id and rid, then
        # COMMAND_STATUS by id; here no actor runs, so it fails with why
        command_id = uuid7()
        control.send_multipart([b"COMMAND", msgpack.packb(
            {"command": "rebuild", "view": "quacks", "id": command_id, "rid": 31},
            use_bin_type=True)])
        frames = recv(control)
        status = strict(frames[1])
        check(frames[0] == b"ACCEPTED" and status["id"] == command_id and status["rid"] == 31
              and status["status"] == "accepted" and status["view"] == "quack-counter"
              and status["progress"] == {"done": 0, "total": 0} and status["dup"] is False,
              "COMMAND: ACCEPTED with the id, the rid and the status: %s" % (status,))
        for _ in range(100):
            control.send_multipart([b"COMMAND_STATUS", msgpack.packb(
                {"id": command_id, "rid": 32}, use_bin_type=True)])
            frames = recv(control)
            status = strict(frames[1])
            if status.get("status") in ("done", "failed"):
                break
            time.sleep(0.05)
        check(frames[0] == b"COMMAND_STATUS" and status["rid"] == 32
              and status["status"] == "failed" and status["code"] == 503
              and "quack-counter is not running" in status["reason"]
              and status["finished"] >= status["accepted"] > 0,
              "COMMAND_STATUS: failed, with the reason: %s" % (status,))
        control.send_multipart([b"COMMAND", msgpack.packb(
            {"command": "rebuild", "view": "nowhere", "rid": 33}, use_bin_type=True)])
        frames = recv(control)
        error = strict(frames[1])
        check(frames[0] == b"ERROR" and error["code"] == 404 and error["rid"] == 33
              and "unknown view" in error["reason"], "COMMAND: unknown view, 404: %s" % (error,))
        control.send_multipart([b"COMMAND_STATUS", msgpack.packb(
            {"id": uuid7(), "rid": 34}, use_bin_type=True)])
        frames = recv(control)
        error = strict(frames[1])
        check(frames[0] == b"ERROR" and error["code"] == 404 and error["rid"] == 34,
              "COMMAND_STATUS: unknown id, 404: %s" % (error,))
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        ctx.destroy(linger=0)
        if results["failed"]:
            print("logs kept in " + data)
        else:
            shutil.rmtree(data, ignore_errors=True)
    print("%d passed, %d failed" % (results["passed"], results["failed"]))
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
