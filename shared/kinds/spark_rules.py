"""Spark guardrails per pool: where a batch's code may come from, which ``conf`` keys it may set, and how
much compute it may ask for.

Livy runs whatever a definition names, as the workspace's identity: a jar from any web server, JVM options,
an account key in ``conf`` or a hundred thousand executors are code and cost a caller must not control. A
pool's catalog rule (``SparkPoolRule``) may set its own locations, ``conf`` globs and caps; each part it
leaves out falls back to the conservative default below (the README's "Spark guardrails" states them).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated
from urllib.parse import SplitResult, urlsplit

from pydantic import AfterValidator, Field, field_validator

from shared.config.targets import AccessRule
from shared.errors import ValidationFailed

if TYPE_CHECKING:
    from shared.api.requests import SparkBatchRequest

MIB = 1024**2
GIB = 1024**3

# One Synapse "Medium" executor (8 vCores, 56 GB of a 64 GB node), ten of them: a sizeable job that still
# leaves a shared pool room for others. More is an operator's decision, made per pool in the catalog.
DEFAULT_MAX_EXECUTORS = 10
DEFAULT_MAX_CORES = 8
DEFAULT_MAX_MEMORY = "56g"

# Storage account endpoints (public, US Government and China clouds). ABFS and WASB send the workspace's
# storage token to whatever host a location names, so the host must be a storage account's.
_STORAGE_HOST = re.compile(r"[a-z0-9]{3,24}\.(?:dfs|blob)\.core\.(?:windows\.net|usgovcloudapi\.net|chinacloudapi\.cn)")
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_CONTAINER_SCHEMES = frozenset({"abfss", "abfs", "wasbs"})  # abfs:// goes over HTTPS too (fs.azure.always.use.https)
DEFAULT_LOCATIONS = (
    "Azure Storage: abfss://, abfs:// or wasbs://<container>@<account>.dfs|blob.core.windows.net/..., "
    "or https://<account>.dfs|blob.core.windows.net/..."
)

# Keys the default refuses, and why (matched case-insensitively): each runs code the locations check never
# saw, or gives the job credentials or an environment of the caller's choosing.
DEFAULT_REFUSED_CONF: tuple[tuple[str, str], ...] = (
    ("*extrajavaoptions", "sets JVM options"),
    ("*defaultjavaoptions", "sets JVM options"),
    ("*extraclasspath", "sets a class path"),
    ("*extralibrarypath", "sets a native library path"),
    ("spark.jars.*", "adds packages, repositories or jars the locations check never sees"),
    ("spark.yarn.jars", "replaces Spark's own jars"),
    ("*jars*", "loads jars the locations check never sees"),  # spark.jars, spark.sql.hive.metastore.jars.path...
    ("spark.files", "adds files the locations check never sees"),
    ("spark.archives", "adds archives the locations check never sees"),
    ("spark.submit.pyfiles", "adds Python files the locations check never sees"),
    ("spark.yarn.dist.*", "adds files the locations check never sees"),
    ("spark.yarn.archive", "replaces Spark's own jars"),
    ("spark.pyspark.python", "chooses the program that runs Python"),
    ("spark.pyspark.driver.python", "chooses the program that runs Python"),
    ("spark.r.command", "chooses the program that runs R"),
    ("spark.r.driver.command", "chooses the program that runs R"),
    ("*discoveryscript", "runs a script on the nodes"),
    ("*fs.azure.account.key*", "sets a storage account key"),
    ("*fs.azure.account.oauth*", "sets storage credentials"),
    ("*fs.azure.account.auth.type*", "changes how storage is signed in to"),
    ("*fs.azure.sas*", "sets a SAS token"),
    ("*.sas.*", "sets a SAS token"),
    ("*secret*", "sets a secret"),
    ("*password*", "sets a password"),
    ("*keytab*", "sets Kerberos credentials"),
    ("spark.*env.*", "sets environment variables"),  # spark.executorEnv.*, spark.yarn.appMasterEnv.*, ...
)

# Spark reads keys as spelled; these characters cover its keys, and none of them can start another key or
# line wherever Livy writes the conf down.
_CONF_KEY = re.compile(r"[A-Za-z0-9._-]+")
_WHOLE = re.compile(r"[0-9]{1,9}")
_SIZE = re.compile(r"([0-9]{1,15})(b|k|kb|m|mb|g|gb|t|tb|p|pb)?")
_FACTOR = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,6})?")
_UNITS = {"b": 1, "k": 1024, "m": MIB, "g": GIB, "t": 1024**4, "p": 1024**5}

# What Livy's own fields set, as the conf keys they become: both ways are capped alike.
_FIELD_KEYS = (
    ("numExecutors", "spark.executor.instances"),
    ("driverCores", "spark.driver.cores"),
    ("executorCores", "spark.executor.cores"),
    ("driverMemory", "spark.driver.memory"),
    ("executorMemory", "spark.executor.memory"),
)
_EXECUTOR_KEYS = frozenset(
    {
        "spark.executor.instances",
        "spark.dynamicallocation.maxexecutors",
        "spark.dynamicallocation.initialexecutors",
        "spark.dynamicallocation.minexecutors",
    }
)
_CORE_KEYS = frozenset({"spark.driver.cores", "spark.executor.cores"})
# Memory keys: the container they size, the part of it, and the unit Spark reads a bare number in.
_MEMORY_KEYS = {
    "spark.driver.memory": ("driver", "heap", MIB),
    "spark.executor.memory": ("executor", "heap", MIB),
    "spark.driver.memoryoverhead": ("driver", "overhead", MIB),
    "spark.executor.memoryoverhead": ("executor", "overhead", MIB),
    "spark.executor.pyspark.memory": ("executor", "extra", MIB),
    "spark.memory.offheap.size": ("executor", "extra", 1),
}
_OVERHEAD_FACTORS = {"spark.driver.memoryoverheadfactor": "driver", "spark.executor.memoryoverheadfactor": "executor"}
_DYNAMIC = "spark.dynamicallocation.enabled"
_MAX_DYNAMIC = "spark.dynamicAllocation.maxExecutors"  # exactly so: Spark ignores another spelling


def memory_bytes(value: str, unit: int = MIB) -> int | None:
    """A size as Spark reads it (``4g``, ``4096m``, ``4096``: a bare number is in ``unit``), or None."""
    found = _SIZE.fullmatch(value.strip().lower())
    if found is None:
        return None
    number, suffix = found.groups()
    return int(number) * (_UNITS[suffix[0]] if suffix else unit)


def _size(amount: int) -> str:
    return f"{amount // GIB}g" if amount % GIB == 0 else f"{-(-amount // MIB)}m"


def _location_prefix(value: str) -> str:
    """An allowed location is a folder, ``scheme://authority/path/``, so that a prefix never half-matches
    a sibling (``.../approved`` would let ``.../approved-evil/x.jar`` through)."""
    parts = _parsed(value)
    if isinstance(parts, str) or not (parts.scheme and parts.netloc and value.endswith("/")):
        raise ValueError("an allowed location is a folder URI such as abfss://jobs@lake.dfs.core.windows.net/approved/")
    return value


def _conf_glob(value: str) -> str:
    if not value or len(value) > 256 or not value.isprintable() or " " in value:
        raise ValueError("a conf key or glob such as spark.sql.*: 1-256 printable characters without spaces")
    return value


class SparkPoolRule(AccessRule):
    """An allowed Spark pool and its guardrails; a part the rule sets replaces that part of the default.

    ``allowedLocations``: folder URIs that the batch's file, jars, pyFiles, files and archives must lie under.
    ``allowedConf``: globs of the ``conf`` keys a batch may set; a key the default refuses (JVM options,
    credentials...) only when listed exactly, so that ``spark.executor.*`` does not let
    ``spark.executor.extraJavaOptions`` through by accident. ``maxExecutors``, ``maxCores``, ``maxMemory``:
    executors, and the cores and memory of the driver and of each executor, however the batch sets them.
    """

    allowed_locations: tuple[Annotated[str, AfterValidator(_location_prefix)], ...] | None = Field(
        default=None, min_length=1
    )
    allowed_conf: tuple[Annotated[str, AfterValidator(_conf_glob)], ...] | None = None
    max_executors: int | None = Field(default=None, gt=0)
    max_cores: int | None = Field(default=None, gt=0)
    max_memory: str | None = Field(default=None, pattern=r"^[1-9][0-9]{0,5}[mMgG]$")

    @field_validator("allowed_locations", "allowed_conf")
    @classmethod
    def _once_each(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("an entry is listed twice")
        return value

    def check_batch(self, pool: str, batch: SparkBatchRequest) -> None:
        """Refuses (422) a batch that breaks the pool's guardrails, naming each field and the rule it breaks."""
        problems = [
            *self._location_problems(batch),
            *self._conf_problems(batch.conf or {}),
            *_cap_problems(self, batch),
        ]
        if problems:
            first = f"{problems[0]['field']}: {problems[0]['message']}"
            more = f" (and {len(problems) - 1} more, listed in errors)" if len(problems) > 1 else ""
            raise ValidationFailed(f"The batch breaks the Spark rules of pool {pool!r}: {first}{more}", problems)

    def _location_problems(self, batch: SparkBatchRequest) -> Iterator[dict[str, str]]:
        located = [("file", batch.file)]
        for name, values in (
            ("jars", batch.jars),
            ("pyFiles", batch.pyFiles),
            ("files", batch.files),
            ("archives", batch.archives),
        ):
            located += [(f"{name}[{i}]", value) for i, value in enumerate(values or ())]
        if self.allowed_locations is not None:
            where = f"the pool's allowed locations ({', '.join(self.allowed_locations)})"
        else:
            where = f"the default allowed locations ({DEFAULT_LOCATIONS})"
        for name, location in located:
            parts = _parsed(location)
            if isinstance(parts, str):
                yield {"field": name, "message": parts}
            elif not self._allows_location(location, parts):
                yield {"field": name, "message": f"{location} is outside {where}"}

    def _allows_location(self, location: str, parts: SplitResult) -> bool:
        if self.allowed_locations is not None:
            return location.startswith(self.allowed_locations)
        return _in_azure_storage(location, parts)

    def _conf_problems(self, conf: Mapping[str, str]) -> Iterator[dict[str, str]]:
        for key, value in conf.items():
            if not _CONF_KEY.fullmatch(key):
                problem: str | None = "a conf key is letters, digits, '.', '_' and '-'"
            elif not value.isprintable():
                problem = "a conf value is printable text on one line"
            else:
                problem = self._conf_key_problem(key)
            if problem is not None:
                yield {"field": f"conf.{key}", "message": problem}

    def _conf_key_problem(self, key: str) -> str | None:
        refused = _refused_why(key)
        if self.allowed_conf is None:
            return None if refused is None else f"{key} {refused}, which the default conf rule refuses"
        allowed = key in self.allowed_conf if refused else any(fnmatch.fnmatchcase(key, g) for g in self.allowed_conf)
        if allowed:
            return None
        named = f" ({refused}: allowedConf must name it exactly)" if refused else ""
        return f"{key} is not among the pool's allowed conf keys ({', '.join(self.allowed_conf)}){named}"


