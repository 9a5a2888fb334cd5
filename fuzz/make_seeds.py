#!/usr/bin/python3
"""make_seeds.py: write the seed inputs of fuzz/corpus/NAME/seed-*.

Run once by hand (/usr/bin/python3 fuzz/make_seeds.py) when the formats change;
the output is committed. Seeds are small, mostly valid inputs that reach
every branch a fuzzer would otherwise have to guess: one per message and
per field type, plus a few classic lies (truncated, trailing bytes, nil
id). Inputs the fuzzers found later sit beside them (hash names, added by
`fuzz/run merge`), and crash reproducers as crash-*.

Needs python3-msgpack (already a test dependency of pond).
"""
import json
import os
import struct

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
ID = bytes(range(1, 17))
CAUSE = bytes(range(17, 33))
TS = 1640995200000000          # 2022-01-01T00:00:00Z in microseconds


def write(corpus, name, data):
    folder = os.path.join(HERE, "corpus", corpus)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


# Script inputs (see pond_fuzz_script.c): 0xc1, then key/value records
SCRIPT = b"\xc1"
EVENT_KEYS = ["id", "name", "ts", "entity", "source", "causation", "meta", "data", "seq",
              "Id", ""]
PROTO_KEYS = ["id", "seq", "dup", "code", "reason", "retry_ms", "rid", "names", "from", "to",
              "from_seq", "to_seq", "entity", "limit", "credit", "order", "chunks", "count",
              "head", "ts", "bid", "seqs", "dups", "text", "command", "args", "done", "total",
              "Rid"]


def script_len(n):
    return bytes([n]) if n < 255 else b"\xff" + struct.pack(">H", n)


def script_value(v, keys):
    if v is None:
        return b"\x08"
    if isinstance(v, bool):
        return b"\x07" + bytes([int(v)])
    if isinstance(v, int):
        if v < 0:
            return b"\x06" + bytes([-v - 1])
        if v < 256:
            return b"\x03" + bytes([v])
        if v < 2 ** 32:
            return b"\x04" + struct.pack(">I", v)
        return b"\x05" + struct.pack(">Q", v)
    if isinstance(v, str):
        raw = v.encode()
        if len(raw) > 8 and raw == raw[:1] * len(raw):
            return b"\x02" + script_len(len(raw)) + raw[:1]      # fill
        return b"\x00" + script_len(len(raw)) + raw
    if isinstance(v, bytes):
        return b"\x01" + script_len(len(v)) + v
    if isinstance(v, list):
        return b"\x09" + bytes([len(v)]) + b"".join(script_value(x, keys) for x in v)
    if isinstance(v, float):                                # raw msgpack
        raw = pack(v)
        return b"\x0b" + script_len(len(raw)) + raw
    if isinstance(v, dict):
        return b"\x0a" + bytes([len(v)]) + script_pairs(v, keys)
    raise TypeError(v)


def script_pairs(d, keys):
    out = b""
    for k, v in d.items():
        out += bytes([keys.index(k) if k in keys else 0]) + script_value(v, keys)
    return out


def script(d, keys):
    return SCRIPT + script_pairs(d, keys)


# ---------------------------------------------------------------- event
def events():
    minimal = {"id": ID, "name": "QUACKED", "ts": TS, "entity": "duck-1"}
    write("event", "minimal", pack(minimal))
    full = dict(minimal, source="device-7", causation=CAUSE, seq=42,
                meta={"trace": "abc", "n": 1},
                data={"count": 3, "loud": True, "pitch": 1.5, "tags": ["a", "b"],
                      "none": None, "neg": -7, "raw": b"\x00\x01"})
    write("event", "full", pack(full))
    # data nested 16 deep inside the envelope: the limit
    deep = {}
    for _ in range(15):
        deep = {"d": deep}
    write("event", "deep-data", pack(dict(minimal, data=deep)))
    # non-canonical but valid: str8 keys, uint64 ts, float32 in data
    body = b"\x86" + b"\xd9\x02id" + b"\xc4\x10" + ID
    body += b"\xd9\x04name" + b"\xa7QUACKED"
    body += b"\xd9\x02ts" + b"\xcf" + struct.pack(">Q", TS)
    body += b"\xd9\x06entity" + b"\xa6duck-1"
    body += b"\xd9\x04data" + b"\x81\xa1f\xca" + struct.pack(">f", 0.25)
    body += b"\xd9\x04meta" + b"\x81\xa1e\xd4\x01\x02"
    write("event", "noncanonical", body)
    # every size limit reached exactly: an off-by-one is one mutation away
    write("event", "limits", pack(dict(minimal, name="N" * 64, entity="e" * 128, source="s" * 128,
                                       ts=253402300799999999, seq=2 ** 64 - 1)))
    write("event", "script-minimal", script(minimal, EVENT_KEYS))
    write("event", "script-full", script(full, EVENT_KEYS))
    write("event", "script-limits", script(dict(minimal, name="N" * 64, entity="e" * 128,
                                                source="s" * 128), EVENT_KEYS))
    write("event", "nil-id", pack(dict(minimal, id=bytes(16))))
    write("event", "bad-name", pack(dict(minimal, name="quacked")))
    write("event", "missing-entity", pack({k: v for k, v in minimal.items() if k != "entity"}))
    write("event", "unknown-key", pack(dict(minimal, colour="blue")))
    write("event", "truncated", pack(full)[:-3])
    write("event", "trailing", pack(minimal) + b"\xc0")
    write("event", "huge-map-header", b"\xdf\xff\xff\xff\xff")


# ---------------------------------------------------------------- proto
# The harness picks the decoder with the first byte, in this order
MESSAGES = ["ack", "nack", "replay_req", "credit", "end", "append", "appended",
            "heartbeat", "query", "command", "progress"]


