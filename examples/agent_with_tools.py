"""Tool calling with Jamba: a streaming FunctionAgent, parallel calls, and ``predict_and_call``.

Run it with one command::

    python examples/agent_with_tools.py
    AI21_API_HOST=http://localhost:8000/v1 python examples/agent_with_tools.py   # your own server

With ``AI21_API_HOST`` set it talks to your Jamba server (its ``/v1`` URL: vLLM, llama.cpp,
LM Studio, Ollama); without it, it starts the emulator of a vLLM server (``ai21-emulator``, the
``[emulator]`` extra) in this process (no key, no network). The emulator
calls the tool whose name and description match your words, fills the arguments from them, and
after the tool results answers with what the tools returned.

The agent loop: the model asks for a tool call, LlamaIndex runs the Python function, sends the
result back (a ``tool`` message with the call's id), and the model writes the final answer.
"""

# No ``from __future__ import annotations``: FunctionTool writes each function's signature into
# the tool description the model sees, and postponed annotations would show up there as strings.
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator

from llama_index.core.agent.workflow import AgentStream, FunctionAgent, ToolCallResult
from llama_index.core.tools import FunctionTool

from llama_index.llms.ai21 import AI21

FORECASTS = {"tel aviv": "sunny, 29 C", "paris": "light rain, 14 C", "london": "cloudy, 12 C"}


def get_weather(city: str) -> str:
    """Get today's weather forecast for a city."""
    return FORECASTS.get(city.lower(), f"no forecast for {city}")


def celsius_to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from Celsius to Fahrenheit."""
    return round(celsius * 9 / 5 + 32, 1)


TOOLS = [FunctionTool.from_defaults(get_weather), FunctionTool.from_defaults(celsius_to_fahrenheit)]


@contextlib.contextmanager
def jamba_server() -> Iterator[str]:
    """Your server's ``/v1`` URL (``AI21_API_HOST``), or an emulated vLLM server started here."""
    if os.environ.get("AI21_API_HOST"):
        print(f"Using your server at {os.environ['AI21_API_HOST']}.")
        yield os.environ["AI21_API_HOST"]
        return
    from ai21_emulator import Emulator

    with Emulator(flavour="vllm", models="ai21labs/AI21-Jamba2-3B") as emulator:
        print(f"AI21_API_HOST is not set: using an emulated vLLM server at {emulator.base_url}.")
        yield emulator.base_url


async def ask(agent: FunctionAgent, question: str) -> None:
    """Run the agent, printing tool calls as they finish and the answer as it streams."""
    print(f"\nUser: {question}")
    handler = agent.run(question)
    answering = False
    async for event in handler.stream_events():
        if isinstance(event, ToolCallResult):
            print(f"  tool {event.tool_name}({event.tool_kwargs}) -> {event.tool_output}")
        elif isinstance(event, AgentStream) and event.delta:
            if not answering:
                print("Agent: ", end="")
                answering = True
            print(event.delta, end="", flush=True)
    await handler
    print()


QUESTIONS = [
    "What is the weather forecast in Tel Aviv?",
    # Two clauses, two tools: the model may return both calls in one answer (parallel calls).
    "What is the weather in Paris and the weather in London?",
    "Convert 29 degrees Celsius to Fahrenheit.",
]


def main() -> int:
    with jamba_server() as base_url:
        llm = AI21(base_url=base_url)
        agent = FunctionAgent(
            tools=TOOLS,
            llm=llm,
            system_prompt="You answer weather questions. Use the tools; do not guess.",
        )
        for question in QUESTIONS:
            asyncio.run(ask(agent, question))

        print("\n=== predict_and_call: one tool call, its output is the answer ===")
        result = llm.predict_and_call(TOOLS, "Please convert 14 Celsius to Fahrenheit.")
        print(f"{result.sources[0].tool_name}{result.sources[0].raw_input['kwargs']} -> {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
