"""SQLAlchemy models. Invariants that matter are also enforced here, by the database."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import Mapped, mapped_column, query_expression, relationship

from core.domain.base import Base, UTCDateTime
from core.domain.enums import (
    ActivityKind,
    AssignedBy,
    CommunicationChannel,
    CustomerKind,
    HandoverStatus,
    IdempotencyState,
    LifecycleStage,
    LoyaltyTier,
    MeetingKind,
    NeedsTier,
    PaymentMethod,
    ReassignmentTrigger,
    RequestStatus,
    Strategy,
    SurveyKind,
    SurveyOccasion,
    SurveyStatus,
    TeamRole,
    ValueTier,
)


def _enum(enum_cls: type) -> SAEnum:
    # Stored as plain strings with a CHECK: adding a value later is a small migration.
    return SAEnum(
        enum_cls,
        native_enum=False,
        length=32,
        validate_strings=True,
        create_constraint=True,
        name=enum_cls.__name__.lower(),
    )


# References that many customers leave empty. Their indexes hold only the rows that have one:
# a full index of mostly NULLs looks useless to SQLite's ANALYZE statistics (one key for
# every row), which then scans every customer for ``group_director_id = ?``. Customers
# imported without a first contact would do the same to ``first_contact_id = ?``.
SPARSE_CUSTOMER_REFERENCES = (
    "backup_owner_id",
    "parent_id",
    "group_director_id",
    "first_contact_id",
)


def _sparse_index(table: str, column: str) -> Index:
    present = text(f"{column} IS NOT NULL")
    return Index(f"ix_{table}_{column}", column, sqlite_where=present, postgresql_where=present)


def _own_id(context: Any) -> str:
    # A new customer is a top-level account unless placed under a parent (bulk inserts too).
    return str(context.get_current_parameters()["id"])


def _own_path(context: Any) -> str:
    return _own_id(context) + "/"


class User(Base):
    """A person who can own customers and call the API. Roles live in the policy store."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    team: Mapped[str | None] = mapped_column(String(100), index=True)
    manager_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    capacity: Mapped[int | None] = mapped_column(Integer)
    # The language of the user's e-mails (``zh`` or ``en``); null: the server's default.
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity"),)


class Customer(Base):
    """A key customer and its profile. ``version`` guards concurrent updates."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[CustomerKind] = mapped_column(_enum(CustomerKind))
    industry: Mapped[str | None] = mapped_column(String(100), index=True)
    territory: Mapped[str | None] = mapped_column(String(200), index=True)
    product_lines: Mapped[list[str]] = mapped_column(JSON, default=list)
    lifecycle_stage: Mapped[LifecycleStage] = mapped_column(_enum(LifecycleStage), index=True)
    first_contact_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    first_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    backup_owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    value_tier: Mapped[ValueTier | None] = mapped_column(_enum(ValueTier), index=True)
    needs_tier: Mapped[NeedsTier | None] = mapped_column(_enum(NeedsTier))
    loyalty_tier: Mapped[LoyaltyTier | None] = mapped_column(_enum(LoyaltyTier))
    annual_revenue: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    profit_contribution: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    growth_potential: Mapped[int | None] = mapped_column(Integer)
    strategic_fit: Mapped[int | None] = mapped_column(Integer)
    payment_terms_days: Mapped[int | None] = mapped_column(Integer)
    payment_method: Mapped[PaymentMethod | None] = mapped_column(_enum(PaymentMethod))
    invoice_requirements: Mapped[str | None] = mapped_column(Text)
    communication_preference: Mapped[CommunicationChannel | None] = mapped_column(
        _enum(CommunicationChannel)
    )
    contacts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Plugin special needs: plugin name → field name → value (validated by the plugin's specs).
    special_needs: Mapped[dict[str, dict[str, Any]]] = mapped_column(
        JSON, default=dict, server_default="{}"
    )
    # The account hierarchy (``core.services.hierarchy``): the parent, the top-level account of
    # the group (itself for a top-level account), the materialised path of ids from the root
    # (``root/…/self/``, for subtree queries in one statement) and the depth (root: 0).
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"))
    root_id: Mapped[str] = mapped_column(String(40), index=True, default=_own_id)
    # Compared byte by byte on PostgreSQL too, so that a subtree is a range of the index.
    path: Mapped[str] = mapped_column(
        String(512).with_variant(String(512, collation="C"), "postgresql"),
        index=True,
        default=_own_path,
    )
    depth: Mapped[int] = mapped_column(Integer, default=0)
    # A top-level account's group account director: sees every unit of the group.
    group_director_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # A computed sort value (engagement stage, RFM score), loaded only by lists ordered by it.
    sort_value: Mapped[Any] = query_expression()

    # Loaded explicitly (joined) by the queries that need it; never lazily.
    active_ownership: Mapped[Ownership | None] = relationship(
        primaryjoin="and_(Customer.id == foreign(Ownership.customer_id), "
        "Ownership.valid_to.is_(None))",
        viewonly=True,
        uselist=False,
        lazy="raise",
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("ix_customers_name_id", "name", "id"),
        Index("ix_customers_created_at_id", "created_at", "id"),
        Index("ix_customers_updated_at_id", "updated_at", "id"),
        *(_sparse_index("customers", column) for column in SPARSE_CUSTOMER_REFERENCES),
        CheckConstraint(
            "payment_terms_days IS NULL OR payment_terms_days >= 0", name="payment_terms_days"
        ),
    )


class TeamMember(Base):
    """A person in a key account's team with a team role; one role per person and account."""

    __tablename__ = "team_members"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    role: Mapped[TeamRole] = mapped_column(_enum(TeamRole))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    added_by_id: Mapped[str | None] = mapped_column(String(64))


