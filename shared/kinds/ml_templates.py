"""Azure ML job templates of the catalog: the job each submits, and which inputs a caller may set.

Callers never send a job definition. The platform team declares each template (a command with its
environment, code and compute, or a pipeline component), and a caller sets only the inputs the
template opens to it: literal values of the declared type, URIs only under the allowed prefixes. So
a start can neither run other code nor read other data than its template allows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from shared.config import names
from shared.config.targets import AccessRule, CatalogModel, check_name
from shared.errors import ValidationFailed
from shared.text import codepoint, invisible

InputType = Literal["string", "integer", "number", "boolean", "uri_file", "uri_folder"]
DeliveryMode = Literal["ReadOnlyMount", "ReadWriteMount", "Download", "Direct", "EvalMount", "EvalDownload"]
LiteralValue = str | int | float | bool
URI_TYPES = frozenset({"uri_file", "uri_folder"})
MAX_INPUTS = 50
MAX_STRING = 4096
MAX_URI = 2048
MAX_REFERENCE = 1024
RUN_ID_TAG = "gatewayRunId"  # the job's tag carrying the gateway's run id: a lost answer is proven by it
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+/", re.IGNORECASE)
_COMPUTE_ID = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices"
    r"/workspaces/[^/]+/computes/[^/]+",
    re.IGNORECASE,
)


class MlInput(CatalogModel):
    """One input of a template: its type, its default, and whether (and where, for a URI) a caller may set it."""

    type: InputType
    default: LiteralValue | None = None
    settable: bool = False
    allowed_prefixes: tuple[str, ...] = ()
    mode: DeliveryMode | None = None

    @field_validator("allowed_prefixes")
    @classmethod
    def _prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in value:
            # A prefix ends with "/": "paths/sales" would also admit "paths/sales-private".
            if not _SCHEME.match(prefix) or not prefix.endswith("/") or _uri_problem(prefix):
                raise ValueError(
                    f"allowed prefix {prefix[:80]!r} must be an absolute URI (azureml://, abfss://, https://) "
                    "ending with '/', without query, fragment, percent-escapes, '..' or spaces"
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> MlInput:
        uri = self.type in URI_TYPES
        if not uri and (self.allowed_prefixes or self.mode):
            raise ValueError(f"allowedPrefixes and mode are for uri_file and uri_folder inputs, not {self.type}")
        if uri and self.settable and not self.allowed_prefixes:
            raise ValueError("a settable URI input needs allowedPrefixes: where callers may point it")
        if not self.settable and self.default is None:
            raise ValueError("an input callers may not set needs a default")
        if self.default is not None and (problem := self.problem(self.default, defaults=True)):
            raise ValueError(f"default {problem}")
        return self

    def problem(self, value: Any, *, defaults: bool = False) -> str | None:
        """Why ``value`` is no value of this input (a caller's must also lie under an allowed prefix)."""
        if self.type == "boolean":
            return None if isinstance(value, bool) else "must be true or false"
        if isinstance(value, bool):
            return f"must be {'an' if self.type == 'integer' else 'a'} {self.type}, not a boolean"
        if self.type == "integer":
            return None if isinstance(value, int) else "must be an integer"
        if self.type == "number":
            ok = isinstance(value, int | float) and math.isfinite(value)
            return None if ok else "must be a finite number"
        if not isinstance(value, str):
            return "must be a string"
        if self.type == "string":
            if len(value) > MAX_STRING:
                return f"must be at most {MAX_STRING} characters"
            char = invisible(value)
            return None if char is None else f"must not contain control or invisible characters ({codepoint(char)})"
        if not _SCHEME.match(value) or _uri_problem(value):
            return "must be an absolute URI without query, fragment, percent-escapes, '..' or spaces"
        if defaults or any(value.startswith(prefix) for prefix in self.allowed_prefixes):
            return None
        return "must lie under one of: " + ", ".join(self.allowed_prefixes)

    def wire(self, value: LiteralValue) -> dict[str, Any]:
        """The job's ``JobInput``; literals are strings on the wire, as azure-ai-ml sends them (``str(v)``)."""
        if self.type in URI_TYPES:
            job_input: dict[str, Any] = {"jobInputType": self.type, "uri": value}
            if self.mode:
                job_input["mode"] = self.mode
            return job_input
        return {"jobInputType": "literal", "value": str(value)}


def _uri_problem(value: str) -> bool:
    return (
        len(value) > MAX_URI
        or any(c in value for c in "?#%\\ ")  # "%": an escaped ".." must not slip past the prefix
        or invisible(value) is not None
        or any(part in ("..", ".") for part in value.split("://", 1)[-1].split("/"))
    )


def _reference(value: str | None, field: str) -> str | None:
    """An asset reference (environment, code, component): ARM ids or ``azureml:`` names, one token."""
    if value is not None and (not value or len(value) > MAX_REFERENCE or not value.isprintable() or " " in value):
        raise ValueError(f"{field} must be 1-{MAX_REFERENCE} printable characters without spaces")
    return value


class MlJobTemplate(AccessRule):
    """A job callers may start by name (``/targets/{t}/jobs/{name}/runs``), the job it submits, and its inputs.

    ``Command`` templates give ``command`` and ``environmentId`` (and optionally ``codeId``), as a
    CommandJob requires; ``Pipeline`` templates give the pipeline ``componentId``. ``products``,
    ``maxDurationMinutes`` and the caps work as for pipelines.
    """

    match: str = Field(min_length=1, max_length=255, validation_alias=AliasChoices("name", "match"))
    job_type: Literal["Command", "Pipeline"]
    command: str | None = Field(default=None, min_length=1, max_length=MAX_STRING)
    environment_id: str | None = None
    code_id: str | None = None
    component_id: str | None = None
    compute_id: str | None = None
    experiment_name: str | None = None
    inputs: dict[str, MlInput] = Field(default_factory=dict)

    @field_validator("match")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(names.ML_TEMPLATE, value)

    @field_validator("experiment_name")
    @classmethod
    def _experiment(cls, value: str | None) -> str | None:
        return None if value is None else check_name(names.ML_TEMPLATE, value)

    @field_validator("environment_id", "code_id", "component_id")
    @classmethod
    def _references(cls, value: str | None) -> str | None:
        return _reference(value, "an asset reference")

    @field_validator("compute_id")
    @classmethod
    def _compute(cls, value: str | None) -> str | None:
        if value is not None and not _COMPUTE_ID.fullmatch(value):
            raise ValueError(
                "computeId must be the compute's ARM id: /subscriptions/<id>/resourceGroups/<rg>/providers/"
                "Microsoft.MachineLearningServices/workspaces/<ws>/computes/<name>"
            )
        return value

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, value: dict[str, MlInput]) -> dict[str, MlInput]:
        if len(value) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} inputs")
        for name in value:
            check_name(names.ML_INPUT, name)
        return value

    @model_validator(mode="after")
    def _job_fields(self) -> MlJobTemplate:
        if self.job_type == "Command" and not (self.command and self.environment_id):
            raise ValueError("a Command template needs command and environmentId (a CommandJob requires both)")
        if self.job_type == "Pipeline":
            if not self.component_id:
                raise ValueError("a Pipeline template needs componentId (the pipeline component it runs)")
            if self.command or self.environment_id or self.code_id:
                raise ValueError("command, environmentId and codeId are for Command templates")
        return self

    def resolve(self, given: Mapping[str, Any]) -> dict[str, LiteralValue]:
        """Every input's value: the caller's where it may set it, else the default. Raises
        ValidationFailed naming each field a caller got wrong."""
        errors = []
        for name, value in given.items():
            spec = self.inputs.get(name)
            if spec is None:
                errors.append({"field": f"inputs.{name}", "message": f"not an input of job template {self.match}"})
            elif not spec.settable:
                errors.append({"field": f"inputs.{name}", "message": "set by the catalog; callers may not change it"})
            elif problem := spec.problem(value):
                errors.append({"field": f"inputs.{name}", "message": problem})
        values: dict[str, LiteralValue] = {}
        for name, spec in self.inputs.items():
            value = given.get(name, spec.default)
            if value is None:
                errors.append({"field": f"inputs.{name}", "message": "required: the template gives no default"})
            else:
                values[name] = value
        if errors:
            raise ValidationFailed(f"The inputs do not fit job template {self.match!r}.", errors)
        return values

    def job(self, run_id: str, values: Mapping[str, LiteralValue]) -> dict[str, Any]:
        """The ``JobBaseResource`` the gateway PUTs: the template's job, these inputs, and the run id tag."""
        properties: dict[str, Any] = {
            "jobType": self.job_type,
            "displayName": self.match,
            "experimentName": self.experiment_name or self.match,
            "description": f"Started by Pipeline Gateway as run {run_id}.",
            "tags": {RUN_ID_TAG: run_id},
            "computeId": self.compute_id,
            "componentId": self.component_id,
            "command": self.command,
            "environmentId": self.environment_id,
            "codeId": self.code_id,
            "inputs": {name: self.inputs[name].wire(value) for name, value in values.items()} or None,
        }
        return {"properties": {key: value for key, value in properties.items() if value is not None}}
