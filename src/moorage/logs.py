"""Structured logs: one JSON object per line in production, readable lines in a terminal."""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Render a record and its `extra` fields as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`time level msg key=value ...` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class AnsweredBadRequests(logging.Filter):
    """One info line, no traceback, for malformed HTTP that aiohttp already answered with 400.

    aiohttp's protocol logs every parser error (a bad request line, header garbage) with
    `logger.exception`: noise at error level for something the client got wrong and was told.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or record.levelno < logging.WARNING:
            return True
        # Imported here: the lean supervisor sets up logging too and must not load aiohttp.
        from aiohttp.http_exceptions import BadHttpMessage

        if not isinstance(exc, BadHttpMessage):
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg, record.args = "malformed HTTP request answered with 400", ()
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.remote = remote
        record.reason = f"{type(exc).__name__}: {exc.message}"[:200]
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def setup_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Configure the root logger once per process."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, AnsweredBadRequests) for f in server.filters):
        server.addFilter(AnsweredBadRequests())
