"""Tables: tenants and keys, tickets and their jobs, agents' feedback, chat history, audit,
versioned configurations, served model versions, drift runs.

The schema is owned by Alembic (orchestrator/db/migrations); a change here needs a new
revision there, and tests/orchestrator/db/test_migrations.py fails when the two disagree.
"""

from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    literal,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, _dialect):
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, _dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class db_now(FunctionElement):  # a SQL function, named like one
    """The database's clock, plus `offset_s` seconds: one clock for every worker.

    Leases and due times compared against it agree across hosts whose clocks drift.
    """

    type = UTCDateTime()
    inherit_cache = True
    name = "db_now"

    def __init__(self, offset_s: float = 0.0):
        super().__init__(literal(float(offset_s), Float()))


@compiles(db_now, "postgresql")
def _db_now_postgresql(element, compiler, **kw) -> str:
    return f"(now() + make_interval(secs => {compiler.process(element.clauses, **kw)}))"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element, compiler, **kw) -> str:
    # The text SQLAlchemy stores for a UTC datetime (microseconds), so that comparisons
    # with stored values, which SQLite makes on the text, are exact.
    offset = compiler.process(element.clauses, **kw)
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', {offset})) || '000')"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {datetime: UTCDateTime(), dict: JSON, list: JSON}


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # The CRM signs webhook bodies with it; HMAC needs the secret itself, so it is not hashed.
    webhook_secret: Mapped[str | None] = mapped_column(String(100), default=None)
    # The bootstrap tenant, found by this flag, never by its name: its keys may hold `platform`.
    is_platform: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    keys: Mapped[list["ApiKey"]] = relationship(back_populates="tenant")


