"""Settings: a config file (TOML, YAML or JSON) overlaid by ``REJOINDER_*`` environment variables.

Environment variables win over the file so an operator can override one value without editing it.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from rejoinder.request_context import MAX_BODY_BYTES

RecordingMode = Literal["live", "record", "replay", "record-if-missing"]


class BackendConfig(BaseModel):
    """One OpenAI-compatible chat-completions endpoint serving one public model name."""

    base_url: str
    api_key: str | None = None
    model: str | None = Field(default=None, description="upstream model name; defaults to the public name")
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    timeout: float = 600.0
    cache_hints: bool = Field(default=True, description="pass prompt_cache_key and prompt_cache_retention on; "
                              "off for a backend that refuses parameters it does not know")
    context_window: int | None = Field(default=None, ge=1, description="tokens; None: asked of the server")
    custom_grammar: Literal["check", "structured_outputs", "guided_grammar"] = Field(
        default="check", description="a forced custom tool with a grammar: its input asked for under the grammar "
        "with vLLM's structured_outputs (guided_grammar before vLLM 0.10), or (check) every call checked and "
        "retried")
    verbosity: Literal["instruction", "param", "off"] = Field(
        default="instruction", description="text.verbosity low/high: a line of the system message asking for "
        "a short or a thorough answer (instruction), chat completions' verbosity parameter for servers that take "
        "it (param), or nothing (off)")
    template_rules: list[Literal["alternate_roles", "no_system_role", "short_call_ids"]] = Field(
        default_factory=list, description="chat-template rules known up front (others are learned)")
    think_tags: Literal["off", "on", "open"] = Field(
        default="off", description="the model writes its reasoning in the text between <think> and </think>: "
        "on (it opens the block), open (its chat template opened it: the answer starts inside)")
    reasoning_replay: Literal["reasoning_content", "reasoning", "think_tags", "off"] = Field(
        default="reasoning_content", description="how earlier reasoning goes back on an assistant message: "
        "reasoning_content (vLLM, llama.cpp, DeepSeek), reasoning (Ollama, OpenRouter), inline <think> in "
        "its content, or not at all")


class EmbeddedConfig(BaseModel):
    """The in-process llama.cpp model used when nothing else is configured."""

    enabled: Literal["auto", "on", "off"] = "auto"
    name: str = "smollm2-135m-instruct"
    model_path: Path | None = None
    n_ctx: int = Field(default=2048, ge=256, description="the model's context window, in tokens")
    max_queue: int = Field(default=16, ge=0, description="requests that may wait while one generates")
    threads: int | None = Field(default=None, ge=1, description="llama.cpp threads; None: its default")


class RecordingConfig(BaseModel):
    mode: RecordingMode = "live"
    dir: Path = Path("recordings")


class FilesConfig(BaseModel):
    """The Files API: uploads stream into the database in parts (docs/files-and-vector-stores.md)."""

    max_bytes: int = Field(default=512 * 1024 * 1024, ge=1, description="largest upload, OpenAI's 512 MB")
    part_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=16 * 1024 * 1024,
                            description="bytes per stored part: what one upload holds in memory at a time")


class EmbeddingsConfig(BaseModel):
    """Which model embeds vector store chunks: a configured backend's, or the embedded MiniLM."""

    model: str | None = Field(default=None, description="a configured model whose backend serves /v1/embeddings")
    dimensions: int | None = Field(default=None, ge=1, description="sent as `dimensions` to the backend")
    batch_size: int = Field(default=32, ge=1, le=2048, description="inputs per embeddings request")
    threads: int | None = Field(default=None, ge=1, description="llama.cpp threads for the embedded model")


class VectorStoresConfig(BaseModel):
    ingest_workers: int = Field(default=1, ge=1, description="files one replica ingests at a time")
    max_file_tokens: int = Field(default=5_000_000, ge=1, description="a larger file fails as invalid_file")


class WebSocketConfig(BaseModel):
    """Limits of one ``GET /v1/responses`` WebSocket connection (docs/websocket-and-compaction.md)."""

    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024,
                                   description="the largest client message (uvicorn's ws_max_size is 16 MB too)")
    max_queued_creates: int = Field(default=32, ge=1, description="response.create events waiting on one socket")
    max_lanes: int = Field(default=16, ge=1, description="stream_id lanes one socket may run at once")
    idle_timeout: float = Field(default=3600.0, gt=0, description="seconds without a message or a running response")
    send_buffer_bytes: int = Field(default=1024 * 1024, ge=4096,
                                   description="events held for a slow reader before the run waits for it")
    send_timeout: float = Field(default=60.0, gt=0, description="how long a full buffer may stay full: then closed")
    cached_responses: int = Field(default=8, ge=1, description="store=false responses a socket can continue")
    max_pending_steers: int = Field(default=8, ge=1, description="response.steer inputs queued per response")


