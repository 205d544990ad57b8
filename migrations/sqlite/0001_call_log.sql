-- voxgate call log, schema version 1 (SQLite). Mirrors migrations/postgres/0001_call_log.sql:
-- uuids are stored as hyphenated TEXT, timestamps as RFC 3339 TEXT in UTC (sortable as text),
-- JSON as TEXT, booleans as INTEGER 0/1. See the Postgres file for what each column means.

CREATE TABLE calls (
    id                TEXT PRIMARY KEY NOT NULL,
    sip_call_id       TEXT,
    caller            TEXT,
    callee            TEXT,
    dialplan          TEXT,
    started_at        TEXT NOT NULL,
    answered_at       TEXT,
    ended_at          TEXT,
    end_reason        TEXT,
    hangup_by         TEXT,
    codec             TEXT,
    model             TEXT,
    transfer_target   TEXT,
    usage             TEXT,
    store_transcripts INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX calls_started_at ON calls (started_at);
CREATE INDEX calls_caller_started_at ON calls (caller, started_at);
CREATE INDEX calls_sip_call_id ON calls (sip_call_id);

CREATE TABLE call_events (
    call_id TEXT    NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at      TEXT    NOT NULL,
    kind    TEXT    NOT NULL,
    data    TEXT    NOT NULL,
    PRIMARY KEY (call_id, seq)
);
CREATE INDEX call_events_at ON call_events (at);

CREATE TABLE tickets (
    id              TEXT PRIMARY KEY NOT NULL,
    reference       TEXT NOT NULL,
    call_id         TEXT REFERENCES calls (id) ON DELETE SET NULL,
    created_at      TEXT NOT NULL,
    caller          TEXT,
    category        TEXT NOT NULL,
    priority        TEXT NOT NULL,
    summary         TEXT NOT NULL,
    details         TEXT,
    status          TEXT NOT NULL DEFAULT 'open',
    external_ref    TEXT,
    idempotency_key TEXT UNIQUE
);
CREATE INDEX tickets_call_id ON tickets (call_id);
CREATE INDEX tickets_reference ON tickets (reference);
CREATE INDEX tickets_caller_created_at ON tickets (caller, created_at);
