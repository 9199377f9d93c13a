#!/usr/bin/env python3
"""Holds N requests open against a proxy whose requests hang (bench/run.sh, scenario "hang").

Usage: hang.py PORT N HOLD_S
Opens N connections to 127.0.0.1:PORT, sends one chat completion on each, then
prints "SENT n" and keeps them all open for HOLD_S seconds (the proxy should send
nothing), then prints "HANG sent=N answered=K" (K: connections that got any byte,
which a hang must not produce) and closes them. Loopback only; bounded by N <= 8000.
"""
import selectors
import socket
import sys
import time

port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
if not 1 <= n <= 8000:
    sys.exit("N must be 1..8000")
body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":16}'
req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
       b"Authorization: Bearer sk-bench\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
sel = selectors.DefaultSelector()
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(req)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
print(f"SENT {len(socks)}", flush=True)
answered = set()
end = time.monotonic() + hold
while time.monotonic() < end:
    for key, _ in sel.select(timeout=max(0.0, end - time.monotonic())):
        try:
            if key.fileobj.recv(4096) is not None:
                answered.add(key.fileobj.fileno())
        except BlockingIOError:
            pass
        sel.unregister(key.fileobj)
print(f"HANG sent={len(socks)} answered={len(answered)}", flush=True)
for s in socks:
    s.close()
