"""The embedded model as a :class:`ChatBackend`: llama.cpp in one worker thread, chunks on the loop.

llama.cpp calls block, so every model call runs on a single dedicated thread that owns the
context; it hands each generated piece to the event loop with ``call_soon_threadsafe``, and the
loop turns pieces into chat-completion chunks (``chunk.py``). Requests take turns through
:class:`ModelQueue`. A consumer that stops (its client hung up and the run was cancelled, or the
server is shutting down) sets a stop flag that the thread checks after every token, so an
abandoned generation frees the model within one token.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llama_cpp import Llama, LogitsProcessorList
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from rejoinder.backends.base import NOT_ADMITTED, Admission
from rejoinder.backends.chunk import ChoiceDelta, Chunk, Usage, make_chunk
from rejoinder.backends.embedded_grammar import (
    DecodePlan,
    GrammarCache,
    parse_call,
    plan_decoding,
    tool_instructions,
)
from rejoinder.backends.embedded_guidance import GuidedLogits, TokenizerCache, parse_custom_call
from rejoinder.backends.embedded_prompt import (
    MIN_OUTPUT_TOKENS,
    Prompt,
    fit,
    input_texts,
    template_messages,
)
from rejoinder.backends.embedded_queue import ModelQueue
from rejoinder.backends.refusal import BackendRefusal
from rejoinder.backends.token_count import TokenCount
from rejoinder.errors import BackendError, InvalidRequest
from rejoinder.observability.logs import route_llama_logs

log = logging.getLogger(__name__)
route_llama_logs()  # llama.cpp's messages through logging (text or JSON), not printed raw

# The template SmolLM2's GGUF carries (ChatML); used when a model file has none.
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(eq=False)  # identity: jobs live in a set
class _Job:
    """One generation, as handed to the worker thread."""

    turns: list[dict[str, str]]
    plan: DecodePlan
    max_tokens: int | None
    temperature: float
    top_p: float
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Fitted:
    """The prompt fits: the model starts (the request is accepted)."""


@dataclass
class _Piece:
    text: str


@dataclass
class _End:
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int


class EmbeddedBackend:
    """SmolLM2 (or any chat GGUF) served in-process."""

    def __init__(self, model_path: Path, name: str, n_ctx: int, max_queue: int, threads: int | None):
        self.model_path = model_path
        self.name = name
        self.n_ctx = n_ctx
        self.threads = threads
        self.queue = ModelQueue(max_queue)
        self.grammars = GrammarCache()
        self.guidance_tokenizer = TokenizerCache()
        # Tokenizer only (no weights): counts a request's tokens on the loop (admission, truncation).
        self._vocab = Llama(str(model_path), vocab_only=True, verbose=False)
        self._formatter = _formatter(self._vocab)
        self.counter = EmbeddedCounter(self)
        self._llm: Llama | None = None  # loaded by the worker thread on first use
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rejoinder-embedded")
        self._jobs: set[_Job] = set()

    # -- admission, before the response starts ----------------------------------------------------

    def admit(self, request: Any, admission: Admission) -> Admission:
        """Refuse, as real 4xx answers, what can be known to fail before the response starts."""
        if request.logprobs:
            # llama.cpp keeps every position's logits only with logits_all, a scores buffer of
            # n_ctx x vocabulary floats (400 MB for SmolLM2 at 2048 tokens): not worth it here.
            raise InvalidRequest(f"Log probabilities (include 'message.output_text.logprobs') are not supported "
                                 f"by the embedded model '{self.name}'.", param="include", code="unsupported_value")
        self._check_input_length(request)
        self.queue.admit()
        return replace(admission, admitted=True)

    def _count(self, text: str) -> int:
        return len(self._vocab.tokenize(text.encode(), add_bos=False, special=False))

    def count_prompt(self, body: dict[str, Any]) -> int:
        """The prompt tokens of a chat-completions body, as ``stream`` would build the prompt."""
        turns = template_messages(body.get("messages") or [], tool_instructions(body))
        return len(self._tokenize(turns, self._vocab))

    def _check_input_length(self, request: Any) -> None:
        """A lower bound of the prompt (the request's own text) that already overflows is a 400."""
        texts = input_texts(request.input)
        if not texts:
            return
        kept = texts[-1:] if request.truncation == "auto" else texts
        needed = self._count(request.instructions or "") + sum(self._count(t) for t in kept)
        if needed + MIN_OUTPUT_TOKENS > self.n_ctx:
            raise InvalidRequest(
                f"Your input is at least {needed} tokens, more than the {self.n_ctx}-token context window of "
                f"model '{self.name}' leaves for it. Shorten the input"
                + ("." if request.truncation == "auto" else " or set truncation to 'auto'."),
                param="input", code="context_length_exceeded",
            )

    # -- streaming --------------------------------------------------------------------------

    async def stream(self, body: dict[str, Any], admission: Admission = NOT_ADMITTED) -> AsyncIterator[list[Chunk]]:
        try:
            plan = plan_decoding(body, self.grammars)
        except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
            log.info("schema not supported by the embedded model's grammar: %r", exc)
            raise BackendRefusal("The embedded model cannot constrain its output to this schema.", 400) from exc
        job = _Job(
            turns=template_messages(body.get("messages") or [], tool_instructions(body)),
            plan=plan,
            max_tokens=body.get("max_tokens") or body.get("max_completion_tokens"),
            temperature=float(body.get("temperature", 1.0)),
            top_p=float(body.get("top_p", 1.0)),
        )
        await self.queue.acquire(admission.admitted)
        self._jobs.add(job)
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[_Fitted | _Piece | _End | BackendError] = asyncio.Queue()

        def emit(item: _Fitted | _Piece | _End | BackendError) -> None:
            try:
                loop.call_soon_threadsafe(pieces.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                job.stop.set()

        try:
            worker = loop.run_in_executor(self._executor, self._generate, job, emit)
        except BaseException:
            self._jobs.discard(job)
            self.queue.release()
            raise

        def done(_f: asyncio.Future[None]) -> None:  # only once the thread has let go of the model
            self._jobs.discard(job)
            self.queue.release()

        worker.add_done_callback(done)
        try:
            reader = _Reader(plan, body.get("model") or self.name)
            while True:
                item = await pieces.get()
                if isinstance(item, BackendError):
                    raise item
                if isinstance(item, _Fitted):  # accepted: a too-long prompt is refused before this
                    yield [reader.chunk({"role": "assistant", "content": ""})]
                    continue
                chunks = reader.feed(item)
                if chunks:
                    yield chunks
                if isinstance(item, _End):
                    return
        finally:
            job.stop.set()

    # -- the worker thread ------------------------------------------------------------------

    def _model(self) -> Llama:
        if self._llm is None:
            started = time.monotonic()
            self._llm = Llama(str(self.model_path), n_ctx=self.n_ctx, n_threads=self.threads, verbose=False)
            log.info("embedded model %s loaded in %.2fs", self.model_path.name, time.monotonic() - started)
        return self._llm

    def _tokenize(self, turns: list[dict[str, str]], llm: Llama) -> list[int]:
        prompt = self._formatter(messages=turns).prompt  # type: ignore[arg-type]
        return llm.tokenize(prompt.encode(), add_bos=False, special=True)

    def _generate(self, job: _Job, emit: Callable[[Any], None]) -> None:
        """Runs on the worker thread: fit the prompt, then emit every piece the model makes."""
        try:
            if job.stop.is_set():
                return
            llm = self._model()
            prompt: Prompt = fit(job.turns, lambda turns: self._tokenize(turns, llm), self.n_ctx, job.max_tokens)
            emit(_Fitted())
            cached = _common_prefix(llm.input_ids[: llm.n_tokens].tolist(), prompt.tokens)
            finish, produced = "stop", 0
            guided = None
            if job.plan.guidance is not None:
                guided = LogitsProcessorList([GuidedLogits(self.guidance_tokenizer.get(llm), job.plan.guidance,
                                                           len(prompt.tokens), llm.n_vocab())])
            stream: Any = llm.create_completion(  # with stream=True: an iterator of chunk dicts
                prompt.tokens, max_tokens=prompt.max_tokens, temperature=job.temperature, top_p=job.top_p,
                grammar=job.plan.grammar, logits_processor=guided, stream=True,
            )
            try:
                for part in stream:
                    if job.stop.is_set():
                        return
                    choice = part["choices"][0]
                    if choice["text"]:
                        produced += 1
                        emit(_Piece(choice["text"]))
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
            finally:
                stream.close()
            emit(_End(finish, len(prompt.tokens), produced, min(cached, len(prompt.tokens) - 1)))
        except BackendError as exc:
            emit(exc)
        except Exception:
            log.exception("embedded model generation failed")
            emit(BackendError("The embedded model failed while generating.", "server_error"))

    async def aclose(self) -> None:
        """Stop running generations and free the model once the thread is idle."""
        for job in list(self._jobs):
            job.stop.set()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._free)
        self._executor.shutdown(wait=False)

    def _free(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None
        self._vocab.close()


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _formatter(llm: Llama) -> Jinja2ChatFormatter:
    """The model file's own chat template (ChatML when it has none)."""
    template = llm.metadata.get("tokenizer.chat_template") or CHATML
    special = [llm.detokenize([t], special=True).decode(errors="ignore") if t >= 0 else ""
               for t in (llm.token_eos(), llm.token_bos())]
    return Jinja2ChatFormatter(template, eos_token=special[0], bos_token=special[1])


class EmbeddedCounter:
    """``token_count.TokenCounter`` for the embedded model: its tokenizer and template, in process."""

    def __init__(self, backend: EmbeddedBackend):
        self.backend = backend

    async def count(self, body: dict[str, Any]) -> TokenCount:
        return TokenCount(self.backend.count_prompt(body), exact=True)


class _Reader:
    """Turns the model's pieces into chat chunks according to the decoding plan."""

    def __init__(self, plan: DecodePlan, model: str):
        self.plan = plan
        self.model = model
        self.id = "chatcmpl-" + uuid.uuid4().hex
        self.created = int(time.time())
        self.mode = plan.mode if not plan.buffer_all else "call"
        self.buffer = ""

    def chunk(self, delta: ChoiceDelta, finish: str | None = None) -> Chunk:
        return make_chunk(self.id, self.created, self.model, delta, finish)

    def feed(self, item: _Piece | _End) -> list[Chunk]:
        if isinstance(item, _End):
            return self._end(item)
        text = item.text
        if self.mode == "auto":  # the grammar lets a call open only with "{" (or "<"); text never does
            self.mode = "call" if text.lstrip().startswith(("{", "<") if self.plan.customs else "{") else "text"
        if self.mode == "call":
            self.buffer += text
            return []
        return [self.chunk({"content": text})]

    def _end(self, end: _End) -> list[Chunk]:
        out: list[Chunk] = []
        finish = end.finish_reason
        if self.mode == "call" and self.buffer:
            call = parse_call(self.buffer, self.plan.tools) or parse_custom_call(self.buffer, self.plan.customs)
            if call is not None:
                name, arguments = call
                out.append(self.chunk({"tool_calls": [{"index": 0, "id": "call_" + uuid.uuid4().hex[:24],
                                                        "type": "function",
                                                        "function": {"name": name, "arguments": arguments}}]}))
                if finish != "length":  # a custom call cut short still parses: it stays incomplete
                    finish = "tool_calls"
            elif self.plan.buffer_all and finish != "length":
                out.append(self.chunk({"content": self.buffer}))  # a JSON answer, not a call
            elif finish != "length":
                raise BackendError("The embedded model produced a malformed tool call.", "server_error")
        out.append(self.chunk({}, finish))
        usage: Usage = {"prompt_tokens": end.prompt_tokens, "completion_tokens": end.completion_tokens,
                        "total_tokens": end.prompt_tokens + end.completion_tokens,
                        "prompt_tokens_details": {"cached_tokens": max(end.cached_tokens, 0)}}
        out.append(make_chunk(self.id, self.created, self.model, usage=usage))
        return out
