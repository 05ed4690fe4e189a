-- A list filtered to states few cases are in (issue 17): a school's (or an employer's)
-- cases in those states by id, read from the index alone instead of the whole school's
-- cases checked one by one against the filter. The waiting order has its own index
-- (`cases_school_state_waiting`).
CREATE INDEX cases_school_state ON cases (school_id, state, id);
CREATE INDEX cases_employer_state ON cases (employer_id, state, id);
