"""Shared test setup: no test may reach a real host, and no test sees the caller's AI21 env.

The emulator fixtures (``ai21_emulator``, ``ai21_emulator_server``) come from the emulator's
pytest plugin, enabled here with ``pytest_plugins`` exactly as users enable it (it is opt-in).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21, _retry

pytest_plugins = ["ai21_emulator.pytest_plugin"]

# Hypothesis's 200 ms deadline per example is a wall-clock bound: on a loaded two-core machine
# it fails tests that are correct. Example counts bound the work instead.
settings.register_profile("local", deadline=None)
settings.load_profile("local")
# CI must be reproducible: the same examples every run (locally they vary, to find more).
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

# ``slow`` (``./dev test -m "not slow"`` is the inner loop, README "Development"): whole modules
# that start subprocesses, build or run the docs, or run the notebook, examples or benchmarks;
# single tests are marked where they are defined.
SLOW_MODULES = {
    "test_benchmarks_smoke.py": "a benchmark run against every contender",
    "test_demo.py": "the demo in a subprocess",
    "test_examples.py": "each example script in a subprocess",
    "test_notebook.py": "the notebook, once in a fresh venv from the built wheel",
    "test_differential.py": "our transports beside plain httpx on misbehaving servers (real waits)",
}
# Docs tests that build the site (the ``site`` fixture) or run the pages' samples.
SLOW_FIXTURES = {"site", "emulator_env", "docs_vllm_emulator"}
# Single tests (all their cases) kept out of the inner loop, which must stay under 40 s on two
# cores: load tests (thousands of calls), tests that read tens of MiB or wait out real
# deadlines, and wide matrices of hostile answers. ./dev test and CI run them all.
SLOW_TESTS = {
    # vLLM's --help=all and registries, in its own venv (vLLM imports for seconds)
    "test_every_vllm_command_uses_flags_and_values_vllm_has",
    "test_two_thousand_asyncio_runs_keep_no_loop_and_stay_within_40_mib",
    "test_hundreds_of_concurrent_tasks_with_injected_faults",
    # property-based: hypothesis writes a hundred discovery answers per server kind
    "test_any_answer_is_read_without_raising",
    # real deadlines and waits
    "test_a_discovery_answer_sent_a_byte_at_a_time_ends_at_its_deadline",
    "test_a_real_wait_is_slept",
    "test_answers_on_one_kept_alive_connection_leave_nothing_behind",
    "test_a_server_not_yet_listening_is_asked_again_once_it_is",  # starts one mid-test
    "test_a_404_on_a_url_taken_for_ai21s_api_names_both_roots",
    # tens of MiB sent and read
    "test_a_200_answer_larger_than_the_limit_is_not_read_further",
    "test_an_answer_of_exactly_the_limit_is_read",
    "test_a_line_that_never_ends_is_refused_at_the_limit",
    "test_each_streamed_tool_call_is_built_once_per_event_that_touches_it",
    # wide matrices: every hostile answer over every method
    "test_an_answer_in_a_coding_the_request_did_not_accept_is_not_read",
    "test_a_tool_call_cut_at_max_tokens_says_so",
    "test_unreadable_jamba_text_names_the_server_flags",
    "test_unreadable_tool_call_text_names_the_server_flags",
    "test_a_finish_reason_that_is_not_a_string_is_malformed_in_a_whole_answer",
    "test_a_token_count_that_is_not_a_non_negative_int_is_malformed",
    "test_retry_after_is_honoured_up_to_two_minutes",
    # secrets over every surface, a refused connection and read timeouts included
    "test_no_secret_in_copies_instrumentation_warnings_or_transport_errors",
    # OpenAILike as the oracle: openai-python's first request loads its resources (0.4 s)
    "test_extra_body_reaches_the_server_as_openai_like_sends_it",
    "test_strict_tools_are_the_ones_openai_like_sends",
    "test_llamaindexs_document_context_extractor_runs_with_its_extra_headers",  # 0.3 s
    # two dozen chat turns, until a small window's memory is full (0.3-0.6 s a case)
    "test_a_chat_engine_on_a_small_context_holds_a_long_conversation",
    # many callers leaving or cancelled at once; an agent's whole workflow
    "test_threads_sharing_one_instance_while_some_leave_their_streams",
    "test_an_agent_run_cancelled_mid_stream_closes_the_stream",
    "test_agent_runs_at_once_on_one_instance_keep_their_own_calls_and_reasoning",  # 0.26 s
    "test_an_agents_memory_is_sized_from_the_window_the_server_reports",  # its own server
    "test_the_0_8_readmes_examples_run",  # every example, an agent's workflow among them (0.5 s)
    "test_a_function_agent_run_pairs_every_llm_event_and_counts_the_servers_tokens",  # 0.16 s
    # IngestionPipeline.run(num_workers=2): spawned workers (fresh interpreters), 1-2 s a case
    "test_an_ingestion_pipeline_in_worker_processes",
    "test_a_batch_eval_runner_sends_its_evaluations_at_once",  # answers held 0.5 s
}


# Wide matrices of which the inner loop runs the first case only (one status, one method).
SLOW_BEYOND_FIRST = {
    "test_the_credentials_of_a_proxy_from_the_environment_are_masked_when_it_quotes_them",  # 12
    "test_token_counting_handler_takes_the_servers_counts",  # 28 cases
    "test_a_failed_call_ends_its_span_and_its_callback_event_with_the_error",  # 12 cases
    "test_a_per_call_keyword_close_to_a_known_one_is_warned_about_and_still_sent",
    "test_a_bare_401_or_404_from_your_server_gets_a_note_saying_what_to_check",
    "test_sdk_errors_reach_the_caller_unchanged",
    "test_transient_statuses_are_retried",
    "test_client_errors_are_never_retried",
    "test_a_secret_the_server_quotes_back_is_masked",
    "test_a_credential_header_the_server_quotes_back_is_masked",
    "test_the_basic_auth_of_the_users_own_client_is_masked",
    "test_timeout_bounds_each_attempt",
    "test_stream_stalled_mid_answer_raises_within_the_timeout",
    "test_a_stream_with_no_answer_ends_with_a_read_timeout",  # 6 cases (tests/transport)
    "test_an_answer_that_stops_mid_way_is_an_interrupted_stream",
    "test_before_the_first_chunk_it_is_retried_as_a_silent_read_is",
    "test_a_whole_answer_sent_a_byte_at_a_time_ends_with_a_read_timeout",
    "test_a_whole_answer_that_comes_in_time_is_read",
    # measured on a machine where the inner loop took 42-46 s (2026-12-06): the widest
    # matrices left, 0.4-1.0 s each in all
    "test_a_connection_lost_after_its_answers_logs_nothing",
    "test_the_servers_token_details_of_a_generated_answer",
    "test_structured_output_returns_a_validated_object",
    "test_a_copy_of_an_instance_given_your_clients_uses_them",
    "test_validation_errors_are_400_bad_request",
    "test_agent_loop_sends_tool_calls_and_results_back",
    "test_logprobs_a_server_does_not_send_are_said_missing_once",
    "test_structured_predict_names_max_tokens",
    "test_each_status_is_retried_or_not_as_the_table_says",
    "test_jamba_tool_calls_text_becomes_tool_calls",
    "test_a_second_call_on_the_same_stream_index_is_malformed",
    "test_later_fragments_that_name_the_same_call_or_none_build_one_call",
    "test_credentials_go_through_the_users_own_clients_too",
    "test_the_first_async_call_asks_the_server_off_the_event_loop",
    "test_a_lone_surrogate_is_refused_before_any_request",
    "test_a_404_names_the_url_in_a_note_and_keeps_the_sdks_error",
    # what code written for OpenAILike passes, over every method (tests/test_openai_parity.py)
    "test_extra_body_entries_are_sent_as_request_fields_by_every_method",
    "test_extra_headers_are_sent_as_headers_of_that_request_by_every_method",
    "test_an_option_of_openai_pythons_create_in_additional_kwargs_is_refused",
    "test_stream_options_in_additional_kwargs_leave_calls_that_do_not_stream_alone",
    "test_an_option_of_openai_pythons_create_is_refused_before_any_request",
    "test_strict_marks_every_tool_strict_as_openai_does",
    "test_completion_to_prompt_shapes_the_prompt_unless_formatted",
    "test_your_clients_query_goes_with_every_request",
    # hostile answers and caller's headers (about 0.13 s each: bodies past 1 MiB)
    "test_a_logprob_no_float_holds_is_malformed",
    "test_a_header_that_frames_the_body_is_refused_before_any_request",
    # a ReAct agent's loop through the emulator's answers (about 0.1 s each)
    "test_a_react_agent_takes_one_action_a_step_then_answers",
    # a three-turn agent loop per kind of server (about 0.15 s each)
    "test_a_streamed_function_agent_loop_keeps_reasoning_calls_errors_and_counts",
    # two agent runs (four requests) per kind of server
    "test_a_conversation_over_two_runs_keeps_its_turns_and_only_this_loops_reasoning",
    "test_an_agent_paused_for_a_person_resumes_from_its_saved_context_with_its_tool_call_turn",
    "test_an_agents_output_cls_is_asked_for_the_way_each_server_takes_it",
    # every method, every way of stopping early (gc.collect() and wait_for's 0.2 s among them)
    "test_a_sync_stream_left_mid_answer_closes_its_connection",
    "test_an_async_stream_left_mid_answer_closes_its_connection_quietly",
    "test_a_cancelled_call_raises_the_callers_exception_and_nothing_is_retried",
    "test_ctrl_c_in_a_sync_call_propagates_and_nothing_is_retried",
    # structured output: every server and mode, streamed or not (tests/test_structured.py)
    "test_a_tool_choice_that_lets_the_model_call_the_tool_is_sent",
    "test_a_tool_choice_that_rules_the_call_out_is_refused_before_any_request",
    "test_an_output_class_that_cannot_be_sent_is_refused_before_any_request",
    "test_a_class_of_every_kind_of_field_is_sent_whole_and_read_back",
    "test_the_callers_template_and_llm_kwargs_are_left_as_they_were",
    "test_a_structured_stream_broken_mid_answer_raises_stream_interrupted",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    first_seen: set[str] = set()
    for item in items:
        module = item.path.name
        fixtures = set(getattr(item, "fixturenames", ()))
        name = getattr(item, "originalname", item.name)
        later_case = name in SLOW_BEYOND_FIRST and name in first_seen
        first_seen.add(name)
        if (
            module in SLOW_MODULES
            or (module == "test_docs.py" and fixtures & SLOW_FIXTURES)
            or name in SLOW_TESTS
            or later_case
        ):
            item.add_marker(pytest.mark.slow)


_real_getaddrinfo = socket.getaddrinfo


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host in (None, "localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_loopback(host):
        raise RuntimeError(
            f"test tried to reach {host!r}: tests talk only to the local AI21 emulator"
        )
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    """Every name lookup for a non-loopback host (api.ai21.com included) fails at once."""
    socket.getaddrinfo = _guarded_getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = _real_getaddrinfo


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AI21_API_KEY", "AI21_API_HOST", "AI21_NUM_RETRIES", "AI21_TIMEOUT_SEC"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator(ai21_emulator: Emulator) -> Emulator:
    """The session's emulator, reset: no requests recorded, no faults queued."""
    return ai21_emulator


