"""Wire schemas (separate from the ORM tables). The job body's shape is declared here for the
OpenAPI document; its rules (names, ranges, defaults, method options, cross-field checks) belong
to the torch-free job spec, `pruning_core.spec`, which service.normalized_spec runs on every
submission, so a bad job is refused at the door with the exact field, not an hour later."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from db import egress, schedules, webhooks
from pruning_core import spec as jobspec

Method = Literal[tuple(jobspec.DECLARED)]  # type: ignore[valid-type]
EvalDataset = Literal[jobspec.EVAL_DATASETS]  # type: ignore[valid-type]
ZeroShotTask = Literal[jobspec.ZERO_SHOT_TASKS]  # type: ignore[valid-type]
OptionValue = bool | int | float | str
_DATASET_ID = re.compile(r"^ds_[0-9a-f]{20}$")


def _as_utc(value: datetime) -> datetime:
    """SQLite returns timestamps without a zone; every stored timestamp is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]


def _nul_at(value: Any, where: str = "") -> str | None:
    """The dotted path of the first string (value or key) holding a NUL character, if any."""
    if isinstance(value, str):
        return (where or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            at = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and "\x00" in key:
                return at.replace("\x00", "")
            found = _nul_at(item, at)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_at(item, f"{where}[{i}]")
            if found:
                return found
    return None


class Body(BaseModel):
    """Base of every request body: unknown fields are refused, and so is a NUL character in any
    string (PostgreSQL cannot store one; a path with one cannot be opened)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        at = _nul_at(data)
        if at:
            raise ValueError(f"{at}: text must not contain NUL (U+0000) characters")
        return data


def _limit(where: str, **extra: Any) -> Any:
    """A Field documenting the spec's range for `where` (jobspec.LIMITS); the spec enforces it."""
    low, high = jobspec.LIMITS[where]
    return Field(json_schema_extra={"minimum": low, "maximum": high}, **extra)


def _options_schema() -> dict[str, Any]:
    """The options object of each method, for the OpenAPI document (x-options-by-method)."""
    by_method = {}
    for name, declared in jobspec.DECLARED.items():
        props = {}
        for o in declared.options:
            item = o.describe()
            props[o.name] = {"type": item.pop("type"), **{k: v for k, v in item.items() if k != "name"}}
        by_method[name] = {"type": "object", "properties": props, "additionalProperties": False}
    return {"x-options-by-method": by_method}


_CAL = jobspec.CalibrationSpec()  # the spec's defaults


class Calibration(Body):
    source: str = Field(_CAL.source, description="c4, wikitext2, ptb, or an uploaded dataset id (ds_...)", max_length=40)
    nsamples: int = _limit("calibration.nsamples", default=_CAL.nsamples)
    seqlen: int = _limit("calibration.seqlen", default=_CAL.seqlen)
    seed: int = _limit("calibration.seed", default=_CAL.seed)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v not in jobspec.CALIB_DATASETS and not _DATASET_ID.match(v):
            raise ValueError(f"must be one of {', '.join(jobspec.CALIB_DATASETS)} or an uploaded dataset id")
        return v


class Evaluation(Body):
    datasets: list[EvalDataset] = Field(default_factory=lambda: list(jobspec.DEFAULT_EVAL_DATASETS),
                                        max_length=len(jobspec.EVAL_DATASETS))
    limit: int | None = _limit("evaluation.limit", default=None, description="at most this many windows per dataset")
    seqlen: int | None = _limit("evaluation.seqlen", default=None, description="window length; default: calibration seqlen")
    tasks: list[ZeroShotTask] = Field(default_factory=list, max_length=len(jobspec.ZERO_SHOT_TASKS),
                                      description="zero-shot tasks, scored the lm-evaluation-harness way")
    task_limit: int | None = _limit("evaluation.task_limit", default=None, description="at most this many items per task")
    dense: bool = Field(True, description="also evaluate the dense model")


class Quantize(Body):
    bits: int = _limit("quantize.bits", default=jobspec.QuantSpec().bits)
    group_size: int | None = _limit("quantize.group_size", default=None)
    format: Literal[jobspec.job.QUANT_FORMATS] = Field(  # type: ignore[valid-type]
        jobspec.QuantSpec().format, description="packed: compressed-tensors pack-quantized (served by vLLM as W4A16); "
                                                "dense: float weights on the grid")


_PROFILE = jobspec.SparsityProfile()  # the spec's defaults; its ranges are in profile.py


class SparsityRule(Body):
    match: str = Field(..., max_length=500, description="regular expression searched in each layer's full name, "
                       "e.g. model.layers.0.self_attn.q_proj")
    sparsity: float = Field(..., description="that layer's sparsity in [0, 1); 0 leaves it dense")


class SparsityProfile(Body):
    kind: Literal[jobspec.profile.KINDS] = Field(  # type: ignore[valid-type]
        _PROFILE.kind, description="uniform: every layer at the target; owl: outlier-weighted per block; rules: only the rules")
    owl_m: float = Field(_PROFILE.owl_m, description="OWL: a score above M times the block's mean is an outlier",
                         json_schema_extra={"minimum": jobspec.profile.OWL_M_RANGE[0],
                                            "maximum": jobspec.profile.OWL_M_RANGE[1]})
    owl_lambda: float = Field(_PROFILE.owl_lambda, description="OWL: block sparsities span 2*lambda around the target",
                              json_schema_extra={"minimum": jobspec.profile.OWL_LAMBDA_RANGE[0],
                                                 "maximum": jobspec.profile.OWL_LAMBDA_RANGE[1]})
    rules: list[SparsityRule] = Field(default_factory=list, max_length=256,
                                      description="first match wins; the other layers share the rest of the budget")


class Gates(Body):
    max_ppl_ratio: float | None = Field(None, description="pruned / dense perplexity, on every evaluated dataset",
                                           json_schema_extra={"minimum": 1})
    max_ppl: float | None = Field(None, description="pruned perplexity, on every evaluated dataset",
                                     json_schema_extra={"minimum": 1})
    min_zero_shot_retained: float | None = Field(None, description="pruned / dense mean zero-shot accuracy",
                                                    json_schema_extra={"minimum": 0, "maximum": 1.5})
    max_regression: float | None = Field(None, description="relative perplexity increase over the last succeeded "
                                            "job of the same schedule (0.02: 2%)",
                                            json_schema_extra={"minimum": 0, "maximum": 100})


class JobCreate(Body):
    model: str = Field(..., min_length=1, max_length=500, description="bundled name, registered model, or hub id")
    method: Method = Field(..., description="GET /v1/methods lists each method with its options")
    sparsity: float | None = Field(None, description=f"fraction of zeros in [0, 1); default "
                                      f"{jobspec.DEFAULT_SPARSITY}, or the pattern's")
    pattern: str | None = Field(None, max_length=20, description="'unstructured' or N:M, e.g. 2:4")
    options: dict[str, OptionValue] = Field(default_factory=dict, max_length=64, json_schema_extra=_options_schema(),
                                            description="the method's options (GET /v1/methods); unknown names are refused")
    quantize: Quantize | None = None
    sparsity_profile: SparsityProfile = Field(default_factory=SparsityProfile,
                                              description="how the global sparsity is spread over the layers")
    dense_target: float = Field(0.0, description="weight in [0, 1] of the dense model's layer outputs in each layer's "
                                "reconstruction target (methods that read H); 0: the pruned inputs alone",
                                json_schema_extra={"minimum": 0, "maximum": 1})
    calibration: Calibration = Field(default_factory=Calibration)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    device: str = Field("auto", max_length=10, description="auto, cpu, cuda or cuda:N",
                        json_schema_extra={"pattern": jobspec.job.DEVICE.pattern})
    dtype: Literal[jobspec.DTYPES] = Field("auto", description="storage dtype; auto keeps the checkpoint's own")  # type: ignore[valid-type]
    sweep: list[float | str] | None = Field(
        None, max_length=jobspec.job.MAX_SWEEP_POINTS,
        description="prune at each of these settings (sparsities, N:M patterns) instead of one: one checkpoint per "
                    "point, the dense evaluation shared, the report a perplexity-vs-sparsity curve")
    gates: Gates | None = Field(None, description="limits the report must meet; a job that breaks one ends "
                                   "gate_failed, its checkpoint and report kept")
    metadata: dict[str, str] = Field(default_factory=dict, max_length=16)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not 1 <= len(key) <= 40 or len(value) > 500:
                raise ValueError("metadata keys need 1-40 characters and values at most 500")
        return v


class ApiKeyOut(BaseModel):
    id: str
    object: Literal["api_key"] = "api_key"
    prefix: str = Field(description="the key's public part, tpk_<8 hex>; the secret is never shown again")
    scopes: list[str]
    created_at: Timestamp
    revoked_at: Timestamp | None = None


class Needs(BaseModel):
    host_memory_bytes: int
    gpu_memory_bytes: int | None = Field(None, description="None when the job runs on the CPU")
    disk_bytes: int = Field(description="the result plus the resume area while the job runs")
    expected_seconds: float


class SecondsRange(BaseModel):
    low: float
    expected: float
    high: float


class WorkerClass(BaseModel):
    device: str
    gpu_name: str | None = None
    gpu_memory_bytes: int | None = None
    host_memory_bytes: int
    workers: int = Field(description="live workers of this class")
    runs_on: str | None = Field(None, description="cpu | cuda: where the job would run there; None: it cannot")
    fits: bool
    needs: Needs | None = None
    seconds: SecondsRange | None = None


class JobEstimate(BaseModel):
    object: Literal["job_estimate"] = "job_estimate"
    model: str
    params: int
    streamed: bool = Field(description="read block by block (a safetensors directory) rather than loaded whole")
    needs: dict[str, Needs] = Field(description="by device: cpu and cuda")
    worker_classes: list[WorkerClass] = Field(description="the live workers, grouped by what they run on")
    admitted: bool = Field(description="whether POST /v1/jobs would accept this job now")


class WorkerOut(BaseModel):
    id: str = Field(description="host:pid of the worker process")
    object: Literal["worker"] = "worker"
    name: str = Field(description="gpu0, cpu...: the worker's slot on its host")
    host: str
    pid: int
    queue: str
    device: str = Field(description="cuda | cpu | mps")
    gpu_name: str | None = None
    gpu_memory_bytes: int | None = None
    host_memory_bytes: int
    cpus: int
    version: str
    busy: bool = Field(description="running a job now")
    current_job_id: str | None = Field(None, description="the job in hand, when it is one of the caller's tenant")
    started_at: Timestamp
    heartbeat_at: Timestamp


class JobError(BaseModel):
    code: str
    message: str


class JobOut(BaseModel):
    id: str
    object: Literal["pruning_job"] = "pruning_job"
    status: str
    model: str
    method: str
    spec: dict[str, Any]
    metadata: dict[str, str]
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: JobError | None
    attempt: int
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    schedule_id: str | None = None  # set when a schedule created the job ...
    scheduled_for: Timestamp | None = None  # ... for this slot


class EventOut(BaseModel):
    id: int
    object: Literal["pruning_job.event"] = "pruning_job.event"
    type: str
    data: dict[str, Any]
    created_at: Timestamp


class ArtifactOut(BaseModel):
    id: str
    object: Literal["artifact"] = "artifact"
    name: str
    size: int
    sha256: str
    created_at: Timestamp


class ModelCreate(Body):
    name: str = Field(..., min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][\w.-]*$")
    path: str | None = Field(None, max_length=1000, description="a model directory under an allowed root")
    hub_id: str | None = Field(None, max_length=200, pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

    @model_validator(mode="after")
    def _one_source(self) -> ModelCreate:
        if (self.path is None) == (self.hub_id is None):
            raise ValueError("give exactly one of path or hub_id")
        return self


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"
    name: str
    kind: str
    source: str
    created_at: Timestamp | None


class DatasetOut(BaseModel):
    id: str
    object: Literal["dataset"] = "dataset"
    name: str
    size: int
    sha256: str
    created_at: Timestamp


class ScheduleCreate(Body):
    name: str = Field(..., min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][\w.-]*$")
    cron: str = Field(..., max_length=120, description="5 fields: minute hour day-of-month month day-of-week")
    timezone: str = Field("UTC", max_length=64, description="IANA time zone the cron is read in")
    misfire: Literal["run_latest", "skip"] = Field("run_latest", description="missed slots: fire the latest once, or skip")
    enabled: bool = True
    job: JobCreate = Field(..., description="the job every slot creates, as for POST /v1/jobs")

    _cron = field_validator("cron")(lambda cls, v: schedules.check_cron(v))
    _timezone = field_validator("timezone")(lambda cls, v: schedules.check_timezone(v))


class ScheduleUpdate(Body):
    cron: str | None = Field(None, max_length=120)
    timezone: str | None = Field(None, max_length=64)
    misfire: Literal["run_latest", "skip"] | None = None
    enabled: bool | None = None

    _cron = field_validator("cron")(lambda cls, v: v if v is None else schedules.check_cron(v))
    _timezone = field_validator("timezone")(lambda cls, v: v if v is None else schedules.check_timezone(v))


class ScheduleOut(BaseModel):
    id: str
    object: Literal["schedule"] = "schedule"
    name: str
    cron: str
    timezone: str
    misfire: str
    enabled: bool
    spec: dict[str, Any]
    metadata: dict[str, str]
    next_fire_at: Timestamp | None
    last_fired_at: Timestamp | None
    last_job_id: str | None
    created_at: Timestamp


WebhookEvent = Literal[webhooks.EVENT_TYPES]  # type: ignore[valid-type]
_ALL_EVENTS = list(webhooks.EVENT_TYPES)


def _http_url(v: str | None) -> str | None:
    if v is not None and not re.match(r"^https?://[^\s/?#]+[^\s]*$", v):
        raise ValueError("must be an http:// or https:// URL")
    if v is not None:
        egress.split(v)  # a host and a numeric port; where it may lead is the route's check (settings)
    return v


class WebhookCreate(Body):
    url: str = Field(..., max_length=2000, description="receives POSTs signed per Standard Webhooks")
    events: list[WebhookEvent] = Field(default_factory=lambda: list(_ALL_EVENTS), min_length=1, max_length=len(_ALL_EVENTS))

    _url = field_validator("url")(lambda cls, v: _http_url(v))


class WebhookUpdate(Body):
    url: str | None = Field(None, max_length=2000)
    events: list[WebhookEvent] | None = Field(None, min_length=1, max_length=len(_ALL_EVENTS))
    enabled: bool | None = None

    _url = field_validator("url")(lambda cls, v: _http_url(v))


class WebhookOut(BaseModel):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    events: list[str]
    enabled: bool
    created_at: Timestamp
    secret: str | None = Field(None, description="whsec_...: only in the response that creates the endpoint")


class DeliveryOut(BaseModel):
    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: Timestamp | None
    created_at: Timestamp
    delivered_at: Timestamp | None
    payload: dict[str, Any]


class DownloadLink(BaseModel):
    object: Literal["download_link"] = "download_link"
    url: str = Field(description="GET it without an Authorization header; relative to the API's base URL")
    expires_at: Timestamp


class Page(BaseModel):
    object: Literal["list"] = "list"
    data: list[Any]
    has_more: bool
    first_id: str | int | None = None
    last_id: str | int | None = None
