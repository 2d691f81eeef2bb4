-- Tideway schema, PostgreSQL flavour. Keep in step with sqlite.sql (a test compares them).
CREATE TABLE IF NOT EXISTS audit_event (
    seq            BIGSERIAL PRIMARY KEY,
    recorded_at_us BIGINT  NOT NULL,
    request_id     TEXT    NOT NULL,
    phase          TEXT    NOT NULL,
    action         TEXT    NOT NULL,
    client_id      TEXT,
    user_id        TEXT,
    role           TEXT,
    organisation   TEXT,
    purpose        TEXT,
    patient_id     TEXT,
    sources        TEXT    NOT NULL,
    outcome        TEXT    NOT NULL,
    http_status    INTEGER NOT NULL,
    released       BIGINT  NOT NULL,
    detail         TEXT    NOT NULL,
    prev_hash      TEXT,
    hash           TEXT
);
CREATE INDEX IF NOT EXISTS audit_event_request ON audit_event (request_id);
CREATE INDEX IF NOT EXISTS audit_event_patient ON audit_event (patient_id);
-- Each removal under `[audit] retention_days`: records up to `through_seq`, all made before
-- `before_us`, were removed at `removed_at_us`. Append-only like the trail itself.
CREATE TABLE IF NOT EXISTS audit_retention (
    through_seq   BIGINT PRIMARY KEY,
    before_us     BIGINT NOT NULL,
    removed_at_us BIGINT NOT NULL
);
CREATE OR REPLACE FUNCTION audit_retention_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit_retention is append-only'; END $$;
CREATE OR REPLACE TRIGGER audit_retention_no_change BEFORE UPDATE OR DELETE ON audit_retention
FOR EACH ROW EXECUTE FUNCTION audit_retention_append_only();
CREATE OR REPLACE TRIGGER audit_retention_no_truncate BEFORE TRUNCATE ON audit_retention
FOR EACH STATEMENT EXECUTE FUNCTION audit_retention_append_only();
-- The trail is append-only: the gateway never changes a record, and removes one only once
-- retention has moved past it (a signed retention anchor in the checkpoint file says so); the
-- hash chain shows it if anyone does otherwise (`tideway audit verify`).
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.seq <= (SELECT COALESCE(MAX(through_seq), 0) FROM audit_retention) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_event is append-only';
END $$;
CREATE OR REPLACE TRIGGER audit_event_no_change BEFORE UPDATE OR DELETE ON audit_event
FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE OR REPLACE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
CREATE TABLE IF NOT EXISTS patient_index (
    patient_id TEXT   PRIMARY KEY,
    nhs_number TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS patient_source (
    patient_id TEXT   NOT NULL,
    source_id  TEXT   NOT NULL,
    local_id   TEXT,
    seen_at    BIGINT NOT NULL,
    PRIMARY KEY (patient_id, source_id)
);
CREATE TABLE IF NOT EXISTS used_jti (
    client_id  TEXT   NOT NULL,
    jti        TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE TABLE IF NOT EXISTS consent_version (
    consent_id     TEXT   NOT NULL,
    version        BIGINT NOT NULL,
    patient_id     TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    recorded_at_us BIGINT NOT NULL,
    recorded_by    TEXT   NOT NULL,
    body           TEXT   NOT NULL,
    PRIMARY KEY (consent_id, version)
);
CREATE INDEX IF NOT EXISTS consent_version_patient ON consent_version (patient_id);
CREATE TABLE IF NOT EXISTS agreement_version (
    agreement_id    TEXT   NOT NULL,
    version         BIGINT NOT NULL,
    body            TEXT   NOT NULL,
    published_by    TEXT   NOT NULL,
    published_org   TEXT   NOT NULL,
    published_at_us BIGINT NOT NULL,
    PRIMARY KEY (agreement_id, version)
);
CREATE TABLE IF NOT EXISTS agreement_approval (
    agreement_id   TEXT   NOT NULL,
    version        BIGINT NOT NULL,
    ods_code       TEXT   NOT NULL,
    user_id        TEXT   NOT NULL,
    approved_at_us BIGINT NOT NULL,
    PRIMARY KEY (agreement_id, version, ods_code)
);
CREATE TABLE IF NOT EXISTS break_glass (
    token_id     TEXT   NOT NULL PRIMARY KEY,
    patient_id   TEXT   NOT NULL,
    opened_at_us BIGINT NOT NULL,
    ends_at_us   BIGINT NOT NULL,
    user_name    TEXT   NOT NULL,
    organisation TEXT   NOT NULL,
    role         TEXT   NOT NULL,
    reason       TEXT   NOT NULL,
    request_id   TEXT   NOT NULL
);
CREATE TABLE IF NOT EXISTS privacy_alert (
    alert_id     TEXT   NOT NULL PRIMARY KEY,
    kind         TEXT   NOT NULL,
    raised_at_us BIGINT NOT NULL,
    patient_id   TEXT   NOT NULL,
    user_name    TEXT   NOT NULL,
    organisation TEXT   NOT NULL,
    role         TEXT   NOT NULL,
    reason       TEXT   NOT NULL,
    request_id   TEXT   NOT NULL
);
CREATE INDEX IF NOT EXISTS privacy_alert_raised ON privacy_alert (raised_at_us);
-- Which organisations have read each patient's record: the first read by an organisation
-- stores its row, and the notifications to the patient's registered practices with it.
CREATE TABLE IF NOT EXISTS organisation_access (
    patient_id   TEXT   NOT NULL,
    organisation TEXT   NOT NULL,
    first_at_us  BIGINT NOT NULL,
    request_id   TEXT   NOT NULL,
    PRIMARY KEY (patient_id, organisation)
);
-- One per registered practice (NULL: none the record names) per first access.
CREATE TABLE IF NOT EXISTS access_notification (
    notification_id TEXT   NOT NULL PRIMARY KEY,
    patient_id      TEXT   NOT NULL,
    organisation    TEXT   NOT NULL,
    practice        TEXT,
    user_name       TEXT   NOT NULL,
    role            TEXT   NOT NULL,
    standing        TEXT   NOT NULL,
    raised_at_us    BIGINT NOT NULL,
    request_id      TEXT   NOT NULL
);
CREATE INDEX IF NOT EXISTS access_notification_practice ON access_notification (practice, raised_at_us);
CREATE INDEX IF NOT EXISTS access_notification_raised ON access_notification (raised_at_us);
-- Webhook delivery of each notification: written with it, marked delivered when accepted.
CREATE TABLE IF NOT EXISTS notification_outbox (
    notification_id TEXT   NOT NULL PRIMARY KEY,
    attempts        BIGINT NOT NULL,
    next_attempt_us BIGINT NOT NULL,
    delivered_at_us BIGINT,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS notification_outbox_due ON notification_outbox (delivered_at_us, next_attempt_us);
-- Misuse monitoring: the last time each user read each patient (counted events such as $match
-- are touches of their own, user '{kind}:{user}'), and the flags raised, one per user and kind
-- while its window lasts.
CREATE TABLE IF NOT EXISTS misuse_touch (
    user_name  TEXT   NOT NULL,
    patient_id TEXT   NOT NULL,
    last_at_us BIGINT NOT NULL,
    PRIMARY KEY (user_name, patient_id)
);
CREATE INDEX IF NOT EXISTS misuse_touch_recent ON misuse_touch (user_name, last_at_us);
CREATE TABLE IF NOT EXISTS misuse_flag (
    user_name    TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    raised_at_us BIGINT NOT NULL,
    until_us     BIGINT NOT NULL,
    PRIMARY KEY (user_name, kind)
);
CREATE INDEX IF NOT EXISTS break_glass_user ON break_glass (user_name, opened_at_us);
CREATE TABLE IF NOT EXISTS registered_source (
    source_id     TEXT   NOT NULL PRIMARY KEY,
    position      BIGINT NOT NULL,
    state         TEXT   NOT NULL,
    origin        TEXT   NOT NULL,
    config        TEXT   NOT NULL,
    updated_at_us BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS client_state (
    client_id     TEXT   NOT NULL PRIMARY KEY,
    state         TEXT   NOT NULL,
    updated_at_us BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS organisation_attestation (
    ods_code      TEXT   NOT NULL PRIMARY KEY,
    attestation   TEXT   NOT NULL,
    updated_at_us BIGINT NOT NULL
);
-- Patient/$match's demographic index: a keyed hash of each birth date the gateway has seen on
-- a source's Patient (never the date itself), to the patients it was seen on.
CREATE TABLE IF NOT EXISTS patient_match_key (
    match_key  TEXT   NOT NULL,
    patient_id TEXT   NOT NULL,
    seen_at    BIGINT NOT NULL,
    PRIMARY KEY (match_key, patient_id)
);
-- Superseded NHS numbers: an old number to the number that replaced it, learned from a
-- source's Patient (an NHS-number identifier with use = old) or loaded from the configured feed.
CREATE TABLE IF NOT EXISTS nhs_number_supersession (
    old_nhs     TEXT   NOT NULL PRIMARY KEY,
    current_nhs TEXT   NOT NULL,
    origin      TEXT   NOT NULL,
    recorded_at BIGINT NOT NULL
);
-- The National Data Opt-out list: NHS numbers of patients who opted out of secondary use, by
-- where each came from (`api`, or `file` for the configured feed, replaced whole on each load).
CREATE TABLE IF NOT EXISTS national_opt_out (
    nhs_number  TEXT   NOT NULL,
    origin      TEXT   NOT NULL,
    recorded_us BIGINT NOT NULL,
    PRIMARY KEY (nhs_number, origin)
);
-- Bulk $export jobs: who started each (the only principal served its status and files), what
-- was asked, and how far the job has got (the last patient written, and each output file's
-- size at that point, so a job interrupted by a restart resumes exactly there).
CREATE TABLE IF NOT EXISTS export_job (
    job_id           TEXT   NOT NULL PRIMARY KEY,
    owner            TEXT   NOT NULL,
    request          TEXT   NOT NULL,
    params           TEXT   NOT NULL,
    state            TEXT   NOT NULL,
    transaction_time TEXT   NOT NULL,
    cursor           TEXT,
    patients_done    BIGINT NOT NULL,
    patients_total   BIGINT NOT NULL,
    progress         TEXT   NOT NULL,
    created_us       BIGINT NOT NULL,
    updated_us       BIGINT NOT NULL
);
-- Which run of which replica is walking each export job, until when: a run holds its job's
-- lease while it walks and renews it as it goes, so two replicas never walk one job at once; a
-- lease that lapses (its replica died) lets another replica resume the job.
CREATE TABLE IF NOT EXISTS export_lease (
    job_id   TEXT   NOT NULL PRIMARY KEY,
    holder   TEXT   NOT NULL,
    until_us BIGINT NOT NULL
);
-- The dashboards' population figures: the latest computed set, as JSON (counts only, small
-- cells already suppressed).
CREATE TABLE IF NOT EXISTS population_figures (
    figures_id   TEXT   NOT NULL PRIMARY KEY,
    body         TEXT   NOT NULL,
    generated_us BIGINT NOT NULL
);
-- Which patient each handed-out resource belongs to (`Type/id`), for reads by id on any replica.
CREATE TABLE IF NOT EXISTS resource_owner (
    resource_key TEXT   PRIMARY KEY,
    patient_id   TEXT   NOT NULL,
    noted_at_us  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS resource_owner_age ON resource_owner (noted_at_us);
