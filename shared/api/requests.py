"""Request bodies of the HTTP API, validated field by field.

Validation errors name the field and what to fix; names that end up in Azure URLs are checked
against Azure's naming rules here, before anything is recorded or sent. No name or key a caller
gives (parameter names, the batch name, its class name, ``conf`` and ``tags`` keys) may hold a
control, format or separator character: they reach Azure, the logs and on-call's screens.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.config import names
from shared.errors import ValidationFailed
from shared.kinds.pipelines import StartOptions
from shared.text import codepoint, invisible

MAX_PARAMETERS = 50  # ADF's limit of parameters per pipeline
MAX_NESTING = 16

M = TypeVar("M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_NESTING:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _activity_name(value: str | None) -> str | None:
    """Activity names follow the pipeline-name rule of the spec."""
    if value is not None and (problem := names.PIPELINE.problem(value)):
        raise ValueError(problem.replace("Pipeline name", "Activity name"))
    return value


class StartRunRequest(_Body):
    """POST /api/targets/{target}/pipelines/{pipeline}/runs."""

    parameters: dict[str, Any] = Field(default_factory=dict)
    referencePipelineRunId: str | None = None
    isRecovery: bool | None = None
    startActivityName: str | None = Field(default=None, min_length=1, max_length=260)
    startFromFailure: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_PARAMETERS:
            raise ValueError(f"at most {MAX_PARAMETERS} parameters are allowed (ADF's limit)")
        for key in value:
            if not key or len(key) > 260 or not key.isprintable():
                raise ValueError(f"parameter name {key[:40]!r} must be 1-260 printable characters")
        if _depth(value) > MAX_NESTING:
            raise ValueError(f"parameter values nest deeper than {MAX_NESTING} levels")
        return value

    @field_validator("referencePipelineRunId")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is not None and (problem := names.UPSTREAM_RUN_ID.problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("startActivityName")
    @classmethod
    def _activity(cls, value: str | None) -> str | None:
        return _activity_name(value)

    @model_validator(mode="after")
    def _recovery_needs_reference(self) -> StartRunRequest:
        if (self.isRecovery or self.startFromFailure or self.startActivityName) and not self.referencePipelineRunId:
            raise ValueError(
                "isRecovery, startActivityName and startFromFailure need referencePipelineRunId (the run to recover)"
            )
        if self.startFromFailure and self.startActivityName:
            raise ValueError("use either startFromFailure or startActivityName, not both")
        return self

    def options(self) -> StartOptions:
        return StartOptions(self.referencePipelineRunId, self.isRecovery, self.startActivityName, self.startFromFailure)


_MEMORY = r"^[1-9][0-9]{0,5}[mMgG]$"
_PATH_LIKE = 2048


def _strings(max_items: int) -> Any:
    return Field(default=None, max_length=max_items)


class SparkBatchRequest(_Body):
    """POST /api/targets/{target}/sparkpools/{pool}/batches: the Livy batch fields."""

    name: str = Field(min_length=1, max_length=128)
    file: str = Field(min_length=1, max_length=_PATH_LIKE)
    className: str | None = Field(default=None, min_length=1, max_length=512)
    args: list[str] | None = _strings(200)
    jars: list[str] | None = _strings(100)
    pyFiles: list[str] | None = _strings(100)
    files: list[str] | None = _strings(100)
    archives: list[str] | None = _strings(100)
    conf: dict[str, str] | None = None
    driverMemory: str | None = Field(default=None, pattern=_MEMORY)
    driverCores: int | None = Field(default=None, ge=1, le=64)
    executorMemory: str | None = Field(default=None, pattern=_MEMORY)
    executorCores: int | None = Field(default=None, ge=1, le=64)
    numExecutors: int | None = Field(default=None, ge=1, le=500)
    tags: dict[str, str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("the batch name must be printable text")
        return value

    @field_validator("className")
    @classmethod
    def _class_name(cls, value: str | None) -> str | None:
        if value is not None and (char := invisible(value)) is not None:
            raise ValueError(f"the class name must not contain control or invisible characters ({codepoint(char)})")
        return value

    @field_validator("args", "jars", "pyFiles", "files", "archives")
    @classmethod
    def _items(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(len(item) > _PATH_LIKE for item in value):
            raise ValueError(f"each entry must be at most {_PATH_LIKE} characters")
        return value

    @field_validator("conf", "tags")
    @classmethod
    def _maps(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and (len(value) > 200 or any(not k or len(k) > 256 for k in value)):
            raise ValueError("at most 200 entries, with keys of 1-256 characters")
        for key in value or ():
            if (char := invisible(key)) is not None:
                raise ValueError(
                    f"key {key[:40]!r} must not contain control or invisible characters ({codepoint(char)})"
                )
        return value

    def livy_body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


MAX_INPUTS = 50
MAX_INPUT_STRING = 4096


class JobRunRequest(_Body):
    """POST /api/targets/{target}/jobs/{template}/runs: values for the inputs the job template opens to
    callers (strings, numbers, booleans; URIs as strings). The template checks each against its type."""

    inputs: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: dict[str, str | int | float | bool]) -> dict[str, str | int | float | bool]:
        if len(value) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} inputs are allowed")
        for key, item in value.items():
            if problem := names.ML_INPUT.problem(key):
                raise ValueError(problem)
            if isinstance(item, str) and len(item) > MAX_INPUT_STRING:
                raise ValueError(f"input {key!r} is longer than {MAX_INPUT_STRING} characters")
        return value


class CancelRequest(_Body):
    """POST /api/runs/{id}/cancel."""

    recursive: bool = False


class RerunRequest(_Body):
    """POST /api/runs/{id}/rerun: how to recover. Empty reruns the whole pipeline (or batch)."""

    startFromFailure: bool | None = None
    startActivityName: str | None = Field(default=None, min_length=1, max_length=260)

    @field_validator("startActivityName")
    @classmethod
    def _activity(cls, value: str | None) -> str | None:
        return _activity_name(value)

    @model_validator(mode="after")
    def _one_way(self) -> RerunRequest:
        if self.startFromFailure and self.startActivityName:
            raise ValueError("use either startFromFailure or startActivityName, not both")
        return self


def parse_body(model: type[M], data: Any) -> M:
    """Validates ``data`` as ``model``; every problem is reported with its field path."""
    if not isinstance(data, dict):
        raise ValidationFailed(
            "The request body must be a JSON object.", [{"field": "(body)", "message": "expected a JSON object"}]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": _message(err)}
            for err in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        raise ValidationFailed(f"Fix these fields: {summary}", errors) from None


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    return str(error["msg"]).removeprefix("Value error, ")


def validate_name(rule: names.NameRule, value: str, field: str) -> str:
    """Checks a path segment from the URL; the caller sees which segment and why."""
    problem = rule.problem(value)
    if problem:
        from shared.errors import InvalidName

        raise InvalidName(problem, [{"field": field, "message": problem}])
    return value
