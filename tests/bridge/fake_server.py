"""A tiny stdio MCP server (plain JSON lines, no SDK) for the bridge's lifecycle and limit cases
that no real server shows on demand. Tools:

- `state`: what the server itself holds: the URIs subscribed and how many subscribe and
  unsubscribe requests reached it (as JSON text);
- `hang`: never answered;
- `close-stdout`: closes stdout and keeps running (a half-dead server);
- `big` {bytes, idLast}: a reply of about `bytes` bytes, its `id` first or last on the line;
- `flood` {count, bytes}: `count` tools/list_changed notifications of about `bytes` each, then
  an answer.
"""

import json
import os
import sys
import time

subscribed = set()
counts = {"subscribes": 0, "unsubscribes": 0}


def write(obj_text):
    sys.stdout.write(obj_text + "\n")
    sys.stdout.flush()


def answer(msg_id, result):
    write(json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result}))


def text(t):
    return {"content": [{"type": "text", "text": t}]}


def call_tool(msg_id, name, args):
    if name == "state":
        state = dict(counts, subscribed=sorted(subscribed))
        answer(msg_id, text(json.dumps(state)))
    elif name == "hang":
        pass
    elif name == "close-stdout":
        sys.stdout.flush()
        os.close(1)
        while True:
            time.sleep(1)
    elif name == "big":
        pad = "x" * int(args.get("bytes", 0))
        result = json.dumps(text(pad))
        if args.get("idLast"):
            write('{"result":%s,"jsonrpc":"2.0","id":%s}' % (result, json.dumps(msg_id)))
        else:
            write('{"jsonrpc":"2.0","id":%s,"result":%s}' % (json.dumps(msg_id), result))
    elif name == "flood":
        pad = "y" * int(args.get("bytes", 0))
        note = json.dumps(
            {"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {"_meta": {"pad": pad}}}
        )
        for _ in range(int(args.get("count", 0))):
            write(note)
        answer(msg_id, text("flooded"))
    else:
        write(json.dumps({"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32602, "message": "unknown tool"}}))


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        method = msg.get("method")
        msg_id = msg.get("id")
        params = msg.get("params") or {}
        if msg_id is None or method is None:
            continue
        if method == "initialize":
            answer(
                msg_id,
                {
                    "protocolVersion": params.get("protocolVersion"),
                    "capabilities": {"tools": {}, "resources": {"subscribe": True}},
                    "serverInfo": {"name": "bridge-fake", "version": "0"},
                },
            )
        elif method == "ping":
            answer(msg_id, {})
        elif method == "resources/subscribe":
            counts["subscribes"] += 1
            subscribed.add(params["uri"])
            answer(msg_id, {})
        elif method == "resources/unsubscribe":
            counts["unsubscribes"] += 1
            subscribed.discard(params["uri"])
            answer(msg_id, {})
        elif method == "tools/call":
            call_tool(msg_id, params.get("name"), params.get("arguments") or {})
        else:
            write(json.dumps({"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32601, "message": "no"}}))


main()
