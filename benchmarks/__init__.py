"""Benchmarks of llama-index-llms-ai21 against the raw ai21 SDK, plain httpx, the published
0.8.0 package and the framework's own floor, all talking to the emulator in another process.

Run ``python -m benchmarks`` (or ``./dev bench``); ``benchmarks/README.md`` explains the numbers.
Nothing is imported here: ``published_worker.py`` imports this package from another virtualenv.
"""
