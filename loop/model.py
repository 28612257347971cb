"""The model client: Chat Completions with strict JSON schemas, answers validated again here.

The openai client already retries rate limits, server errors, timeouts and dropped connections
with backoff (honouring Retry-After); this layer adds bounded retries for answers that are not
valid JSON or break the schema, and keeps the call and token counts a run reports.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from loop.cell_values import valid_unicode
from loop.config import Settings
from loop.errors import RunFailure, UsageError
from loop.redact import mask_url

# Answers that are not JSON or break the schema are asked again this many extra times.
FORMAT_RETRIES = 2
_MESSAGE_OVERHEAD_TOKENS = 8


CHARS_PER_TOKEN = 3


def estimate_tokens(text: str) -> int:
    """A deliberately high estimate (about 3 characters a token) that needs no tokenizer download."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_messages(messages: list[dict]) -> int:
    return sum(estimate_tokens(json.dumps(m, ensure_ascii=False) if not isinstance(m.get("content"), str) else m["content"])
               + _MESSAGE_OVERHEAD_TOKENS for m in messages)


def response_format(name: str, answer_type: type[BaseModel]) -> dict:
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "strict": True, "schema": answer_type.model_json_schema()},
    }


@dataclass
class Usage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class ModelClient:
    def __init__(self, settings: Settings, client=None):
        self.model = settings.model
        self.max_input_tokens = settings.max_input_tokens
        self.usage = Usage()
        self._lock = threading.Lock()
        self._client = client or _make_client(settings)

    def ask(self, name: str, answer_type: type[BaseModel], messages: list[dict]) -> BaseModel:
        """One structured request; returns the validated answer or raises RunFailure."""
        estimate = estimate_messages(messages)
        if estimate > self.max_input_tokens:
            raise UsageError(f"The {name} request needs about {estimate} tokens, more than "
                             f"LOOP_MAX_INPUT_TOKENS={self.max_input_tokens}; raise it, or shorten the prompt.")
        problem = ""
        for _ in range(1 + FORMAT_RETRIES):
            completion = self._create(messages, estimate, response_format=response_format(name, answer_type))
            choice = completion.choices[0] if completion.choices else None
            content = getattr(choice.message, "content", None) if choice else None
            if not content:
                problem = "an empty answer"
                continue
            try:
                return answer_type.model_validate(valid_unicode(json.loads(_strip_fences(content))))
            except ValidationError as error:
                count = error.error_count()
                problem = f"an answer that breaks the {name} schema ({count} error{'s' if count != 1 else ''})"
            except ValueError:
                problem = "an answer that is not JSON"
        raise RunFailure(
            f"The model gave {problem} {1 + FORMAT_RETRIES} times for {name}; "
            "try a model that supports structured outputs (LOOP_MODEL). Nothing was written."
        )

    def chat(self, messages: list[dict], **options):
        """A plain Chat Completions turn (tools and all); returns the assistant message."""
        completion = self._create(messages, estimate_messages(messages), **options)
        if not completion.choices:
            raise RunFailure("The model server sent an answer with no message; try again.")
        return completion.choices[0].message

    def _create(self, messages, estimate, **options):
        import openai

        try:
            completion = self._client.chat.completions.create(
                model=self.model, messages=messages, **options
            )
        except openai.AuthenticationError:
            raise UsageError("The model server rejected the API key; check OPENAI_API_KEY.") from None
        except openai.NotFoundError:
            raise UsageError(f"The model server does not know model {self.model!r}; set LOOP_MODEL.") from None
        except (openai.APIConnectionError, openai.APITimeoutError) as error:
            raise RunFailure(
                f"The model server at {mask_url(str(self._client.base_url))} could not be reached ({error.__class__.__name__}) "
                "after retries; check OPENAI_BASE_URL or try again. Nothing was written."
            ) from None
        except openai.APIStatusError as error:
            if 400 <= error.status_code < 500 and error.status_code not in (408, 409, 429):
                body = error.body if isinstance(error.body, dict) else {}
                detail = " ".join(str(body.get("message") or error.message).split())[:300]
                raise UsageError(
                    f"The model server refused the request (HTTP {error.status_code}: {detail}); "
                    "check LOOP_MODEL and that the server supports JSON-schema structured outputs."
                ) from None
            raise RunFailure(
                f"The model server answered HTTP {error.status_code} after retries; try again later. "
                "Nothing was written."
            ) from None
        usage = getattr(completion, "usage", None)
        with self._lock:  # the agent and the judge call from several threads
            self.usage.calls += 1
            self.usage.input_tokens += getattr(usage, "prompt_tokens", None) or estimate
            self.usage.output_tokens += getattr(usage, "completion_tokens", None) or 0
        return completion


