"""Load a component's settings from flags and WORKFLEET_* environment variables.

Flags win over environment variables, which win over defaults. Validation is
pydantic's, so every bad field is reported at once, and the process exits with
status 2 (the usage-error convention argparse also follows).
"""

import argparse
import os
import re
import ssl
import sys
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

import pika
from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workfleet_common.amqp import connection_parameters

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


def _check_file(value: str) -> str:
    if value and not os.path.isfile(value):
        raise ValueError("no such file")
    return value


PemFile = Annotated[str, AfterValidator(_check_file)]


class AmqpSettings(WorkfleetSettings):
    """Settings of a component that talks AMQP: the broker's URL and, for amqps://, the files that
    verify the broker and, where it asks for one, prove the client's identity. Every file is read
    here, so a wrong one is a settings error at start, not a reconnect loop."""

    amqp_url: AmqpUrl = Field(DEFAULT_AMQP_URL, description="broker URL (amqp:// or amqps://)")
    amqp_ca_file: PemFile = Field(
        "", description="CA certificates (PEM) that the broker's certificate must chain to, for amqps://; "
        "empty: the system's")
    amqp_cert_file: PemFile = Field(
        "", description="client certificate (PEM) for a broker that asks for one (with --amqp-key-file)")
    amqp_key_file: PemFile = Field("", description="the client certificate's private key (PEM)")

    @field_validator("amqp_ca_file", "amqp_cert_file", "amqp_key_file")
    @classmethod
    def _only_with_amqps(cls, value: str, info: ValidationInfo) -> str:
        url = info.data.get("amqp_url")
        if value and url and urlsplit(url).scheme != "amqps":
            raise ValueError("TLS files need an amqps:// URL; with amqp:// the connection would not use them")
        return value

    @field_validator("amqp_ca_file")
    @classmethod
    def _loads_as_ca(cls, value: str) -> str:
        if value:
            try:
                ssl.create_default_context(cafile=value)
            except (ssl.SSLError, ValueError) as error:
                raise ValueError(f"not a PEM CA certificate: {error}") from None
        return value

    @field_validator("amqp_key_file")
    @classmethod
    def _pairs_with_the_certificate(cls, value: str, info: ValidationInfo) -> str:
        certificate = info.data.get("amqp_cert_file")
        if bool(value) != bool(certificate):
            raise ValueError("give the client certificate and its key together (--amqp-cert-file, --amqp-key-file)")
        if value and certificate:
            try:
                ssl.create_default_context().load_cert_chain(certificate, value)
            except (ssl.SSLError, ValueError) as error:
                raise ValueError(f"the certificate and key do not load as a pair: {error}") from None
        return value

    def connection_parameters(self, component: str, **overrides) -> pika.URLParameters:
        return connection_parameters(self.amqp_url, component, ca_file=self.amqp_ca_file,
                                     cert_file=self.amqp_cert_file, key_file=self.amqp_key_file, **overrides)


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