def _refused_why(key: str) -> str | None:
    lowered = key.lower()
    return next((why for glob, why in DEFAULT_REFUSED_CONF if fnmatch.fnmatchcase(lowered, glob)), None)


def _parsed(location: str) -> SplitResult | str:
    """The location's parts, or what makes it unsafe to compare by prefix whatever the rule: a ``..`` or an
    encoded character can climb out of an allowed folder, and a query would carry a SAS token into the record."""
    if any(c.isspace() or not c.isprintable() or c in "\\%" for c in location):
        return f"{location!r} has spaces, control characters, backslashes or percent-encoding"
    if "?" in location:
        return f"{location} has a query; a SAS token does not belong in a batch definition (it is recorded)"
    try:
        parts = urlsplit(location)
    except ValueError:  # an unbalanced [ in the host
        return f"{location} is not a URI"
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        return f"{location} has a '.' or '..' segment; name the file by its plain path"
    if "/" in parts.fragment or parts.fragment in (".", ".."):  # the #name a file is linked as, beside the job
        return f"{location} links the file as {parts.fragment!r}; a link name is a plain file name"
    return parts


def _in_azure_storage(location: str, parts: SplitResult) -> bool:
    if not location.startswith(f"{parts.scheme}://") or len(parts.path) < 2:
        return False
    container, at, host = parts.netloc.rpartition("@")
    if not _STORAGE_HOST.fullmatch(host):
        return False
    if parts.scheme in _CONTAINER_SCHEMES:
        return bool(at and _CONTAINER.fullmatch(container))
    return parts.scheme == "https" and not at


