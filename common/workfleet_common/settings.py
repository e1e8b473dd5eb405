"""Load a component's settings from flags and WORKFLEET_* environment variables.

Flags win over environment variables, which win over defaults. Validation is
pydantic's, so every bad field is reported at once, and the process exits with
status 2 (the usage-error convention argparse also follows).
"""

import argparse
import re
import sys
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "WORKFLEET_"
USAGE_ERROR_EXIT_STATUS = 2

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/%2F"

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def _check_amqp_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ValueError("expected amqp://user:password@host:port/vhost or amqps://...")
    try:
        parts.port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    return value


def _check_queue_name(value: str) -> str:
    if value.startswith("amq."):
        raise ValueError("names starting with 'amq.' are reserved by the broker")
    return value


AmqpUrl = Annotated[str, AfterValidator(_check_amqp_url)]
QueueName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_check_queue_name)]


class WorkfleetSettings(BaseSettings):
    """Base for each component's settings: env prefix, no unknown fields."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")


def add_setting_flags(parser: argparse.ArgumentParser, settings_cls: type[BaseSettings]) -> None:
    """Add one `--field-name` flag per settings field, documented from its description.

    Flags are parsed as strings and validated by the settings model, so a bad
    flag and a bad environment variable are reported together in one message.
    """
    for name, field in settings_cls.model_fields.items():
        flag = "--" + name.replace("_", "-")
        env = ENV_PREFIX + name.upper()
        default = field.default
        parser.add_argument(
            flag,
            dest=name,
            default=None,
            metavar=name.upper(),
            # argparse %-formats help text; a URL default holds "%2F".
            help=f"{field.description} (env {env}; default {default})".replace("%", "%%"),
        )


def _redact(value):
    """Hide the password of a URL before echoing it back."""
    if isinstance(value, str) and "://" in value:
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", value)
    return value


def describe_errors(error: ValidationError) -> str:
    """One message naming every bad field by its flag and environment variable."""
    lines = ["invalid settings:"]
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else "settings"
        flag = "--" + field.replace("_", "-")
        env = ENV_PREFIX + field.upper()
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"  {flag} / {env}: {message} (got {_redact(problem.get('input'))!r})")
    return "\n".join(lines)


def settings_from(settings_cls: type[SettingsT], args: argparse.Namespace) -> SettingsT:
    """Build settings from parsed flags and the environment, or exit 2 naming every bad field."""
    given = {
        name: value
        for name, value in vars(args).items()
        if name in settings_cls.model_fields and value is not None
    }
    try:
        return settings_cls(**given)
    except ValidationError as error:
        print(describe_errors(error), file=sys.stderr)
        raise SystemExit(USAGE_ERROR_EXIT_STATUS) from None