class Ownership(Base):
    """Who owned a customer, from when until when, and why (effective-dated history)."""

    __tablename__ = "ownerships"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    assigned_by: Mapped[AssignedBy] = mapped_column(_enum(AssignedBy))
    rule_id: Mapped[str | None] = mapped_column(String(40))
    rule_version: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[str | None] = mapped_column(String(64))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # The invariant "at most one active owner per customer", held by the database.
        Index(
            "uq_ownerships_active_customer",
            "customer_id",
            unique=True,
            sqlite_where=text("valid_to IS NULL"),
            postgresql_where=text("valid_to IS NULL"),
        ),
        Index(
            "ix_ownerships_active_owner",
            "owner_id",
            sqlite_where=text("valid_to IS NULL"),
            postgresql_where=text("valid_to IS NULL"),
        ),
        Index("ix_ownerships_customer_from", "customer_id", "valid_from"),
    )


class CasbinRule(Base):
    """Casbin policy lines (``p`` permissions, ``g`` role grants), the adapter's table."""

    __tablename__ = "casbin_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ptype: Mapped[str] = mapped_column(String(255))
    v0: Mapped[str | None] = mapped_column(String(255))
    v1: Mapped[str | None] = mapped_column(String(255))
    v2: Mapped[str | None] = mapped_column(String(255))
    v3: Mapped[str | None] = mapped_column(String(255))
    v4: Mapped[str | None] = mapped_column(String(255))
    v5: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_casbin_rule_ptype_v0", "ptype", "v0"),)

    def __str__(self) -> str:
        """The policy line as Casbin's adapters load it: ``p, role, Customer.name, read``."""
        values = [
            v for v in (self.v0, self.v1, self.v2, self.v3, self.v4, self.v5) if v is not None
        ]
        return ", ".join([self.ptype, *values])


class PolicyVersion(Base):
    """One row whose ``version`` grows with every policy change; workers compare it."""

    __tablename__ = "policy_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class AssignmentRule(Base):
    """A prioritised rule: conditions on customer attributes and a strategy to pick the owner."""

    __tablename__ = "assignment_rules"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # {"territories": [...], "industries": [...], "valueTiers": [...], "productLines": [...],
    #  "lifecycleStages": [...], "extra": {dimension: [...]}}
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON)
    strategy: Mapped[Strategy] = mapped_column(_enum(Strategy))
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    pool: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Round-robin position; moved with a compare-and-set so concurrent assignments never share it.
    cursor: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        # Unique priorities among enabled rules, held by the database.
        Index(
            "uq_assignment_rules_enabled_priority",
            "priority",
            unique=True,
            sqlite_where=text("enabled"),
            postgresql_where=text("enabled"),
        ),
    )


class ReassignmentRequest(Base):
    """A proposed change of owner, approved or rejected before any handover starts."""

    __tablename__ = "reassignment_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    from_owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    to_owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    trigger: Mapped[ReassignmentTrigger] = mapped_column(_enum(ReassignmentTrigger))
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[RequestStatus] = mapped_column(_enum(RequestStatus))
    rule_id: Mapped[str | None] = mapped_column(String(40))
    requested_by_id: Mapped[str | None] = mapped_column(String(64))
    # Indexed: the approver is a party of the handover (``core.services.parties``).
    reviewed_by_id: Mapped[str | None] = mapped_column(String(64), index=True)
    review_comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # One open request per customer, held by the database.
        Index(
            "uq_reassignment_requests_open_customer",
            "customer_id",
            unique=True,
            sqlite_where=text("status = 'PENDING'"),
            postgresql_where=text("status = 'PENDING'"),
        ),
    )


