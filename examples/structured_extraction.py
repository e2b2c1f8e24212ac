"""Structured extraction with AI21: text in, a validated pydantic object out.

Run it with one command::

    python examples/structured_extraction.py

With ``AI21_API_KEY`` set it talks to AI21; without it, it starts the AI21 emulator
(``ai21-emulator``, the ``[emulator]`` extra) in this process (no key, no network). The emulator
fills the schema from the words of the email, so the fields below come from it.

Two ways to get structure out of AI21:

- function calling (the default): the pydantic class is offered as a tool and the model's
  tool-call arguments are validated into it;
- JSON mode: ``AI21(pydantic_program_mode=PydanticProgramMode.LLM)`` puts the JSON schema in the
  prompt and asks AI21 for ``response_format={"type": "json_object"}``, so the answer is JSON.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

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
def connection() -> Iterator[dict[str, Any]]:
    """AI21 settings for your key, or for an emulator started here if AI21_API_KEY is unset."""
    if os.environ.get("AI21_API_KEY"):
        yield {}
        return
    from ai21_emulator import Emulator

    with Emulator() as emulator:
        print(f"AI21_API_KEY is not set: using the built-in AI21 emulator at {emulator.base_url}.")
        yield {"api_key": emulator.api_key, "base_url": emulator.base_url}


def main() -> int:
    with connection() as settings:
        llm = AI21(model="jamba-mini", **settings)
        # A new template per call: in JSON mode LlamaIndex attaches its schema-appending
        # output parser to the template object it is given.
        print("\n=== structured_predict (function calling) ===")
        order = llm.structured_predict(Order, PromptTemplate(TEMPLATE), email=EMAIL)
        print(repr(order))
        print(f"Total: ${order.quantity * order.unit_price:.2f}")

        print("\n=== as_structured_llm: a chat whose answer is an Order ===")
        structured = llm.as_structured_llm(Order)
        response = structured.chat([ChatMessage(role="user", content=TEMPLATE.format(email=EMAIL))])
        print(repr(response.raw))

        print("\n=== JSON mode (response_format json_object) ===")
        json_llm = AI21(
            model="jamba-mini", pydantic_program_mode=PydanticProgramMode.LLM, **settings
        )
        print(repr(json_llm.structured_predict(Order, PromptTemplate(TEMPLATE), email=EMAIL)))

        print("\n=== streaming: partial objects fill in as the JSON arrives ===")
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