def _strip_fences(content: str) -> str:
    """Some local servers wrap JSON in a Markdown fence even under a schema."""
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


# Where local model servers answer out of the box: (name, root, the GET that lists its models). When
# no model is configured they are asked, on loopback only and briefly, which models they serve, so the
# error can name a server that is running. Nothing else is sent to them, and never a prompt.
LOCAL_SERVERS = [
    ("Ollama", "http://localhost:11434", "/api/tags"),
    ("llama.cpp's llama-server", "http://localhost:8080", "/v1/models"),
    ("vLLM", "http://localhost:8000", "/v1/models"),
]
PROBE_SECONDS = 0.3
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
SHOW_MODELS = 5


@dataclass(frozen=True)
class LocalServer:
    name: str
    root: str
    models: list[str]


def local_servers(servers=None, timeout: float = PROBE_SECONDS) -> list[LocalServer]:
    """The local model servers that answer their model-listing GET within `timeout`, all asked at once.
    A server off loopback is never asked; one that does not answer, or answers something else, is not
    listed."""
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    candidates = [s for s in (LOCAL_SERVERS if servers is None else servers) if urlsplit(s[1]).hostname in _LOOPBACK]
    if not candidates:
        return []
    with ThreadPoolExecutor(max_workers=len(candidates)) as pool:
        found = list(pool.map(lambda server: _probe(*server, timeout), candidates))
    return [server for server in found if server]


def _probe(name: str, root: str, path: str, timeout: float) -> LocalServer | None:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    try:
        with opener.open(urllib.request.Request(root.rstrip("/") + path, method="GET"), timeout=timeout) as answer:
            body = json.loads(answer.read(1_000_000))
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict):
        return None
    listed = body.get("models") if "models" in body else body.get("data")
    if not isinstance(listed, list):
        return None
    models = [" ".join(str(m.get("name") or m.get("id") or m.get("model") or "").split())
              for m in listed if isinstance(m, dict)]
    return LocalServer(name, root.rstrip("/"), [m[:100] for m in models if m])


def no_model_error() -> UsageError:
    """No OPENAI_API_KEY or OPENAI_BASE_URL: what to set, naming a local server that answers if there is one."""
    first = "No model configured: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server"
    servers = local_servers()
    if not servers:
        return UsageError(f"{first} (e.g. http://localhost:11434/v1 for Ollama), and LOOP_MODEL.")
    server = servers[0]
    listed = ", ".join(server.models[:SHOW_MODELS]) + (", …" if len(server.models) > SHOW_MODELS else "")
    serves = f"serves {listed}" if server.models else "answers but lists no models yet"
    return UsageError(f"{first}.\n{server.name} at {server.root} {serves}: to use it, set "
                      f"OPENAI_BASE_URL={server.root}/v1 and LOOP_MODEL={server.models[0] if server.models else 'NAME'}.")


def _make_client(settings: Settings):
    import openai  # a third of a second to import: only for commands that call a model

    key = os.environ.get("OPENAI_API_KEY")
    base_url = os.environ.get("OPENAI_BASE_URL")
    if not key and not base_url:
        raise no_model_error()
    return openai.OpenAI(
        api_key=key or "not-needed",
        base_url=base_url or None,
        max_retries=settings.max_retries,
        timeout=settings.timeout,
    )


def dumps_data(value) -> str:
    """JSON for a data block; `<` is escaped so untrusted text cannot close the block's tag."""
    return json.dumps(value, ensure_ascii=False, indent=1).replace("<", "\\u003c")
