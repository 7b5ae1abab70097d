"""`--mcp`: the tabs' endpoints as MCP tools (Gradio's MCP server), described from the handlers' docstrings, listed and
called from the official MCP client."""

from __future__ import annotations

import ast
import asyncio

import pytest

from aigc_hub import hub
from aigc_hub.services import ModelRegistry, SamplingSettings, TextService

pytest.importorskip("mcp")


async def _session(url: str, work, key: str | None = None):
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"} if key else None, timeout=120)
    async with http, streamable_http_client(f"{url}gradio_api/mcp/", http_client=http) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)


def test_the_tabs_are_mcp_tools_with_typed_described_parameters(launched, tiny_gan, long_lm):
    hub.push(tiny_gan, "me/tiny-gan")
    hub.push(long_lm, "me/long-lm")
    url, _ = launched(image_model="me/tiny-gan", text_model="me/long-lm", tabs=["image", "text"], mcp=True,
                      preload=False)
    args = {"model": "me/long-lm", "prompt": "ROMEO:", "max_new_tokens": 12, "temperature": 0.7, "top_k": 0,
            "top_p": 1, "repetition_penalty": 1, "stop_strings": "", "seed": 4}

    async def work(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        return tools, await session.call_tool("generate_text", args)

    tools, called = asyncio.run(_session(url, work))
    assert {"generate_image", "interpolate", "generate_text", "stop_text"} <= set(tools)
    text_tool = tools["generate_text"]
    assert text_tool.description.startswith("Continue a text with a causal language model")
    props = text_tool.inputSchema["properties"]
    assert props["seed"]["type"] == "integer" and "random" in props["seed"]["description"]
    assert props["temperature"]["type"] == "number" and "greedy" in props["temperature"]["description"]
    assert "class-conditional" in tools["generate_image"].inputSchema["properties"]["label"]["description"]
    assert not called.isError
    text, seed, notice = ast.literal_eval(called.content[0].text)  # Gradio sends the outputs' Python repr
    expected, _ = TextService(ModelRegistry()).generate("me/long-lm", "ROMEO:", SamplingSettings(12, 0.7, 0, 1, 1),
                                                        seed=4)
    assert (text, seed, notice) == (expected, 4, "")


def test_with_api_keys_the_mcp_endpoint_needs_one_and_then_works(launched, long_lm):
    import httpx

    hub.push(long_lm, "me/long-lm")
    url, _ = launched(text_model="me/long-lm", tabs=["text"], mcp=True, preload=False, api_keys=["key-one-123"])
    refused = httpx.post(f"{url}gradio_api/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                         headers={"Accept": "application/json, text/event-stream"}, timeout=30)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    args = {"model": "me/long-lm", "prompt": "A", "max_new_tokens": 5, "temperature": 0, "top_k": 0, "top_p": 1,
            "repetition_penalty": 1, "stop_strings": "", "seed": 1}

    async def work(session):
        return await session.call_tool("generate_text", args)

    called = asyncio.run(_session(url, work, key="key-one-123"))
    assert not called.isError, called.content
    assert len(ast.literal_eval(called.content[0].text)[0]) == 5
