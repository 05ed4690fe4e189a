-- Bulk load for bench/console.py (PostgreSQL): one school (B001) with 10,000 graduates and
-- one destination registration case each, three history rows per case, the destination
-- records of the approved ones, and some mail. Run after the server has migrated the
-- database and published its workflows.

INSERT INTO parties (kind, id, school_id, name, data, updated_at)
VALUES ('school', 'B001', NULL, '北方理工大学', '{"name":"北方理工大学"}', 0);

INSERT INTO parties (kind, id, school_id, name, data, updated_at,
                     student_number, college, major, education_level, origin_province, graduation_date)
SELECT 'student', 'P' || lpad(g::text, 7, '0'), 'B001',
       (ARRAY['王', '李', '张', '刘', '陈'])[g % 5 + 1] || '同学' || g,
       '{"name":"同学","education_level":"31"}', 0,
       '2026' || lpad(g::text, 7, '0'), '学院' || (g % 12), '专业' || (g % 40),
       (ARRAY['31', '11', '01', '41'])[g % 4 + 1], (ARRAY['23', '37', '11', '44', '51'])[g % 5 + 1], '2026-06-30'
FROM generate_series(1, 10000) g;

-- 30 % waiting for review, 10 % drafts, 60 % approved, entered over the last 120 days.
INSERT INTO cases (id, workflow, workflow_hash, state, version, data, student_id, employer_id, school_id,
                   created_at, updated_at, state_entered_at)
SELECT 'c' || lpad(g::text, 8, '0'), 'destination_registration',
       (SELECT hash FROM workflow_versions WHERE name = 'destination_registration' LIMIT 1),
       CASE WHEN g % 10 < 3 THEN 'submitted' WHEN g % 10 = 3 THEN 'draft' ELSE 'approved' END,
       3, '{"destination":{"category":"70","fields":{"sub_status":"seeking"}}}',
       'P' || lpad(g::text, 7, '0'), NULL, 'B001',
       1780000000000 + g, 1780000000000 + g,
       1780000000000 + ((g::bigint * 7919) % 10368000) * 1000
FROM generate_series(1, 10000) g;

INSERT INTO history (case_id, seq, transition, from_state, to_state, actor, input, at)
SELECT 'c' || lpad(g::text, 8, '0'), s, (ARRAY['start', 'submit', 'approve'])[s],
       (ARRAY[NULL, 'draft', 'submitted'])[s], (ARRAY['draft', 'submitted', 'approved'])[s],
       (ARRAY['student:P' || lpad(g::text, 7, '0'), 'student:P' || lpad(g::text, 7, '0'), 'school_reviewer@B001'])[s],
       '{}', 1780000000000 + g + s
FROM generate_series(1, 10000) g, generate_series(1, 3) s;

INSERT INTO destinations (id, student_id, category_code, unit_name, location, case_id, approved_at, data, status)
SELECT 'd' || g, 'P' || lpad(g::text, 7, '0'),
       (ARRAY['10', '11', '12', '27', '75', '76', '80', '85', '70', '71'])[(g / 10) % 10 + 1],
       '单位' || g, '230103', 'c' || lpad(g::text, 8, '0'), 1780000000000 + g, '{}', 'in_force'
FROM generate_series(1, 10000) g
WHERE g % 10 >= 4;

-- As a database in service is: autovacuum has set the visibility map (index-only scans
-- then skip the heap) and the statistics are current.
VACUUM ANALYZE;