class Handover(Base):
    """Ownership moving from one owner to the next through tracked steps with deadlines."""

    __tablename__ = "handovers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("reassignment_requests.id"), unique=True)
    # Indexed: the owners are parties who see the handover (``core.services.parties``).
    from_owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    to_owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    trigger: Mapped[ReassignmentTrigger] = mapped_column(_enum(ReassignmentTrigger))
    status: Mapped[HandoverStatus] = mapped_column(_enum(HandoverStatus))
    # The deadline of the step now pending (the handbook, first).
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # {"profileSummary", "openItems", "strategyAdvice", "riskWarnings"}
    handbook: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # {"clearItems", "pendingItems", "helpNeeded"}
    feedback: Mapped[dict[str, str] | None] = mapped_column(JSON)
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    handbook_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handbook_approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    customer_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    satisfaction_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        # One open handover per customer, held by the database.
        Index(
            "uq_handovers_open_customer",
            "customer_id",
            unique=True,
            sqlite_where=text("status NOT IN ('CLOSED', 'CANCELLED')"),
            postgresql_where=text("status NOT IN ('CLOSED', 'CANCELLED')"),
        ),
    )


class HandoverMeeting(Base):
    """A meeting held for a handover (briefings, simulations, the three-party meeting)."""

    __tablename__ = "handover_meetings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    handover_id: Mapped[str] = mapped_column(ForeignKey("handovers.id"), index=True)
    kind: Mapped[MeetingKind] = mapped_column(_enum(MeetingKind))
    held_at: Mapped[datetime] = mapped_column(UTCDateTime)
    notes: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[str | None] = mapped_column(String(64))


class WorkflowEventRecord(Base):
    """The outbox: workflow events in delivery order, for integrations to read.

    A step's event is written in the step's transaction; deadline events (DUE_SOON,
    OVERDUE) by the sweep, at most once per deadline thanks to ``dedupe_key``.
    """

    __tablename__ = "workflow_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    # None for an event about the customer only (TEAM_MEMBER_REMOVED).
    handover_id: Mapped[str | None] = mapped_column(ForeignKey("handovers.id"), index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)


class PluginInstall(Base):
    """A plugin whose default policies were installed once; admins may change them after."""

    __tablename__ = "plugin_installs"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[str] = mapped_column(String(40))
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Activity(Base):
    """Something a customer did: an order (amount, category), an interaction, a complaint, a
    stated intent to leave, a referral, or a payment (``days_late``: 0 when on time). Health,
    loyalty and the insight indicators are computed from these."""

    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_customer_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[ActivityKind] = mapped_column(_enum(ActivityKind))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    category: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    days_late: Mapped[int | None] = mapped_column(Integer)


class IdempotencyKey(Base):
    """A client's ``Idempotency-Key``, per user: the request's fingerprint and, once it is
    answered, the response a retry gets back."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[IdempotencyState] = mapped_column(_enum(IdempotencyState))
    status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Survey(Base):
    """An NPS, CES or satisfaction survey of one customer: scheduled, then answered.

    ``dedupe_key`` makes scheduling idempotent (one quarterly NPS per customer and quarter,
    one post-handover survey per handover); answers recorded directly have none.
    """

    __tablename__ = "surveys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[SurveyKind] = mapped_column(_enum(SurveyKind))
    occasion: Mapped[SurveyOccasion] = mapped_column(_enum(SurveyOccasion))
    status: Mapped[SurveyStatus] = mapped_column(_enum(SurveyStatus))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    score: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    handover_id: Mapped[str | None] = mapped_column(ForeignKey("handovers.id"))
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    recorded_by_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_surveys_customer_answered", "customer_id", "answered_at"),
        Index("ix_surveys_kind_answered", "kind", "answered_at"),
        CheckConstraint(
            "score IS NULL OR (kind = 'NPS' AND score BETWEEN 0 AND 10)"
            " OR (kind = 'CES' AND score BETWEEN 1 AND 7)"
            " OR (kind = 'SATISFACTION' AND score BETWEEN 1 AND 5)",
            name="score",
        ),
        CheckConstraint(
            "(status = 'ANSWERED') = (score IS NOT NULL AND answered_at IS NOT NULL)",
            name="answered",
        ),
    )


class IndicatorThreshold(Base):
    """An admin's thresholds for one health indicator (defaults live in the code)."""

    __tablename__ = "indicator_thresholds"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    green: Mapped[float] = mapped_column(Float)
    yellow: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[str | None] = mapped_column(String(64))


class TierOverride(Base):
    """A hand-set tier or engagement stage the periodic review keeps until ``expires_at``."""

    __tablename__ = "tier_overrides"

    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    # value, needs, loyalty (the customer's tiers) or engagement (the computed stage).
    tier: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    set_by_id: Mapped[str | None] = mapped_column(String(64))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)
