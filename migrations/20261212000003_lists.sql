-- Lists people work through (issue 12): each listing's filter and order is an index
-- prefix, so a page costs the same wherever it starts (keyset cursors).

-- A school's inbox: by state, longest waiting first.
CREATE INDEX cases_school_state_waiting ON cases (school_id, state, state_entered_at, id);
-- A school's cases in any state, longest waiting first.
CREATE INDEX cases_school_waiting ON cases (school_id, state_entered_at, id);
-- A school's graduates by id (the list of those without a destination).
CREATE INDEX parties_kind_school ON parties (kind, school_id, id);