def protos():
    bodies = {
        "ack": [{"id": ID, "seq": 7, "dup": False}],
        "nack": [{"id": ID, "code": 503, "reason": "busy", "retry_ms": 100},
                 {"id": None, "code": 400, "reason": "r" * 255, "retry_ms": 2 ** 32 - 1}],
        "replay_req": [{"rid": 1, "names": ["QUACKED", "BADGE_GRANTED"], "from": 10, "to": 20,
                        "credit": 8, "order": "seq", "limit": 100},
                       {"rid": 2, "entity": "duck-1", "credit": 1},
                       {"rid": 3, "from_seq": 5, "to_seq": 9, "credit": 1024},
                       # every limit reached exactly
                       {"rid": 4, "names": ["N" * 64] * 16, "entity": "e" * 128,
                        "credit": 1024, "order": "time"}],
        "credit": [{"rid": 1, "chunks": 4}, {"rid": 2 ** 64 - 1, "chunks": 2 ** 32 - 1}],
        "end": [{"rid": 1, "count": 10, "head": 99, "code": 200, "reason": ""},
                {"rid": 2, "code": 500, "reason": "r" * 255}],
        "append": [{"bid": 5}],
        "appended": [{"bid": 5, "code": 200, "seqs": [1, 2, 3], "dups": [False, True, False]}],
        "heartbeat": [{"head": 12, "ts": TS}],
        "query": [{"entity": "duck-1", "text": "how many?"},
                  {"entity": "e" * 128, "text": "t" * 1023}],
        "command": [{"command": "recompute", "args": "{\"from\": 1}"},
                    {"command": "c" * 63, "args": ""}],
        "progress": [{"done": 5, "total": 10}],
    }
    for index, name in enumerate(MESSAGES):
        for n, body in enumerate(bodies[name]):
            write("proto", "%s-%d" % (name, n), bytes([index]) + pack(body))
            write("proto", "%s-%d-script" % (name, n), bytes([index]) + script(body, PROTO_KEYS))
        write("proto", "%s-nobody" % name, bytes([index]))
    # unknown keys ignored, wrong types refused
    write("proto", "ack-extra-key", bytes([0]) + pack({"id": ID, "seq": 1, 7: "x", "new": [1]}))
    write("proto", "credit-wrong-type", bytes([3]) + pack({"rid": "one"}))


# ---------------------------------------------------------------- value
def values():
    every = {"nil": None, "t": True, "f": False, "pos": 127, "u8": 200, "u16": 60000,
             "u32": 4000000000, "u64": 2 ** 63, "neg": -1, "i8": -100, "i16": -30000,
             "i32": -2000000000, "i64": -2 ** 62, "f64": 0.1, "str": "x" * 40,
             "bin": b"\x00\xff", "arr": [1, [2, [3]]], "map": {"k": {"k": {}}},
             7: "int key", "": "empty key"}
    write("value", "msgpack-every-type", pack(every))
    write("value", "script-every-type", SCRIPT + script_pairs(
        {"a": [None, True, 7, 70000, 2 ** 40, -3, "x" * 20, b"\x01", {"a": {"": []}}]},
        ["a", ""]))
    write("value", "msgpack-ext", b"\x82\xa1a\xd5\x05\x01\x02\xa1b\xc7\x03\x07abc")
    write("value", "msgpack-float32", b"\x81\xa1f\xca" + struct.pack(">f", 1.5))
    write("value", "msgpack-map-key", b"\x81\x81\xa1a\x01\xa1v")
    write("value", "msgpack-str16", b"\xda\x01\x00" + b"s" * 256)
    deep = b"\x91" * 16 + b"\xc0"
    write("value", "msgpack-deep16", deep)
    write("value", "msgpack-deep17", b"\x91" + deep)
    write("value", "msgpack-lying-array", b"\xdd\x7f\xff\xff\xff\x01")
    write("value", "json-object",
          json.dumps({"a": 1, "b": [True, False, None], "c": {"d": "x"}, "e": 1.5, "f": -3,
                      "g": 9007199254740993, "h": 1e300, "i": "\u00e9\u2603"}))
    write("value", "json-escapes", '{"s":"\\u0000\\ud83e\\udd86\\n\\"","":{}}')
    write("value", "json-deep16", '{"a":' * 16 + "1" + "}" * 16)
    write("value", "json-not-object", "[1,2,3]")
    write("value", "json-numbers", '{"a":-0.0,"b":1e999,"c":-9007199254740992,"d":0.1e1}')


# ---------------------------------------------------------------- rules
def rules():
    for version in ("v1", "v2"):
        with open(os.path.join(HERE, "..", "actors", "badge_granter", "rules",
                               version + ".json"), "rb") as f:
            write("rules", version, f.read())
    write("rules", "sixteen", json.dumps({"version": "v.16_x-y", "badges": [
        {"name": "Badge %d" % i, "at": 1 + i * 62500000} for i in range(16)]}))
    write("rules", "limits", json.dumps({"version": "a" * 32, "extra": [1], "badges": [
        {"name": "N" * 32, "at": 1000000000, "colour": "gold"}, {"name": "a-b_c", "at": 1}]}))
    write("rules", "duplicate", '{"version":"v3","badges":[{"name":"Junior","at":1},'
                                '{"name":"JUNIOR","at":2}]}')
    write("rules", "fraction", '{"version":"v3","badges":[{"name":"Junior","at":1.5}]}')
    write("rules", "space", '{"version":"v3","badges":[{"name":" Junior","at":1}]}')
    write("rules", "no-badges", '{"version":"v3","badges":[]}')
    write("rules", "nul", '{"version":"v\\u0000x","badges":[{"name":"A\\u0000","at":1}]}')


events()
protos()
values()
rules()