@pytest.fixture
def make_llm(emulator: Emulator) -> Callable[..., AI21]:
    """Build an ``AI21`` pointed at the emulator; keyword arguments override the defaults."""

    def make(**kwargs: Any) -> AI21:
        kwargs.setdefault("api_key", emulator.api_key)
        kwargs.setdefault("base_url", emulator.base_url)
        return AI21(**kwargs)

    return make


@pytest.fixture
def llm(make_llm: Callable[..., AI21]) -> AI21:
    # No retries by default, so a fault shows up as one request in the records.
    return make_llm(max_retries=0)


@pytest.fixture
def vllm(ai21_emulator_vllm: Emulator) -> Emulator:
    """The session's vLLM-flavoured emulator, reset."""
    return ai21_emulator_vllm


@pytest.fixture
def make_local(vllm: Emulator) -> Callable[..., AI21]:
    """Build an ``AI21`` on the vLLM-flavoured emulator, serving Jamba2 3B by default, with no
    retries; keyword arguments override (modules that need another default define their own)."""

    def make(**kwargs: Any) -> AI21:
        kwargs.setdefault("model", "ai21labs/AI21-Jamba2-3B")
        return AI21(base_url=vllm.base_url, max_retries=0, **kwargs)

    return make


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait between attempts, recorded instead of slept (sync and async)."""
    recorded: list[float] = []

    async def record(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(_retry, "sleep", recorded.append)
    monkeypatch.setattr(_retry, "async_sleep", record)
    return recorded