class WebSearchConfig(BaseModel):
    """The ``web_search`` tool's provider (docs/web-search.md). Without one, a declared web_search is
    accepted and not offered to the model."""

    searxng_url: str | None = Field(default=None, description="a SearXNG instance with its JSON format enabled")
    timeout: float = Field(default=10.0, gt=0, description="seconds a search may take")
    language: str | None = Field(default=None, description="SearXNG's language parameter, e.g. en-US")
    categories: str | None = Field(default=None, description="SearXNG's categories parameter, e.g. general")
    fetch_pages: int = Field(default=2, ge=0, le=10, description="most result pages read live per search "
                             "(search_context_size low reads none, medium one); 0: snippets only")
    fetch_max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, description="bytes read of one page")
    allow_private_pages: bool = Field(default=False, description="read pages on loopback and private "
                                      "addresses (refused by default)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REJOINDER_", env_nested_delimiter="__", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8321
    data_dir: Path = Field(default_factory=lambda: Path(os.path.expanduser("~/.local/share/rejoinder")))
    storage_url: str | None = None
    models: dict[str, BackendConfig] = Field(default_factory=dict)
    embedded: EmbeddedConfig = Field(default_factory=EmbeddedConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    # NoDecode: pydantic-settings would JSON-decode a dict-typed variable before the validator
    # below sees it, so the documented ``key1:alice,key2:bob`` stopped the server at start-up.
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="API key -> principal; empty means no authentication"
    )
    # Keys that seal blobs handed to clients (encrypted reasoning, compaction): base64 of 32 bytes
    # each, the first seals and all open (rotation). Empty: one key kept in data_dir/sealing.key;
    # replicas must share a list here instead (crypto/keys.py).
    sealing_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_tool_iterations: int = 10
    mcp_timeout: float = Field(default=30.0, gt=0, description="seconds one MCP tool call may take")
    mcp_connect_timeout: float = Field(
        default=30.0, gt=0, description="seconds to connect to an MCP server and list its tools (apart from "
        "mcp_timeout: a short call limit must not fail a server that is slow to answer its first request)")
    conversation_lock_seconds: float = 600.0
    replica_id: str | None = None
    lease_seconds: float = 30.0
    background_workers: int = 4
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, ge=1024, description="the largest request body, any route")
    log_format: Literal["text", "json"] = Field(default="text", description="json: one JSON object per line")
    metrics_access: Literal["loopback", "key", "open", "off"] = Field(
        default="loopback",
        description="who may read /metrics when API keys are configured: loopback clients without a key "
        "(others with one), only holders of a key, anyone, or nobody (off: /metrics answers 404)",
    )
    files: FilesConfig = Field(default_factory=FilesConfig)
    embeddings: EmbeddingsConfig = Field(default_factory=EmbeddingsConfig)
    vector_stores: VectorStoresConfig = Field(default_factory=VectorStoresConfig)
    websocket: WebSocketConfig = Field(default_factory=WebSocketConfig)
    web_search: WebSearchConfig = Field(default_factory=WebSearchConfig)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        """Accept ``"k1:alice,k2:bob"`` (or ``"k1,k2"``) and a JSON object from the environment, as
        well as a mapping or a list from a file."""
        if isinstance(value, str) and value.strip().startswith("{"):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"REJOINDER_API_KEYS is not valid JSON: {exc}") from None
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            out: dict[str, str] = {}
            for entry in value:
                key, _, principal = str(entry).partition(":")
                out[key] = principal or f"key-{len(out) + 1}"
            return out
        return value

    @field_validator("sealing_keys", mode="before")
    @classmethod
    def _parse_sealing_keys(cls, value: Any) -> Any:
        """``"k1,k2"`` from the environment; each key checked now, so a bad one stops start-up."""
        from rejoinder.crypto.keys import decode_key

        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            for key in value:
                decode_key(str(key))
            return [str(key).strip() for key in value]
        return value

    @property
    def database_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return f"sqlite:///{self.data_dir / 'rejoinder.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


def _single_backend_from_env() -> dict[str, Any]:
    """``REJOINDER_BACKEND_URL`` + ``REJOINDER_BACKEND_MODELS=a,b=upstream-b``: the quick way."""
    url = os.environ.get("REJOINDER_BACKEND_URL")
    if not url:
        return {}
    key = os.environ.get("REJOINDER_BACKEND_API_KEY")
    names = os.environ.get("REJOINDER_BACKEND_MODELS", "")
    models: dict[str, Any] = {}
    for entry in filter(None, (n.strip() for n in names.split(","))):
        public, _, upstream = entry.partition("=")
        models[public] = {"base_url": url, "api_key": key, "model": upstream or None}
    return models


def read_config_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix == ".toml":
        return tomllib.loads(text)
    if path.suffix == ".json":
        return json.loads(text)
    return yaml.safe_load(text) or {}


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    data: dict[str, Any] = read_config_file(config_file) if config_file else {}
    env_models = _single_backend_from_env()
    if env_models:
        data.setdefault("models", {}).update(env_models)
    data.update(overrides)
    return Settings(**data)
