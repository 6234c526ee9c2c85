"""A real MCP client (PyPI `mcp`, the official Python SDK) driving `mcp-operator vmcp` in tests.

Usage: client.py URL CALLS_JSON
  URL         the aggregator's streamable-HTTP endpoint, e.g. http://127.0.0.1:P/mcp
  CALLS_JSON  a JSON list of {"tool": NAME, "args": {...}} to call in order
Prints one JSON object: the server's name, every tool name (all pages), what each call
returned, and the merged resources, templates and prompts with one read, one get and one
completion each of a prompt argument and of a template variable.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError
from mcp.types import PromptReference, ResourceTemplateReference


def text_of(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def all_pages(fetch, field):
    items, cursor = [], None
    while True:
        page = await fetch(cursor)
        items.extend(getattr(page, field))
        cursor = page.nextCursor
        if not cursor:
            return items


async def main(url, calls):
    out = {}
    async with streamablehttp_client(url) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["server"] = init.serverInfo.name
            tools = await all_pages(lambda c: session.list_tools(cursor=c), "tools")
            out["tools"] = sorted(t.name for t in tools)
            out["calls"] = []
            for call in calls:
                progress = []

                async def on_progress(p, total, message):
                    progress.append(p)

                try:
                    r = await session.call_tool(
                        call["tool"], call.get("args", {}), progress_callback=on_progress
                    )
                    out["calls"].append(
                        {"ok": not r.isError, "text": text_of(r), "progress": len(progress)}
                    )
                except McpError as e:
                    out["calls"].append({"ok": False, "code": e.error.code, "message": e.error.message})
            resources = await all_pages(lambda c: session.list_resources(cursor=c), "resources")
            out["resources"] = sorted(str(r.uri) for r in resources)
            templates = await session.list_resource_templates()
            out["templates"] = sorted(t.uriTemplate for t in templates.resourceTemplates)
            if resources:
                read = await session.read_resource(resources[0].uri)
                out["read"] = str(read.contents[0].uri)
            prompts = await all_pages(lambda c: session.list_prompts(cursor=c), "prompts")
            out["prompts"] = sorted(p.name for p in prompts)
            if "simple-prompt" in out["prompts"]:
                got = await session.get_prompt("simple-prompt")
                out["prompt_messages"] = len(got.messages)
            # Completions go to the backend of the prompt or of the resource template.
            if "completable-prompt" in out["prompts"]:
                done = await session.complete(
                    PromptReference(type="ref/prompt", name="completable-prompt"),
                    {"name": "department", "value": "Eng"},
                )
                out["prompt_completion"] = done.completion.values
            text_template = "demo://resource/dynamic/text/{resourceId}"
            if text_template in out["templates"]:
                done = await session.complete(
                    ResourceTemplateReference(type="ref/resource", uri=text_template),
                    {"name": "resourceId", "value": "1"},
                )
                out["template_completion"] = done.completion.values
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
