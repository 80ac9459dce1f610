"""Send N events with PyPI fluent-logger (used by logship's forward_peers test).

usage: send.py HOST PORT N MODE   (MODE: sync | nanosecond | async)
Tag is "py.MODE"; each record carries "seq" (0..N-1).
"""
import sys

from fluent import asyncsender, sender

host, port, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if mode == "async":
    s = asyncsender.FluentSender("py", host=host, port=port, nanosecond_precision=True)
else:
    s = sender.FluentSender("py", host=host, port=port, nanosecond_precision=(mode == "nanosecond"))
for i in range(n):
    if not s.emit(mode, {"seq": i, "msg": "x" * (i % 50), "f": i / 3.0}):
        print("emit failed:", s.last_error, file=sys.stderr)
        sys.exit(1)
s.close()
print("sent", n)
