"""Confirm mode, pure part: which job a hint on ``jobs.hints`` names."""

from __future__ import annotations

import json

from services.common.errors import InvalidJobError
from services.common.trio import NUMBER


def hint_number(key: bytes | None, value: bytes | None) -> int:
    """The job Number of a hint: its key (UTF-8 decimal), else the ``Number`` of the webhook body.

    Raises InvalidJobError naming what is missing. The body is only a hint: nothing else of it is trusted.
    """
    if key:
        text = key.decode("utf-8", errors="replace").strip()
        if text.isdigit():
            return int(text)
    if value:
        try:
            body = json.loads(value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidJobError("$", f"hint key is not a job Number and the body is not JSON ({exc})") from exc
        number = body.get(NUMBER) if isinstance(body, dict) else None
        if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
            return number
    raise InvalidJobError(NUMBER, "hint has neither a decimal key nor a body with an integer Number")
