"""App settings: every environment variable the app reads is declared here, once.

Declaring them in one table lets the infrastructure checks prove that each setting is either set by
the Bicep or documented as optional, and gives the README its settings reference.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from shared.errors import ConfigurationError


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    description: str
    required_in_azure: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "AZURE_CLIENT_ID",
        None,
        "Client id of the user-assigned managed identity. Unset: DefaultAzureCredential "
        "(a developer's Azure CLI login).",
        required_in_azure=True,
    ),
    Setting(
        "GATEWAY_CATALOG",
        None,
        "The target catalog as JSON (targets, allowed pipelines and Spark pools).",
        required_in_azure=True,
    ),
    Setting("GATEWAY_CATALOG_FILE", None, "Path of a JSON catalog file, used when GATEWAY_CATALOG is unset."),
    Setting(
        "GATEWAY_ARM_ENDPOINT",
        "https://management.azure.com",
        "Azure Resource Manager endpoint (ADF and management-plane reads).",
    ),
    Setting(
        "GATEWAY_ARM_AUDIENCE",
        "https://management.azure.com",
        "Token audience for ARM; the scope is this plus /.default.",
    ),
    Setting("GATEWAY_SYNAPSE_AUDIENCE", "https://dev.azuresynapse.net", "Token audience for the Synapse data plane."),
    Setting(
        "GATEWAY_FABRIC_ENDPOINT",
        "https://api.fabric.microsoft.com/v1",
        "Microsoft Fabric REST API base URL, version included (Fabric pipeline targets).",
    ),
    Setting(
        "GATEWAY_FABRIC_AUDIENCE",
        "https://api.fabric.microsoft.com",
        "Token audience for the Fabric REST API; the scope is this plus /.default.",
    ),
    Setting(
        "GATEWAY_FABRIC_PORTAL_URL",
        "https://app.fabric.microsoft.com",
        "Base of the Fabric monitoring hub links put in runs and alerts.",
    ),
    Setting(
        "GATEWAY_ML_API_VERSION",
        "2025-09-01",
        "api-version of Azure ML's ARM API (jobs, workspace). 2025-09-01 is the version whose spec the "
        "gateway is built and tested against; 2026-07-01 has the same Jobs paths and queries.",
    ),
    Setting(
        "GATEWAY_ML_AUDIENCE",
        "https://ml.azure.com",
        "Token audience for Azure ML run history (job details, steps and logs).",
    ),
    Setting("GATEWAY_ADF_STUDIO_URL", "https://adf.azure.com", "Base of the ADF Studio links put in runs and alerts."),
    Setting(
        "GATEWAY_SYNAPSE_STUDIO_URL",
        "https://web.azuresynapse.net",
        "Base of the Synapse Studio links put in runs and alerts.",
    ),
    Setting(
        "GATEWAY_ML_STUDIO_URL", "https://ml.azure.com", "Base of the Azure ML studio links put in runs and alerts."
    ),
    Setting(
        "GATEWAY_PUBLIC_BASE_URL",
        None,
        "Base URL callers use (the APIM gateway URL plus API path), for Location and links. Unset: the "
        "request's origin when its host is the app's own (WEBSITE_HOSTNAME), else a path without a host.",
    ),
    Setting(
        "WEBSITE_HOSTNAME",
        None,
        "The app's own host name (host[:port]), set by App Service and by the local host, never by the Bicep: "
        "a request's Host is trusted for links only when it is this one.",
    ),
    Setting(
        "GATEWAY_HTTP_AUTH_LEVEL",
        "function",
        "Auth level of the HTTP functions: 'function' (APIM sends a function key) or 'anonymous' "
        "(behind Easy Auth, which admits only APIM's identity). Anything else is treated as 'function'.",
    ),
    Setting("GATEWAY_MAX_BODY_BYTES", "32768", "Largest request body accepted, in bytes."),
    Setting("GATEWAY_UPSTREAM_CONNECT_TIMEOUT", "5", "Seconds to connect to an Azure API."),
    Setting("GATEWAY_UPSTREAM_READ_TIMEOUT", "30", "Seconds to wait for an Azure API's answer."),
    Setting(
        "GATEWAY_STORAGE__tableServiceUri",
        None,
        "Table endpoint of the gateway's storage account (identity-based).",
        required_in_azure=True,
    ),
    Setting(
        "GATEWAY_STORAGE__queueServiceUri",
        None,
        "Queue endpoint of the gateway's storage account (identity-based).",
        required_in_azure=True,
    ),
    Setting("GATEWAY_STORAGE__credential", None, "'managedidentity' for identity-based bindings (queue triggers)."),
    Setting(
        "GATEWAY_STORAGE__clientId",
        None,
        "Client id the Functions host uses for the GATEWAY_STORAGE binding connection.",
    ),
    Setting(
        "GATEWAY_STORAGE",
        None,
        "A storage connection string, instead of the identity-based endpoints (not recommended).",
    ),
    Setting("GATEWAY_RUNS_TABLE", "gatewayruns", "Table holding the run registry."),
    Setting("GATEWAY_ALERT_QUEUE", "pipeline-failures", "Queue that on-call engineers read."),
    Setting("GATEWAY_POLL_SCHEDULE", "0 */1 * * * *", "NCRONTAB schedule of the poller."),
    Setting(
        "GATEWAY_POLL_FANOUT",
        "false",
        "true: the timer enqueues one message per target and a queue trigger polls each.",
    ),
    Setting("GATEWAY_POLL_QUEUE", "gateway-poll", "Queue of per-target poll work when fanning out."),
    Setting("GATEWAY_POLL_BUDGET_SECONDS", "240", "Time budget of one poller tick."),
    Setting(
        "GATEWAY_SUBMIT_GRACE_SECONDS",
        "120",
        "A start recorded this recently may still have its create call in flight: the poller leaves it alone.",
    ),
    Setting(
        "GATEWAY_UNKNOWN_AFTER_SECONDS",
        "600",
        "A start whose lost create answer matches no Azure run this long after it is marked Unknown and alerted.",
    ),
    Setting(
        "GATEWAY_ALERT_CLAIM_SECONDS",
        "180",
        "How long a poller's claim on an alert it is sending holds; an older claim belongs to a poller that died.",
    ),
    Setting(
        "GATEWAY_RETENTION_DAYS",
        "400",
        "Runs created longer ago than this many days are deleted by the poller, a bounded batch per tick "
        "(runs still live are kept until they end).",
    ),
    Setting(
        "GATEWAY_FORWARD_URL",
        None,
        "https:// webhook that receives each failure alert (a secret: use a Key Vault reference). Set: a queue "
        "trigger consumes the alert queue and posts every alert there. Read at indexing, like binding settings.",
    ),
    Setting("GATEWAY_FORWARD_FORMAT", "json", "What the webhook expects: 'teams', 'slack' or 'json'."),
    Setting(
        "GATEWAY_FORWARD_SECRET",
        None,
        "HMAC-SHA256 key that signs 'json' webhook posts (X-Gateway-Signature); unset: unsigned.",
    ),
    Setting(
        "GATEWAY_PRIVATE_NETWORKING",
        "false",
        "true when the app reaches its targets through private endpoints in its virtual network (set by infra's "
        "enablePrivateNetworking): diagnostics then check that each target's data-plane host resolves to a "
        "private address.",
    ),
    Setting("APPLICATIONINSIGHTS_CONNECTION_STRING", None, "Enables telemetry to Application Insights."),
    Setting(
        "REQUESTS_CA_BUNDLE", None, "Extra CA bundle to trust (local development against the offline emulator only)."
    ),
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}
FORWARD_FORMATS = ("teams", "slack", "json")


class Settings:
    """Typed view of the environment, read lazily so a bad optional value only fails where used."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def get(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return _BY_NAME[name].default
        return value.strip()

    def _int(self, name: str) -> int:
        raw = self.get(name)
        try:
            value = int(raw or "")
        except ValueError:
            raise ConfigurationError(f"App setting {name} must be an integer, got {raw!r}.") from None
        if value <= 0:
            raise ConfigurationError(f"App setting {name} must be positive, got {value}.")
        return value

    def _float(self, name: str) -> float:
        raw = self.get(name)
        try:
            value = float(raw or "")
        except ValueError:
            raise ConfigurationError(f"App setting {name} must be a number, got {raw!r}.") from None
        if value <= 0:
            raise ConfigurationError(f"App setting {name} must be positive, got {value}.")
        return value

    def _bool(self, name: str) -> bool:
        raw = (self.get(name) or "").lower()
        if raw in ("true", "1", "yes"):
            return True
        if raw in ("false", "0", "no"):
            return False
        raise ConfigurationError(f"App setting {name} must be true or false, got {raw!r}.")

    @property
    def client_id(self) -> str | None:
        return self.get("AZURE_CLIENT_ID")

    @cached_property
    def arm_endpoint(self) -> str:
        return _https_url("GATEWAY_ARM_ENDPOINT", self.get("GATEWAY_ARM_ENDPOINT"))

    @property
    def arm_scope(self) -> str:
        return _scope(self.get("GATEWAY_ARM_AUDIENCE"))

    @property
    def synapse_scope(self) -> str:
        return _scope(self.get("GATEWAY_SYNAPSE_AUDIENCE"))

    @cached_property
    def fabric_endpoint(self) -> str:
        return _https_url("GATEWAY_FABRIC_ENDPOINT", self.get("GATEWAY_FABRIC_ENDPOINT"))

    @property
    def fabric_scope(self) -> str:
        return _scope(self.get("GATEWAY_FABRIC_AUDIENCE"))

    @property
    def fabric_portal_url(self) -> str:
        return (self.get("GATEWAY_FABRIC_PORTAL_URL") or "").rstrip("/")

    @property
    def ml_scope(self) -> str:
        return _scope(self.get("GATEWAY_ML_AUDIENCE"))

    @property
    def ml_api_version(self) -> str:
        value = self.get("GATEWAY_ML_API_VERSION") or ""
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", value):
            raise ConfigurationError(f"App setting GATEWAY_ML_API_VERSION must look like 2025-09-01, got {value!r}.")
        return value

    @property
    def ml_studio_url(self) -> str:
        return (self.get("GATEWAY_ML_STUDIO_URL") or "").rstrip("/")

    @property
    def adf_studio_url(self) -> str:
        return (self.get("GATEWAY_ADF_STUDIO_URL") or "").rstrip("/")

    @property
    def synapse_studio_url(self) -> str:
        return (self.get("GATEWAY_SYNAPSE_STUDIO_URL") or "").rstrip("/")

    @property
    def public_base_url(self) -> str | None:
        value = self.get("GATEWAY_PUBLIC_BASE_URL")
        return value.rstrip("/") if value else None

    @property
    def own_host(self) -> str | None:
        value = self.get("WEBSITE_HOSTNAME")
        return value.lower() if value else None

    @property
    def anonymous_http(self) -> bool:
        """True only when explicitly 'anonymous': a typo must not open the API."""
        return (self.get("GATEWAY_HTTP_AUTH_LEVEL") or "").lower() == "anonymous"

    @property
    def max_body_bytes(self) -> int:
        return self._int("GATEWAY_MAX_BODY_BYTES")

    @property
    def upstream_timeout(self) -> tuple[float, float]:
        return (self._float("GATEWAY_UPSTREAM_CONNECT_TIMEOUT"), self._float("GATEWAY_UPSTREAM_READ_TIMEOUT"))

    @property
    def table_service_uri(self) -> str | None:
        return self.get("GATEWAY_STORAGE__tableServiceUri")

    @property
    def queue_service_uri(self) -> str | None:
        return self.get("GATEWAY_STORAGE__queueServiceUri")

    @property
    def storage_connection_string(self) -> str | None:
        return self.get("GATEWAY_STORAGE")

    @property
    def runs_table(self) -> str:
        return self.get("GATEWAY_RUNS_TABLE") or ""

    @property
    def alert_queue(self) -> str:
        return self.get("GATEWAY_ALERT_QUEUE") or ""

    @property
    def poll_fanout(self) -> bool:
        return self._bool("GATEWAY_POLL_FANOUT")

    @property
    def poll_queue(self) -> str:
        return self.get("GATEWAY_POLL_QUEUE") or ""

    @property
    def poll_budget_seconds(self) -> float:
        return self._float("GATEWAY_POLL_BUDGET_SECONDS")

    @property
    def submit_grace(self) -> timedelta:
        return timedelta(seconds=self._float("GATEWAY_SUBMIT_GRACE_SECONDS"))

    @property
    def unknown_after(self) -> timedelta:
        return timedelta(seconds=self._float("GATEWAY_UNKNOWN_AFTER_SECONDS"))

    @property
    def alert_claim_ttl(self) -> timedelta:
        return timedelta(seconds=self._float("GATEWAY_ALERT_CLAIM_SECONDS"))

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self._int("GATEWAY_RETENTION_DAYS"))

    @property
    def forwarding(self) -> bool:
        """Whether alerts are forwarded to a webhook (and the queue is consumed by the forwarder)."""
        return self.get("GATEWAY_FORWARD_URL") is not None

    @property
    def forward_url(self) -> str:
        value = self.get("GATEWAY_FORWARD_URL")
        if not value or not value.startswith("https://"):
            raise ConfigurationError(f"App setting GATEWAY_FORWARD_URL must be an https:// URL, got {value!r}.")
        return value

    @property
    def forward_format(self) -> str:
        value = (self.get("GATEWAY_FORWARD_FORMAT") or "").lower()
        if value not in FORWARD_FORMATS:
            raise ConfigurationError(
                f"App setting GATEWAY_FORWARD_FORMAT must be one of {', '.join(FORWARD_FORMATS)}, got {value!r}."
            )
        return value

    @property
    def forward_secret(self) -> str | None:
        return self.get("GATEWAY_FORWARD_SECRET")

    @property
    def private_networking(self) -> bool:
        return self._bool("GATEWAY_PRIVATE_NETWORKING")

    @property
    def appinsights_connection_string(self) -> str | None:
        return self.get("APPLICATIONINSIGHTS_CONNECTION_STRING")


def _scope(audience: str | None) -> str:
    return f"{(audience or '').rstrip('/')}/.default"


def _https_url(name: str, value: str | None) -> str:
    if not value or not value.startswith("https://"):
        raise ConfigurationError(f"App setting {name} must be an https:// URL, got {value!r}.")
    return value.rstrip("/")
