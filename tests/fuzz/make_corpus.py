#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/ (a few KiB each).

Real inputs, as plume's peers send them: WebSocket frames from browsers and
from plume's server, phoenix.js upgrade requests and messages, permessage-
deflate payloads, Tracker replication messages. Each target's input format
(the small header some take before the bytes) is described at the top of its
tests/fuzz/fuzz_<target>.cpp. Run from anywhere: python3 tests/fuzz/make_corpus.py
"""
import json
import os
import shutil
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
MASK = b"\x37\xfa\x21\x3d"
TEXT, BINARY, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10


def frame(op, payload, fin=True, rsv1=False, mask=None):
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n <= 0xFFFF:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        head += mask
    return head + payload


def deflate_messages(messages, takeover):
    """permessage-deflate payloads: raw deflate, sync flush, tail stripped."""
    out = []
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    for m in messages:
        if not takeover:
            z = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = z.compress(m) + z.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(data[:-4] or b"\x00")
    return out


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def j(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


JOIN_V2 = j(["3", "3", "room:lobby", "phx_join", {"user_id": "42", "token": "SFMyNTY.g2g"}])
HEARTBEAT_V2 = j([None, "4", "phoenix", "heartbeat", {}])
MSG_V2 = j(["3", "5", "room:lobby", "new_msg", {"body": "héllo ✓", "n": 1.5, "ok": True}])


def ws_parser():
    # [flags][split seed][limit: 16 << 12 = 64 KiB] + bytes
    def seed(name, flags, data, split=7, limit=12):
        write("ws_parser", name, bytes([flags, split, limit]) + data)

    for role, flags, mask in (("server", 0, MASK), ("client", 1, None)):
        seed(f"{role}_text", flags, frame(TEXT, JOIN_V2, mask=mask))
        seed(f"{role}_binary", flags,
             frame(BINARY, b"\x00\x01\x01\x0a\x05" + b"35room:lobbyfile" + bytes(range(16)),
                   mask=mask))
        seed(f"{role}_controls", flags,
             frame(PING, b"", mask=mask) + frame(PING, b"are you there", mask=mask) +
             frame(PONG, b"yes", mask=mask) + frame(TEXT, HEARTBEAT_V2, mask=mask) +
             frame(CLOSE, struct.pack(">H", 1000) + "bye ✓".encode(), mask=mask), split=3)
        seed(f"{role}_fragmented", flags,
             frame(TEXT, MSG_V2[:10], fin=False, mask=mask) + frame(PING, b"mid", mask=mask) +
             frame(CONT, MSG_V2[10:20], fin=False, mask=mask) +
             frame(CONT, MSG_V2[20:], mask=mask), split=11)
        seed(f"{role}_len16", flags, frame(BINARY, bytes(range(256)) * 2, mask=mask), split=200)
        seed(f"{role}_close_empty", flags, frame(CLOSE, b"", mask=mask) + b"ignored")
        seed(f"{role}_close_1001", flags, frame(CLOSE, b"\x03\xe9", mask=mask))
        # Deflate without and with context takeover (flags bit 1, bit 2).
        msgs = [MSG_V2, MSG_V2, b'{"a":"' + b"x" * 300 + b'"}']
        for takeover in (False, True):
            data = b"".join(frame(TEXT, p, rsv1=True, mask=mask)
                            for p in deflate_messages(msgs, takeover))
            seed(f"{role}_deflate{'_takeover' if takeover else ''}",
                 flags | 2 | (4 if takeover else 0), data)
        # A compressed message in two frames, and an uncompressed one after it.
        p = deflate_messages([JOIN_V2], False)[0]
        seed(f"{role}_deflate_fragmented", flags | 2,
             frame(TEXT, p[:5], fin=False, rsv1=True, mask=mask) +
             frame(CONT, p[5:], mask=mask) + frame(BINARY, b"plain", mask=mask))
    # Invalid: bad UTF-8, unmasked client frame, non-minimal length, too big.
    seed("bad_utf8", 0, frame(TEXT, b"ok \xc3\x28", mask=MASK))
    seed("unmasked_to_server", 0, frame(TEXT, b"hi"))
    seed("nonminimal_len", 1, bytes([0x82, 126, 0, 5]) + b"abcde")
    seed("too_big", 1, frame(BINARY, b"y" * 40), limit=1)
    seed("bad_close_code", 1, frame(CLOSE, b"\x03\xed"))


KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def http():
    def req(lines):
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    # phoenix.js 1.8 in Node (the ws package) and the browsers.
    write("http", "node_ws", req([
        "GET /socket/websocket?token=SFMyNTY.g2gDYSpuBgBq&vsn=2.0.0 HTTP/1.1",
        "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Key: {KEY}",
        "Connection: Upgrade", "Upgrade: websocket",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        "Host: 127.0.0.1:4000"]))
    write("http", "chrome", req([
        "GET /socket/websocket?vsn=2.0.0 HTTP/1.1", "Host: localhost:4000",
        "Connection: Upgrade", "Pragma: no-cache", "Cache-Control: no-cache",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        "Upgrade: websocket", "Origin: http://localhost:4000", "Sec-WebSocket-Version: 13",
        "Accept-Encoding: gzip, deflate, br", "Accept-Language: en-US,en;q=0.9",
        "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"]))
    write("http", "firefox", req([
        "GET /live/websocket?_csrf_token=aBc%2Fd&vsn=2.0.0 HTTP/1.1", "Host: example.com",
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Accept: */*", "Sec-WebSocket-Version: 13", "Origin: https://example.com",
        "Sec-WebSocket-Protocol: phoenix, chat",
        "Sec-WebSocket-Extensions: permessage-deflate",
        "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==", "Connection: keep-alive, Upgrade",
        "Sec-Fetch-Dest: empty", "Sec-Fetch-Mode: websocket", "Upgrade: websocket"]))
    write("http", "deflate_params", req([
        "GET /socket/websocket HTTP/1.1", "Host: h", "Upgrade: WebSocket",
        "Connection: upgrade", "Sec-WebSocket-Version: 13", f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        "client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=\"12\", "
        "permessage-deflate, x-webkit-deflate-frame"]))
    write("http", "longpoll_get", req([
        "GET /socket/longpoll?vsn=2.0.0&token=abc&token=SFMy+NTY%3D HTTP/1.1",
        "Host: localhost:4000", "Accept: application/json"]))
    write("http", "longpoll_post", req([
        "POST http://localhost:4000/socket/longpoll?vsn=2.0.0 HTTP/1.1", "Host: localhost:4000",
        "Content-Type: application/x-ndjson", "Content-Length: 44"]))
    write("http", "http10_options", req(["OPTIONS * HTTP/1.0", "X-A:b"]))
    write("http", "response_101", req([
        "HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "Sec-WebSocket-Protocol: phoenix",
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        "client_max_window_bits=15"]))
    write("http", "bad_version", req(["GET / HTTP/2.0", "Host: a"]))
    write("http", "bad_folding", req(["GET / HTTP/1.1", "Host: a", " folded"]))


def v1_json():
    msgs = [
        {"topic": "room:lobby", "event": "phx_join", "payload": {"token": "t"}, "ref": "1",
         "join_ref": "1"},
        {"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "2"},
        {"event": "phx_reply", "payload": {"response": {}, "status": "ok"}, "ref": "1",
         "topic": "room:lobby"},
        {"event": "phx_reply", "payload": {"response": {"reason": "unmatched topic"},
                                           "status": "error"}, "ref": "7", "topic": "nope"},
        {"event": "new_msg", "payload": {"body": "hi ✓", "at": 1700000000, "x": [1.25, None]},
         "ref": None, "topic": "room:lobby"},
        {"event": "phx_error", "payload": {"reason": "channel_crash"}, "ref": "1",
         "topic": "room:lobby", "join_ref": "1"},
    ]
    for i, m in enumerate(msgs):
        write("v1_json", f"msg{i}", j(m))
    write("v1_json", "escapes", b'{"topic":"a\\u0000\\"b","event":"e\\ud83d\\ude00",'
          b'"payload":{"k":"\\n\\t"},"ref":null}')


def v2_json():
    msgs = [
        json.loads(JOIN_V2), json.loads(HEARTBEAT_V2), json.loads(MSG_V2),
        ["3", "3", "room:lobby", "phx_reply", {"response": {}, "status": "ok"}],
        [None, "4", "phoenix", "phx_reply", {"response": {}, "status": "ok"}],
        ["3", "6", "room:lobby", "phx_reply", {"response": "raw", "status": "timeout"}],
        ["3", "7", "room:lobby", "phx_leave", {}],
        ["3", "3", "room:lobby", "phx_close", {}],
        [None, None, "room:lobby", "presence_diff",
         {"joins": {"42": {"metas": [{"phx_ref": "F1pX4Z6e2Rw", "online_at": "1700000000"}]}},
          "leaves": {}}],
        ["3", None, "room:lobby", "presence_state",
         {"42": {"metas": [{"phx_ref": "F1pX4Z6e2Rw", "phx_ref_prev": "F1pX", "n": -1e-7}]}}],
        ["", "", "t", "e", {}, "extra"],
    ]
    for i, m in enumerate(msgs):
        write("v2_json", f"msg{i}", j(m))


def v2_binary():
    def b(kind, fields, payload):
        enc = [f.encode() for f in fields]
        return bytes([kind] + [len(f) for f in enc]) + b"".join(enc) + payload

    write("v2_binary", "client_push", b(0, ["3", "8", "room:lobby", "upload"], bytes(range(32))))
    write("v2_binary", "server_push", b(0, ["3", "room:lobby", "chunk"], b"\xff\x00data"))
    write("v2_binary", "reply", b(1, ["3", "8", "room:lobby", "ok"], b"\x01\x02\x03"))
    write("v2_binary", "broadcast", b(2, ["room:lobby", "frame"], b"\x89PNG\r\n\x1a\n"))
    write("v2_binary", "empty_refs", b(0, ["", "", "tøpic", "ev"], b""))


def inflate():
    # [flags: bit 0 takeover][limit: 1 << 16] + (2-byte length, bytes)*
    msgs = [MSG_V2, JOIN_V2, b"x" * 2000, b"", HEARTBEAT_V2]
    for takeover in (False, True):
        body = b"".join(struct.pack(">H", len(p)) + p for p in deflate_messages(msgs, takeover))
        write("inflate", f"messages{'_takeover' if takeover else ''}",
              bytes([1 if takeover else 0, 16]) + body)
    # A payload ending in a BFINAL block (zlib.compress style, no sync flush).
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    final = z.compress(MSG_V2) + z.flush()
    write("inflate", "bfinal", bytes([1, 16]) + struct.pack(">H", len(final)) + final +
          struct.pack(">H", len(final)) + final)
    # A small bomb against a 4 KiB limit.
    bomb = deflate_messages([b"\x00" * 60000], False)[0]
    write("inflate", "bomb", bytes([0, 12]) + struct.pack(">H", len(bomb)) + bomb)


def tracker():
    # [event index: heartbeat, transfer_req, transfer_ack, permdown][shards - 1] + JSON
    frm, to = ["node1@127.0.0.1", 1700000000123456789], ["node2@127.0.0.1", 42]
    meta = {"online_at": "1700000000", "phx_ref": "AAAAAAABq83vEjRW"}
    add = ["+", 3, "AAAAAAADq83vEjRW", "room:lobby", "42", meta]
    rem = ["-", 2, "AAAAAAABq83vEjRW"]
    seeds = {
        "heartbeat": (0, {"from": frm, "shards": 1, "base": 1, "version": 3, "ops": [rem, add]}),
        "heartbeat_idle": (0, {"from": frm, "shards": 1, "base": 3, "version": 3, "ops": []}),
        "transfer_req": (1, {"from": frm, "to": to, "shards": 1, "have": 0}),
        "transfer_ack_full": (2, {"from": frm, "to": to, "shards": 1, "version": 9, "entries": [
            [3, "AAAAAAADq83vEjRW", "room:lobby", "42", meta],
            [9, "AAAAAAAJq83vEjRW", "user:42", "tab-2", {"device": "phone"}]]}),
        "transfer_ack_delta": (2, {"from": frm, "to": to, "shards": 1, "base": 0, "version": 3,
                                   "ops": [add]}),
        "permdown": (3, {"from": frm, "shards": 1}),
        "heartbeat_4_shards": (0, {"from": frm, "shards": 4, "base": 0, "version": 1,
                                   "ops": [add]}),
    }
    for name, (event, payload) in seeds.items():
        write("tracker", name, bytes([event, payload["shards"] - 1]) + j(payload))


if __name__ == "__main__":
    shutil.rmtree(ROOT, ignore_errors=True)
    for make in (ws_parser, http, v1_json, v2_json, v2_binary, inflate, tracker):
        make()
