-- PostgreSQL only (issue 12): text search over names, student numbers and employers by
-- trigram indexes, so `q=…` (LIKE '%…%' on LOWER(…)) reads the matching parties rather
-- than every case of the school. pg_trgm treats CJK characters as word characters in a
-- UTF-8 database, so 同学12 finds 王同学1234. SQLite keeps the plain LIKE.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX parties_name_trigrams ON parties USING gin (LOWER(name) gin_trgm_ops);
CREATE INDEX parties_student_number_trigrams ON parties USING gin (LOWER(student_number) gin_trgm_ops);
