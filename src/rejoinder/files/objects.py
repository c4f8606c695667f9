"""The ``File`` object and the rules on what an upload may say (purpose, expiry, filename)."""

from __future__ import annotations

from typing import Any

from rejoinder.errors import InvalidRequest, NotFound

# What a client may upload with (openai.types.FilePurpose); ``*_output``/``-results`` are the server's.
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MAX_FILENAME = 512
MIN_EXPIRY, MAX_EXPIRY = 3600, 2_592_000  # seconds, as OpenAI bounds expires_after
BATCH_DEFAULT_EXPIRY = 30 * 86400  # purpose=batch files expire after 30 days unless told otherwise


def file_body(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "file",
        "bytes": int(row.bytes),
        "created_at": int(row.created_at),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
        "expires_at": int(row.expires_at) if row.expires_at is not None else None,
        "status_details": None,
    }


def file_not_found(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {file_id}", param="id")


def validate_purpose(value: str | None) -> str:
    if value is None or value == "":
        raise InvalidRequest("Missing required parameter: 'purpose'.", param="purpose",
                             code="missing_required_parameter")
    if value not in UPLOAD_PURPOSES:
        raise InvalidRequest(f"Invalid value: '{value[:64]}'. Supported values are: "
                             f"{', '.join(repr(p) for p in UPLOAD_PURPOSES)}.", param="purpose",
                             code="invalid_value")
    return value


def clean_filename(value: str | None) -> str:
    """The name without any directory a client put in front of it (browsers and curl differ)."""
    name = (value or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name:
        raise InvalidRequest("The uploaded file has no filename.", param="file", code="invalid_value")
    if len(name) > MAX_FILENAME or "\x00" in name:
        raise InvalidRequest(f"The filename must be at most {MAX_FILENAME} characters without NUL.",
                             param="file", code="invalid_value")
    return name


def expiry_seconds(anchor: str | None, seconds: str | None, purpose: str) -> int | None:
    """``expires_after[anchor]`` / ``expires_after[seconds]`` as the SDK sends them in the form."""
    if anchor is None and seconds is None:
        return BATCH_DEFAULT_EXPIRY if purpose == "batch" else None
    if anchor != "created_at":
        raise InvalidRequest("Invalid value for 'expires_after.anchor': expected 'created_at'.",
                             param="expires_after.anchor", code="invalid_value")
    try:
        value = int(seconds or "")
    except ValueError:
        raise InvalidRequest("Invalid type for 'expires_after.seconds': expected an integer.",
                             param="expires_after.seconds", code="invalid_type") from None
    if not MIN_EXPIRY <= value <= MAX_EXPIRY:
        raise InvalidRequest(f"Invalid 'expires_after.seconds': expected a value between {MIN_EXPIRY} and "
                             f"{MAX_EXPIRY}, but got {value} instead.", param="expires_after.seconds",
                             code="invalid_value")
    return value
