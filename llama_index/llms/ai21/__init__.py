"""AI21 Labs models (Jamba, legacy Jurassic-2) for LlamaIndex."""

from llama_index.llms.ai21.base import AI21
from llama_index.llms.ai21.errors import (
    AI21ResponseError,
    MalformedResponseError,
    StreamInterruptedError,
)

__all__ = ["AI21", "AI21ResponseError", "MalformedResponseError", "StreamInterruptedError"]
