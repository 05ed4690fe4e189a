-- Requests counted per client and per minute, for the endpoints anyone may call without a
-- login (agreement verification). Kept in the database so every process counts the same.
CREATE TABLE rate_limits (
    key          TEXT   NOT NULL,        -- what is limited and for whom, e.g. 'verify:203.0.113.7'
    window_start BIGINT NOT NULL,        -- the minute (ms since the epoch, a multiple of 60 000)
    hits         BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_limits_window ON rate_limits (window_start);
