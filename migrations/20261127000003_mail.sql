-- Mail and escalations.

-- What a timer does besides firing a transition: send a mail (a reminder) and perhaps
-- escalate. JSON {"email": …, "to": […], "escalate": n}; NULL for transition timers.
ALTER TABLE timers ADD COLUMN spec TEXT;

-- One row per logical send: the key (case, cause, template, recipient) is unique, so a
-- retried, duplicated or re-enqueued job never sends the same mail twice.
CREATE TABLE emails (
    id           TEXT   PRIMARY KEY,
    key          TEXT   NOT NULL UNIQUE,
    case_id      TEXT,                     -- NULL for digests
    template     TEXT   NOT NULL,
    to_role      TEXT   NOT NULL,
    to_name      TEXT   NOT NULL,
    to_address   TEXT,                     -- NULL when the party has no address on file
    context      TEXT   NOT NULL,          -- the template's data (JSON), fixed when queued
    status       TEXT   NOT NULL,          -- 'pending' | 'sending' | 'sent' | 'failed' | 'skipped'
    attempts     BIGINT NOT NULL,
    last_error   TEXT,
    lease_until  BIGINT,                   -- while 'sending': who holds it until when
    created_at   BIGINT NOT NULL,
    sent_at      BIGINT
);
CREATE INDEX emails_status ON emails (status, created_at);
CREATE INDEX emails_case ON emails (case_id);

-- Reviews escalated for being overdue; resolved when the case leaves the state.
CREATE TABLE escalations (
    case_id      TEXT   NOT NULL REFERENCES cases (id),
    state        TEXT   NOT NULL,
    level        BIGINT NOT NULL,
    to_role      TEXT   NOT NULL,
    school_id    TEXT   NOT NULL,
    escalated_at BIGINT NOT NULL,
    resolved_at  BIGINT,
    PRIMARY KEY (case_id, state, level, escalated_at)
);
CREATE INDEX escalations_open ON escalations (resolved_at, school_id);
