"""Structured extraction with Jamba: text in, a validated pydantic object out.

Run it with one command::

    python examples/structured_extraction.py
    AI21_API_HOST=http://localhost:8000/v1 python examples/structured_extraction.py   # your server

With ``AI21_API_HOST`` set it talks to your Jamba server (its ``/v1`` URL: vLLM, llama.cpp,
LM Studio, Ollama); without it, it starts the emulator of a vLLM server (``ai21-emulator``, the
``[emulator]`` extra) in this process (no key, no network). The emulator
fills the schema from the words of the email, so the fields below come from it.

Three ways to get structure out of Jamba:

- guided decoding (the default on a server of your own): ``structured_predict`` (and
  ``stream_structured_predict``) sends the class's JSON schema as
  ``response_format={"type": "json_schema", ...}``, and the server can only write JSON that fits it;
- function calling (the default on AI21's API): the pydantic class is offered as a tool and the
  model's tool-call arguments are validated into it;
- JSON mode: ``AI21(pydantic_program_mode=PydanticProgramMode.LLM)`` puts the JSON schema in the
  prompt and asks for ``response_format={"type": "json_object"}`` where the server takes it
  (LM Studio does not), so the answer is JSON.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from llama_index.core.bridge.pydantic import BaseModel, Field
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.types import PydanticProgramMode

from llama_index.llms.ai21 import AI21


class Order(BaseModel):
    """A customer order."""

    product: str = Field(description="What was ordered")
    quantity: int = Field(description="How many items")
    unit_price: float = Field(description="Price per item in dollars")
    customer: str = Field(description="The customer's full name")
    city: str = Field(description="Delivery city")
    express: bool = Field(description="Whether express delivery was asked for")


EMAIL = (
    'Hi team, Dana Cohen here. I would like 3 "Jamba mug" items at 12.50 dollars each, '
    "delivered to Haifa by express delivery, please."
)
TEMPLATE = "Extract the order from this email:\n{email}"


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


def main() -> int:
    with jamba_server() as base_url:
        llm = AI21(base_url=base_url)
        # A new template per call: in JSON mode LlamaIndex attaches its schema-appending
        # output parser to the template object it is given.
        print("\n=== structured_predict (guided decoding: the schema constrains the answer) ===")
        order = llm.structured_predict(Order, PromptTemplate(TEMPLATE), email=EMAIL)
        print(repr(order))
        print(f"Total: ${order.quantity * order.unit_price:.2f}")

        print("\n=== as_structured_llm: a chat whose answer is an Order ===")
        structured = llm.as_structured_llm(Order)
        response = structured.chat([ChatMessage(role="user", content=TEMPLATE.format(email=EMAIL))])
        print(repr(response.raw))

        print("\n=== JSON mode (response_format json_object) ===")
        json_llm = AI21(base_url=base_url, pydantic_program_mode=PydanticProgramMode.LLM)
        print(repr(json_llm.structured_predict(Order, PromptTemplate(TEMPLATE), email=EMAIL)))

        print("\n=== streaming (JSON mode): partial objects fill in as the JSON arrives ===")
        shown = None
        for partial in json_llm.stream_structured_predict(
            Order, PromptTemplate(TEMPLATE), email=EMAIL
        ):
            if partial.model_dump() != shown:  # print each new state once
                shown = partial.model_dump()
                print(f"  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
