"""The service's log: one line per event on stdout, `2026-12-06T14:00:00.123Z event
key=value ...`. Values come from students too (folder names, ids), so any value that is
not plain printable ASCII without spaces is written as a JSON string: no control
character, escape sequence or line break reaches the terminal or the log's reader."""

import json
from datetime import UTC, datetime


def log(event: str, **fields) -> None:
    """One timestamped line: the event, then key=value pairs (None values left out)."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    shown = " ".join(f"{key}={shown_value(value)}" for key, value in fields.items()
                     if value is not None)
    print(f"{now} {event}{' ' + shown if shown else ''}", flush=True)


def shown_value(value) -> str:
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    plain = text and all("!" <= ch <= "~" and ch != '"' for ch in text)
    return text if plain else json.dumps(text)