@dataclass(frozen=True)
class _Cap:
    rule: str  # the catalog field that sets it
    limit: int
    of_pool: bool  # set on the pool's rule, not the default

    def __str__(self) -> str:
        limit = _size(self.limit) if self.rule == "maxMemory" else str(self.limit)
        whose = "the pool's" if self.of_pool else "the default"
        return f"{whose} cap of {limit} ({self.rule})"

    def refuse(self, where: str, asked: str) -> dict[str, str]:
        return {"field": where, "message": f"{asked} is over {self}"}


@dataclass
class _Container:
    """What a definition sets of one container's memory. Spark sizes a container as its heap, plus the
    overhead (set, or a factor of the heap), plus PySpark and off-heap memory: each counts against the cap."""

    heap: list[int] = field(default_factory=list)
    overhead: list[tuple[str, int]] = field(default_factory=list)
    extra: list[tuple[str, int]] = field(default_factory=list)
    factor: tuple[str, float] | None = None
    over: bool = False  # one amount alone is over the cap, and reported already

    def add(self, part: str, where: str, amount: int) -> None:
        if part == "heap":
            self.heap.append(amount)
        else:
            (self.overhead if part == "overhead" else self.extra).append((where, amount))

    def total_problem(self, name: str, cap: _Cap) -> dict[str, str] | None:
        added = [where for where, _ in self.overhead + self.extra] + ([self.factor[0]] if self.factor else [])
        if self.over or not added:
            return None  # the heap alone was checked already
        heap = max(self.heap, default=0)
        overhead = max((amount for _, amount in self.overhead), default=0)
        if self.factor is not None and not self.overhead:
            if not self.heap:
                return {
                    "field": self.factor[0],
                    "message": f"set {name}Memory with it, so that the overhead it scales is checked against {cap}",
                }
            overhead = int(heap * self.factor[1])
        total = heap + overhead + sum(amount for _, amount in self.extra)
        if total <= cap.limit:
            return None
        return cap.refuse(added[0], f"the {name}'s {_size(total)} (heap, overhead, PySpark and off-heap memory)")


