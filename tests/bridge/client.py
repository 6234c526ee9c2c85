"""A real MCP client (PyPI `mcp`, the official Python SDK) driving the bridge in tests.

Usage: client.py TRANSPORT URL SCENARIO [ARG...]
  TRANSPORT  streamable (streamablehttp_client on URL, e.g. http://127.0.0.1:P/mcp)
             sse        (sse_client on URL, e.g. http://127.0.0.1:P/sse)
Prints one JSON object on stdout describing what the client saw; exits 0 unless the SDK itself
failed. Tests assert on that JSON. With $MCP_BEARER set, every request carries
`Authorization: Bearer $MCP_BEARER`.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError


def connect(transport, url):
    token = os.environ.get("MCP_BEARER")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    if transport == "streamable":
        return streamablehttp_client(url, headers=headers)
    if transport == "sse":
        return sse_client(url, headers=headers)
    raise SystemExit(f"unknown transport {transport}")


def text_of(result):
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def call(session, name, args, **kw):
    try:
        r = await session.call_tool(name, args, **kw)
        return {"ok": True, "text": text_of(r), "is_error": bool(r.isError)}
    except McpError as e:
        return {"ok": False, "code": e.error.code, "message": e.error.message}


async def scenario_everything(session, out, args):
    out["echo"] = await call(session, "echo", {"message": "hello bridge"})
    out["sum"] = await call(session, "get-sum", {"a": 2, "b": 40})
    progress = []

    async def on_progress(p, total, message):
        progress.append([p, total])

    out["long"] = await call(
        session,
        "trigger-long-running-operation",
        {"duration": 0.6, "steps": 3},
        progress_callback=on_progress,
    )
    out["progress"] = progress
    out["missing"] = await call(session, "no-such-tool", {})
    out["ping"] = (await session.send_ping()) is not None


async def scenario_time(session, out, args):
    out["now"] = await call(session, "get_current_time", {"timezone": "UTC"})
    out["convert"] = await call(
        session,
        "convert_time",
        {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
    )


async def scenario_calls(session, out, args):
    """calls NAME JSON_ARGS NAME JSON_ARGS ...: call each tool, report each outcome."""
    out["calls"] = []
    for name, raw in zip(args[0::2], args[1::2]):
        out["calls"].append(await call(session, name, json.loads(raw)))


async def scenario_pages(session, out, args):
    """Walk every page of tools/list, recording each page's names and cursor."""
    pages, cursor = [], None
    while True:
        r = await session.list_tools(cursor=cursor)
        pages.append({"tools": [t.name for t in r.tools], "next": r.nextCursor})
        cursor = r.nextCursor
        if not cursor or len(pages) > 20:
            break
    out["pages"] = pages


async def scenario_catalog(session, out, args):
    """catalog NAME JSON_ARGS ...: every tool over all pages (description, title, annotations),
    then call each tool given and report each outcome."""
    catalog, cursor = {}, None
    for _ in range(20):
        r = await session.list_tools(cursor=cursor)
        for t in r.tools:
            catalog[t.name] = {
                "description": t.description,
                "title": t.title,
                "annotations": t.annotations.model_dump(exclude_none=True) if t.annotations else None,
            }
        cursor = r.nextCursor
        if not cursor:
            break
    out["catalog"] = catalog
    await scenario_calls(session, out, args)


async def scenario_features(session, out, args):
    """The prompts and resources the client is shown (first page of each)."""
    out["prompts"] = sorted(p.name for p in (await session.list_prompts()).prompts)
    out["resources"] = sorted(str(r.uri) for r in (await session.list_resources()).resources)


SCENARIOS = {
    "catalog": scenario_catalog,
    "everything": scenario_everything,
    "time": scenario_time,
    "calls": scenario_calls,
    "pages": scenario_pages,
    "features": scenario_features,
}


async def main():
    transport, url, scenario, *args = sys.argv[1:]
    out = {}
    async with connect(transport, url) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["server"] = init.serverInfo.name
            out["protocol"] = init.protocolVersion
            if scenario != "pages":
                tools = await session.list_tools()
                out["tools"] = sorted(t.name for t in tools.tools)
            await SCENARIOS[scenario](session, out, args)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), 60))
