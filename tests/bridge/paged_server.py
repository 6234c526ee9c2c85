"""A stdio MCP server on the official Python SDK whose tools/list is paginated (2 per page).

No real server we install paginates its tools, and the allow-list must filter page by page while
keeping `nextCursor`. Tools t0..t5; calling tN answers "called tN".
"""

import anyio
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

TOOLS = [f"t{i}" for i in range(6)]
PAGE = 2

server = Server("paged-fixture")


def tool(name):
    return types.Tool(name=name, description=f"tool {name}", inputSchema={"type": "object"})


@server.list_tools()
async def list_tools(req: types.ListToolsRequest) -> types.ListToolsResult:
    cursor = req.params.cursor if req.params else None
    start = int(cursor) if cursor else 0
    page = TOOLS[start : start + PAGE]
    nxt = str(start + PAGE) if start + PAGE < len(TOOLS) else None
    return types.ListToolsResult(tools=[tool(n) for n in page], nextCursor=nxt)


@server.call_tool()
async def call_tool(name: str, arguments: dict) -> list[types.TextContent]:
    return [types.TextContent(type="text", text=f"called {name}")]


async def main():
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