class ApiKey(Base):
    """A key is shown once; only its SHA-256 digest is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(200))  # space-separated
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # "bootstrap" (from ORCHESTRATOR_ADMIN_KEY: a new one revokes the older), "api" or "cli".
    origin: Mapped[str] = mapped_column(String(20), default="api", server_default="api")
    # orchestrator.environments: which configuration (and, later, model version) it meets.
    environment: Mapped[str] = mapped_column(
        String(20), default="production", server_default="production"
    )
    tenant: Mapped[Tenant] = relationship(back_populates="keys")

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())


class Ticket(Base):
    """A customer's message, its triage and its draft reply, all in one row."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "external_id", name="uq_tickets_tenant_external_id"),
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_tickets_tenant_idempotency"),
        Index("ix_tickets_tenant_status", "tenant_id", "status"),
        Index("ix_tickets_tenant_band", "tenant_id", "confidence_band"),
        Index("ix_tickets_tenant_updated", "tenant_id", "updated_at"),  # the workspace's events
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    channel: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    customer_email: Mapped[str | None] = mapped_column(String(320), default=None)
    external_id: Mapped[str | None] = mapped_column(String(200), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    extra: Mapped[dict] = mapped_column("metadata", default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    intent: Mapped[str | None] = mapped_column(String(100), default=None)
    confidence: Mapped[float | None] = mapped_column(default=None)
    department: Mapped[str | None] = mapped_column(String(50), default=None, index=True)
    type: Mapped[str | None] = mapped_column(String(50), default=None)
    priority: Mapped[str | None] = mapped_column(String(20), default=None, index=True)
    top: Mapped[list | None] = mapped_column(default=None)
    model_version: Mapped[str | None] = mapped_column(String(50), default=None)  # of the triage
    draft_text: Mapped[str | None] = mapped_column(Text, default=None)
    draft_source: Mapped[str | None] = mapped_column(String(20), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(default=None)
    # E-mail intake: the parts that are not the body ({filename, content_type, size}) and the
    # message as received; deferred, so that listing tickets never loads it.
    attachments: Mapped[list | None] = mapped_column(default=None)
    raw_message: Mapped[bytes | None] = mapped_column(LargeBinary, default=None, deferred=True)
    # The submitting key's environment: its drafts use that environment's configuration.
    # Webhook tickets, which no key submits, are production's.
    environment: Mapped[str] = mapped_column(
        String(20), default="production", server_default="production"
    )
    # Read at intake (services/ticket_signals): ISO 639-1 (None: unsure), five sentiment
    # levels, and the auto-reply and bulk-mail flags with what raised them.
    language: Mapped[str | None] = mapped_column(String(8), default=None)
    sentiment: Mapped[str | None] = mapped_column(String(20), default=None)
    auto_reply: Mapped[bool] = mapped_column(default=False, server_default=false())
    spam: Mapped[bool] = mapped_column(default=False, server_default=false())
    automation_reasons: Mapped[list | None] = mapped_column(default=None)
    # The triage's confidence band (services/bands.py); "low" is the review queue
    confidence_band: Mapped[str | None] = mapped_column(String(10), default=None)
    # The reply an agent sent from the workspace (orchestrator/web), and when
    reply_text: Mapped[str | None] = mapped_column(Text, default=None)
    replied_at: Mapped[datetime | None] = mapped_column(default=None)


class TicketEvent(Base):
    """A step in a ticket's history that no other row keeps: a status set by an agent, a
    reply sent, a draft written again. Arrival, triage and corrections are read from the
    ticket and its feedback rows (services/ticket_history.py)."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    kind: Mapped[str] = mapped_column(String(20))  # "status", "reply", "redraft"
    detail: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebSession(Base):
    """A signed-in browser of the agent workspace: the cookie holds a random token, this row
    its digest, the key it was exchanged for and the CSRF token its forms must send back."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class Job(Base):
    """Work owed on a ticket. Stored in the ticket's transaction, so none is ever lost.

    States and transitions: orchestrator/worker/queue.py (JobStatus).
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_run_after", "status", "run_after"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))  # for fair claiming
    status: Mapped[str] = mapped_column(String(20), default="pending")  # see JobStatus
    attempts: Mapped[int] = mapped_column(default=0)  # the job's own failures, not outages
    run_after: Mapped[datetime] = mapped_column(default=db_now())  # the database's clock
    # The holder's token while running; after done or failed, the worker that wrote it.
    lease_token: Mapped[str | None] = mapped_column(String(40), default=None)
    leased_until: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Feedback(Base):
    """An agent's correction of a triage field: a labelled example for the next training.

    Its provenance is kept with it: the ticket, the key that corrected it, the value before
    (for a first correction, the model's prediction), the model version that predicted, the
    model's confidence and the time. `python -m export dataset` reads the intent corrections.
    """

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    field: Mapped[str] = mapped_column(String(20))
    old_value: Mapped[str | None] = mapped_column(String(100))
    new_value: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str | None] = mapped_column(String(50), default=None)
    model_confidence: Mapped[float | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChatExchange(Base):
    """One chat completion: what was asked and what was answered, per tenant."""

    __tablename__ = "chat_exchanges"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    model: Mapped[str] = mapped_column(String(100))
    messages: Mapped[list] = mapped_column()
    reply: Mapped[str] = mapped_column(Text)
    finish_reason: Mapped[str] = mapped_column(String(20))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Who did what to which model, when, and how it went."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    # None: the orchestrator itself acted (a canary's automatic abort), not a key
    key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(200))
    request: Mapped[dict] = mapped_column(default=dict)
    result: Mapped[str] = mapped_column(String(20))  # ok | error
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConfigVersion(Base):
    """One version of a named configuration (chat, drafts) in one environment; never changed
    or deleted: a rollback activates an earlier version (ActiveConfig)."""

    __tablename__ = "config_versions"
    __table_args__ = (
        UniqueConstraint("name", "environment", "version", name="uq_config_versions_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    environment: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column()  # 1, 2, ... per (name, environment)
    body: Mapped[dict] = mapped_column()  # as validated by schemas.configs
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))  # the author
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ActiveConfig(Base):
    """Which version of a configuration an environment uses; no row, or no version: the
    built-in defaults (version 0)."""

    __tablename__ = "active_configs"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    environment: Mapped[str] = mapped_column(String(20), primary_key=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("config_versions.id"), default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """Signatures already accepted, so that a captured request cannot be replayed."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("tenant_id", "signature", name="uq_webhook_signature"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    signature: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # for pruning


class ModelVersion(Base):
    """One served version of a Triton model and its place in the rollout (services/versions.py):
    candidate, canary (with the share of production traffic it takes), production, archived or
    rolled_back. Rows are changed, never deleted: the audit log keeps who moved them."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model", "version", name="uq_model_versions_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column()  # Triton's version folder number
    state: Mapped[str] = mapped_column(String(20))  # services.versions.VersionState
    canary_percent: Mapped[int | None] = mapped_column(default=None)  # 1..99 while canary
    note: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RetrainRun(Base):
    """One `python -m export retrain` started through the API (services/retrain_runs.py): its
    options, where it is (step i of n, the step's message) and how it ended."""

    __tablename__ = "retrain_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    # queued | running | passed | refused | failed
    status: Mapped[str] = mapped_column(String(20), default="queued")
    options: Mapped[dict] = mapped_column(default=dict)
    step: Mapped[int] = mapped_column(default=0)
    steps: Mapped[int] = mapped_column(default=0)
    message: Mapped[str | None] = mapped_column(String(500), default=None)
    log_tail: Mapped[str | None] = mapped_column(Text, default=None)  # the last lines it printed
    report: Mapped[dict | None] = mapped_column(default=None)  # the model card or refusal report
    report_path: Mapped[str | None] = mapped_column(String(1000), default=None)
    published: Mapped[int | None] = mapped_column(default=None)  # the triage version published
    host: Mapped[str] = mapped_column(String(200), default="")  # where its processes run
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class DriftRun(Base):
    """One comparison of recent traffic with the training reference (services/drift): for one
    tenant, or for all tenants together (tenant_id null). A pass writes one row per scope that
    had enough tickets, under one pass_id; its HTML report is report_file in the reports folder."""

    __tablename__ = "drift_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    pass_id: Mapped[str] = mapped_column(String(32), index=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), default=None)
    model_version: Mapped[str | None] = mapped_column(String(50), default=None)  # the reference's
    reference_size: Mapped[int] = mapped_column()
    current_size: Mapped[int] = mapped_column()
    drift_share: Mapped[float] = mapped_column()  # share of the signals that drifted
    prediction_drift_score: Mapped[float] = mapped_column()
    embedding_drift_score: Mapped[float] = mapped_column()
    override_rate: Mapped[float | None] = mapped_column(default=None)  # None: no corrections
    drifted: Mapped[bool] = mapped_column()
    columns: Mapped[dict] = mapped_column(default=dict)  # per signal: score, threshold, drifted
    report_file: Mapped[str] = mapped_column(String(100))  # under DRIFT_REPORTS_DIR
    seconds: Mapped[float] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Diagnosis(Base):
    """A chest x-ray sent for diagnosis, the model's answer and a clinician's confirmation.

    The image is kept in-house until `expires_at` (ORCHESTRATOR_DIAGNOSIS_RETENTION_DAYS): here
    (`image`, deferred, so that listing diagnoses never loads it), or in the image store that
    IMAGE_STORE_KIND names, under `image_key` (contracts/image_store.py).
    """

    __tablename__ = "diagnoses"
    __table_args__ = (Index("ix_diagnoses_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))  # the sender
    content_type: Mapped[str] = mapped_column(String(20))  # image/png or image/jpeg
    width: Mapped[int]
    height: Mapped[int]
    size_bytes: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(20))
    probability: Mapped[float]
    threshold: Mapped[float]
    model_version: Mapped[str | None] = mapped_column(String(50), default=None)
    # the 28 x 28 input's mean and standard deviation on the 0-1 scale: what drift compares
    image_mean: Mapped[float]
    image_std: Mapped[float]
    confirmed_label: Mapped[str | None] = mapped_column(String(20), default=None)
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id"), default=None)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    image: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True, default=None)
    image_key: Mapped[str | None] = mapped_column(String(80), default=None)


class CreditScore(Base):
    """One applicant scored: who asked, when, the fields sent, the model version and the
    result (the audit a lender keeps of every decision)."""

    __tablename__ = "credit_scores"
    __table_args__ = (Index("ix_credit_scores_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    applicant: Mapped[dict]  # every field as sent (contracts.credit.FIELD_NAMES)
    model_version: Mapped[str] = mapped_column(String(50))
    probability_of_default: Mapped[float]
    score: Mapped[int]
    decision: Mapped[str] = mapped_column(String(10))  # approve, review or decline
    reasons: Mapped[list]  # the top features that raised the risk, with their contributions
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # What happened, as the lender reports it later (PUT .../outcome): None until then
    defaulted: Mapped[bool | None] = mapped_column(default=None)
    outcome_at: Mapped[datetime | None] = mapped_column(default=None)


class CreditPolicy(Base):
    """A tenant's decision costs and the thresholds they set (services/credit_policy.py)."""

    __tablename__ = "credit_policies"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    cost_accept_bad: Mapped[float]
    cost_refuse_good: Mapped[float]
    cost_review: Mapped[float]
    approve_below: Mapped[float]
    decline_from: Mapped[float]
    updated_by: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