def _caps(rule: SparkPoolRule) -> tuple[_Cap, _Cap, _Cap]:
    memory = rule.max_memory or DEFAULT_MAX_MEMORY
    return (
        _Cap("maxExecutors", rule.max_executors or DEFAULT_MAX_EXECUTORS, rule.max_executors is not None),
        _Cap("maxCores", rule.max_cores or DEFAULT_MAX_CORES, rule.max_cores is not None),
        _Cap("maxMemory", int(memory[:-1]) * (GIB if memory[-1] in "gG" else MIB), rule.max_memory is not None),
    )


def _cap_problems(rule: SparkPoolRule, batch: SparkBatchRequest) -> Iterator[dict[str, str]]:
    """Every way a definition sets executors, cores or memory, Livy's fields and conf keys alike, is checked:
    a cap a conf key could lift would be no cap. A key Spark would not read (another spelling) is checked
    all the same, which costs nothing."""
    executors, cores, memory = _caps(rule)
    settings = [(name, key, str(getattr(batch, name))) for name, key in _FIELD_KEYS if getattr(batch, name) is not None]
    settings += [(f"conf.{key}", key.lower(), value) for key, value in (batch.conf or {}).items()]
    containers = {"driver": _Container(), "executor": _Container()}
    for where, key, value in settings:
        if key in _EXECUTOR_KEYS or key in _CORE_KEYS:
            cap, noun = (executors, "executors") if key in _EXECUTOR_KEYS else (cores, "cores")
            if _WHOLE.fullmatch(value.strip()) is None:
                yield {"field": where, "message": f"{value!r} is not a whole number"}
            elif int(value) > cap.limit:
                yield cap.refuse(where, f"{int(value)} {noun}")
        elif key in _MEMORY_KEYS:
            name, part, unit = _MEMORY_KEYS[key]
            amount = memory_bytes(value, unit)
            if amount is None:
                yield {"field": where, "message": f"{value!r} is not a size such as 4g or 4096m"}
            elif amount > memory.limit:
                containers[name].over = True
                yield memory.refuse(where, value)
            else:
                containers[name].add(part, where, amount)
        elif key in _OVERHEAD_FACTORS:
            if _FACTOR.fullmatch(value.strip()) is None:
                yield {"field": where, "message": f"{value!r} is not a factor such as 0.1"}
            else:
                containers[_OVERHEAD_FACTORS[key]].factor = (where, float(value))
    for name, container in containers.items():
        if (problem := container.total_problem(name, memory)) is not None:
            yield problem
    yield from _dynamic_allocation(batch.conf or {}, executors)


def _dynamic_allocation(conf: Mapping[str, str], cap: _Cap) -> Iterator[dict[str, str]]:
    """Dynamic allocation without a maximum grows to whatever the pool allows: past any cap of ours."""
    enabled = [key for key, value in conf.items() if key.lower() == _DYNAMIC and value.strip().lower() == "true"]
    if enabled and _MAX_DYNAMIC not in conf:
        message = f"dynamic allocation needs {_MAX_DYNAMIC} within {cap}: without it, it grows to the pool's size"
        yield {"field": f"conf.{enabled[0]}", "message": message}
