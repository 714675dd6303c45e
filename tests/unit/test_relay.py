"""The relay's pure parts (``llm_manager.gateway.relay``): the body sent upstream for a stream, usage read from a whole
answer, and SSE relayed event by event (boundaries, CRLF framing, usage sniffed or hidden, ``[DONE]``).

Input in, output out: no server, no socket. ``relay_stream`` is fed its chunks by an async generator and writes
into a list.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from llm_manager.gateway.relay import (
    Outcome,
    _filter_event,
    prepare_stream_body,
    relay_stream,
    usage_from_body,
)

USAGE_JSON = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def raw_of(body: dict[str, Any], **dumps: Any) -> bytes:
    return json.dumps(body, **dumps).encode()


# ---------------------------------------------------------------- prepare_stream_body


def test_usage_is_asked_for_by_a_splice_that_keeps_the_clients_bytes() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    raw = b'{"model":  "m", "messages": [{"role": "user", "content": "hi"}],\n "stream": true}'
    sent, wanted = prepare_stream_body(body, raw)
    assert wanted is False
    assert sent == b'{"stream_options":{"include_usage":true},' + raw[1:]  # the rest byte for byte
    assert json.loads(sent) == {**body, "stream_options": {"include_usage": True}}


def test_a_client_that_asked_for_usage_gets_its_body_untouched() -> None:
    body = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    raw = raw_of(body, indent=2)
    sent, wanted = prepare_stream_body(body, raw)
    assert sent is raw and wanted is True


@pytest.mark.parametrize("opts", [{"include_usage": False}, {"include_usage": False, "continuous_usage_stats": 1},
                                  {}, None, "yes", 1, []])
def test_stream_options_present_without_usage_are_rewritten_keeping_the_rest(opts: Any) -> None:
    body = {"model": "m", "stream": True, "stream_options": opts}
    sent, wanted = prepare_stream_body(body, raw_of(body))
    assert wanted is False
    kept = opts if isinstance(opts, dict) else {}
    assert json.loads(sent) == {**body, "stream_options": {**kept, "include_usage": True}}


@pytest.mark.parametrize("lead", [b" ", b"\n", b"\r\n\t  "])
def test_a_body_with_leading_whitespace_is_spliced_after_its_brace(lead: bytes) -> None:
    body = {"model": "m", "stream": True}
    raw = lead + raw_of(body)
    sent, wanted = prepare_stream_body(body, raw)
    assert not wanted and sent.startswith(b'{"stream_options":{"include_usage":true},')
    assert json.loads(sent) == {**body, "stream_options": {"include_usage": True}}


def test_a_body_with_something_else_before_its_brace_is_re_serialised() -> None:
    body = {"model": "m", "stream": True}
    sent, wanted = prepare_stream_body(body, b"\xef\xbb\xbf" + raw_of(body))  # a UTF-8 byte-order mark
    assert not wanted and json.loads(sent) == {**body, "stream_options": {"include_usage": True}}


def test_the_words_stream_options_inside_a_message_do_not_count_as_the_key() -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": '"stream_options": {}'}]}
    sent, wanted = prepare_stream_body(body, raw_of(body))
    assert not wanted and json.loads(sent) == {**body, "stream_options": {"include_usage": True}}


# ---------------------------------------------------------------- usage_from_body


def read(data: bytes) -> Outcome:
    out = Outcome()
    usage_from_body(data, out)
    return out


def chat_answer(content: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}], **extra}


def test_usage_at_the_end_of_an_answer_is_read() -> None:
    out = read(raw_of(chat_answer(usage=USAGE_JSON)))
    assert (out.prompt_tokens, out.completion_tokens) == (11, 7)


def test_usage_anywhere_and_with_spaces_is_read() -> None:
    data = b'{"usage" :  {"prompt_tokens": 3, "completion_tokens": 4}, "choices": [], "timings": {"n": 1}}'
    assert (read(data).prompt_tokens, read(data).completion_tokens) == (3, 4)


def test_usage_followed_by_llama_server_timings_is_read() -> None:
    out = read(raw_of(chat_answer(usage=USAGE_JSON, timings={"predicted_n": 7, "prompt_n": 11})))
    assert (out.prompt_tokens, out.completion_tokens) == (11, 7)


def test_completion_tokens_come_from_the_total_when_missing() -> None:
    out = read(raw_of(chat_answer(usage={"prompt_tokens": 5, "total_tokens": 12})))
    assert (out.prompt_tokens, out.completion_tokens) == (5, 7)
    out = read(raw_of({"object": "list", "data": [], "usage": {"prompt_tokens": 8, "total_tokens": 8}}))
    assert (out.prompt_tokens, out.completion_tokens) == (8, 0)  # embeddings: no completion


def test_a_usage_object_longer_than_the_window_is_read_from_the_whole_answer() -> None:
    usage = {"prompt_tokens_details": {"note": "x" * 5000}, "prompt_tokens": 9, "completion_tokens": 2}
    out = read(raw_of(chat_answer(usage=usage)))
    assert (out.prompt_tokens, out.completion_tokens) == (9, 2)


def test_the_last_usage_wins_over_one_inside_a_nested_object() -> None:
    answer = chat_answer(usage=USAGE_JSON)
    answer["choices"][0]["message"]["tool_calls"] = [{"usage": {"prompt_tokens": 99, "completion_tokens": 99}}]
    out = read(raw_of({k: answer[k] for k in ("choices", "usage")}))
    assert (out.prompt_tokens, out.completion_tokens) == (11, 7)


def test_an_answer_without_usage_leaves_its_length_for_an_estimate() -> None:
    data = raw_of(chat_answer('he said "usage" twice: usage'))  # quoted inside a string, so escaped: no key
    out = read(data)
    assert (out.prompt_tokens, out.completion_tokens, out.text_chars) == (None, None, len(data))


def test_an_answer_that_is_not_json_leaves_its_length_for_an_estimate() -> None:
    data = b'{"usage": {"prompt_tokens": 3, ' + b"x" * 10
    out = read(data)
    assert (out.prompt_tokens, out.text_chars) == (None, len(data))


@pytest.mark.parametrize("answer", [
    chat_answer(usage=None),
    chat_answer(usage={"completion_tokens": 5}),
    chat_answer("usage"),
], ids=["usage-null", "no-prompt-tokens", "content-is-the-word"])
def test_an_answer_whose_usage_cannot_be_read_leaves_its_length_for_an_estimate(answer: dict[str, Any]) -> None:
    data = raw_of(answer)
    out = read(data)
    assert (out.prompt_tokens, out.text_chars) == (None, len(data))


# ---------------------------------------------------------------- SSE: relay_stream and _filter_event


def event(payload: Any, sep: bytes = b"\n\n") -> bytes:
    return b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + sep


def chunk(content: str | None = None, finish: str | None = None, usage: dict | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": {} if content is None else {"content": content},
                                        "finish_reason": finish}]}
    if usage is not None:
        obj["usage"] = usage
    return obj


USAGE_ONLY = {"object": "chat.completion.chunk", "choices": [], "usage": USAGE_JSON}


def sse(sep: bytes = b"\n\n", usage_only: bool = True) -> list[bytes]:
    """A llama-server-shaped stream: two tokens, the finish chunk, the usage-only chunk, [DONE]."""
    events = [event(chunk("Hel"), sep), event(chunk("lo"), sep), event(chunk(finish="stop"), sep)]
    if usage_only:
        events.append(event(USAGE_ONLY, sep))
    return [*events, event(b"[DONE]", sep)]


async def relay(pieces: list[bytes], hide_usage: bool = False) -> tuple[list[bytes], Outcome]:
    written: list[bytes] = []

    async def feed():
        for p in pieces:
            yield p

    async def write(data: bytes) -> None:
        written.append(data)

    out = Outcome()
    await relay_stream(feed(), write, out, hide_usage)
    return written, out


def split_every(data: bytes, n: int) -> list[bytes]:
    return [data[i:i + n] for i in range(0, len(data), n)]


async def test_one_event_per_read_is_relayed_as_it_comes() -> None:
    events = sse()
    written, out = await relay(events)
    assert written == events  # one write per event, bytes unchanged
    assert (out.prompt_tokens, out.completion_tokens) == (11, 7)
    assert out.done and out.first_byte is not None
    assert out.stream_events == 4  # data events, [DONE] not counted


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
async def test_events_split_across_reads_are_written_only_whole(size: int) -> None:
    events = sse()
    written, out = await relay(split_every(b"".join(events), size))
    assert b"".join(written) == b"".join(events)
    assert all(w.endswith(b"\n\n") for w in written)  # never half an event
    assert (out.prompt_tokens, out.completion_tokens, out.stream_events, out.done) == (11, 7, 4, True)


async def test_several_events_and_a_partial_one_in_one_read() -> None:
    events = sse()
    whole = b"".join(events)
    cut = len(events[0]) + len(events[1]) + 5
    written, _ = await relay([whole[:cut], whole[cut:]])
    assert written == [events[0] + events[1], b"".join(events[2:])]


async def test_usage_split_across_reads_is_read_once_whole() -> None:
    usage_event = event(chunk(finish="stop", usage=USAGE_JSON))
    mid = usage_event.index(b'"usage"') + 4
    pieces = [event(chunk("a")) + usage_event[:mid], usage_event[mid:], event(b"[DONE]")]
    written, out = await relay(pieces)
    assert b"".join(written) == b"".join(pieces)
    assert (out.prompt_tokens, out.completion_tokens) == (11, 7)


async def test_usage_the_client_did_not_ask_for_is_hidden() -> None:
    events = sse()
    written, out = await relay(events, hide_usage=True)
    assert written == [e for e in events if e != event(USAGE_ONLY)]  # the usage-only chunk is dropped
    assert (out.prompt_tokens, out.completion_tokens, out.done) == (11, 7, True)


async def test_usage_on_a_chunk_with_choices_is_removed_from_it_when_hidden() -> None:
    finish = chunk(finish="stop", usage=USAGE_JSON)
    written, out = await relay([event(chunk("a")), event(finish), event(b"[DONE]")], hide_usage=True)
    assert written[0] == event(chunk("a")) and written[-1] == event(b"[DONE]")
    sent = json.loads(written[1][len(b"data: "):])
    assert sent == {k: v for k, v in finish.items() if k != "usage"} and written[1].endswith(b"\n\n")
    assert (out.prompt_tokens, out.completion_tokens) == (11, 7)


async def test_usage_kept_when_the_client_asked_for_it() -> None:
    events = sse()
    written, out = await relay(events, hide_usage=False)
    assert written == events and out.prompt_tokens == 11


@pytest.mark.parametrize("hide", [False, True])
@pytest.mark.parametrize("size", [None, 1, 3, 5])
async def test_crlf_framed_events(hide: bool, size: int | None) -> None:
    events = sse(b"\r\n\r\n")
    pieces = events if size is None else split_every(b"".join(events), size)
    written, out = await relay(pieces, hide_usage=hide)
    expected = [e for e in events if not (hide and e == event(USAGE_ONLY, b"\r\n\r\n"))]
    assert b"".join(written) == b"".join(expected)
    assert all(w.endswith(b"\r\n\r\n") for w in written)
    assert (out.prompt_tokens, out.completion_tokens, out.done, out.stream_events) == (11, 7, True, 4)


async def test_done_is_seen_only_once_it_is_sent_and_is_no_content_event() -> None:
    events = sse(usage_only=False)
    written, out = await relay(events[:-1])
    assert not out.done and out.stream_events == 3  # no [DONE]: every data event counts
    written, out = await relay(events)
    assert out.done and out.stream_events == 3 and written[-1] == event(b"[DONE]")


async def test_done_followed_by_stray_newlines_still_counts_as_the_end() -> None:
    written, out = await relay([*sse(usage_only=False), b"\n"])
    assert out.done and out.stream_events == 3 and b"".join(written).endswith(b"data: [DONE]\n\n")


async def test_a_last_event_without_a_blank_line_is_written_at_the_end() -> None:
    written, out = await relay([event(chunk("a")), b"data: [DONE]"])
    assert written == [event(chunk("a")), b"data: [DONE]"]
    assert out.stream_events == 1
    written, out = await relay([event(chunk("a")), b"\n  "])  # only whitespace left: nothing more is written
    assert written == [event(chunk("a"))]


async def test_comments_pass_through_and_are_not_events() -> None:
    pieces = [b": keep-alive\n\n", event(chunk("a")), b": ping\n\n", event(b"[DONE]")]
    written, out = await relay(pieces)
    assert written == pieces and out.stream_events == 1 and out.done


async def test_an_empty_stream_writes_nothing() -> None:
    written, out = await relay([])
    assert written == [] and out.first_byte is None and not out.done and out.stream_events == 0


async def test_an_answer_hidden_whole_writes_nothing_and_sets_no_first_byte() -> None:
    written, out = await relay([event(USAGE_ONLY)], hide_usage=True)
    assert written == [] and out.first_byte is None and out.prompt_tokens == 11


async def test_usage_in_an_event_with_an_event_field_is_read_and_hidden() -> None:
    usage_event = b"event: message\n" + event(USAGE_ONLY)
    written, out = await relay([event(chunk("a")), usage_event, event(b"[DONE]")], hide_usage=True)
    assert out.prompt_tokens == 11
    assert written == [event(chunk("a")), event(b"[DONE]")]


def test_filter_event_reads_usage_and_keeps_or_drops_the_event() -> None:
    out = Outcome()
    plain = event(chunk("a"))
    assert _filter_event(plain, out, hide_usage=True) is plain and out.prompt_tokens is None
    assert _filter_event(event(USAGE_ONLY), out, hide_usage=False) == event(USAGE_ONLY)
    assert (out.prompt_tokens, out.completion_tokens) == (11, 7)
    assert _filter_event(event(USAGE_ONLY), Outcome(), hide_usage=True) is None
    crlf = _filter_event(event(chunk(finish="stop", usage=USAGE_JSON), b"\r\n\r\n"), Outcome(), True, b"\r\n\r\n")
    assert crlf is not None and crlf.endswith(b"\r\n\r\n") and b"usage" not in crlf
    assert json.loads(crlf[len(b"data: "):]) == chunk(finish="stop")


@pytest.mark.parametrize("raw", [b'data:{"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}\n\n',
                                 b'data:  {"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1}}  \n\n'])
def test_filter_event_accepts_data_without_or_with_more_space(raw: bytes) -> None:
    out = Outcome()
    assert _filter_event(raw, out, hide_usage=True) is None and (out.prompt_tokens, out.completion_tokens) == (2, 1)


@pytest.mark.parametrize("raw", [b'data: {"usage": {"prompt_tokens": 2,\n\n', b': a comment about "usage"\n\n',
                                 b'data: {"choices": [], "usage": null}\n\n'])
def test_filter_event_passes_what_it_cannot_read(raw: bytes) -> None:
    out = Outcome()
    assert _filter_event(raw, out, hide_usage=True) == raw and out.prompt_tokens is None
