"""A tool that waits for a person's answer (LlamaIndex's human in the loop), for the agent tests.

No ``from __future__ import annotations`` here: FunctionTool finds the ``Context`` parameter it
fills in by its annotation, which must be the class, not a string.
"""

from llama_index.core.workflow import Context, HumanResponseEvent, InputRequiredEvent


async def delete_file(ctx: Context, path: str) -> str:
    """Delete a file, once a person has confirmed it."""
    answer = await ctx.wait_for_event(
        HumanResponseEvent, waiter_id=path, waiter_event=InputRequiredEvent(prefix="Sure?")
    )
    return f"deleted {path}" if answer.response == "yes" else "kept"
