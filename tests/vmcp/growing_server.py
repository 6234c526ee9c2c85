"""A stdio MCP server (official Python SDK, FastMCP) whose tool set grows on request: `grow`
adds a tool named by its argument and sends notifications/tools/list_changed, as a server whose
tools change at run time does."""

from mcp.server.fastmcp import Context, FastMCP

server = FastMCP("growing")


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Adds a tool called `name` that answers with its own name."""

    def added() -> str:
        return name

    server.add_tool(added, name=name, description=f"added at run time: {name}")
    await ctx.session.send_tool_list_changed()
    return f"grew {name}"


server.run()
