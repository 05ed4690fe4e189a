-- Bulk load for bench/schools.py (PostgreSQL): 100 schools, 1,000,000 graduates and one
-- destination registration case each, and the destination records of the approved ones.
-- Run after the server has migrated the database and published its workflows.
-- Each school has 10,000 graduates (a large school), synced together as a school's bulk
-- sync would store them (B001 is P0000001…P0010000); the province has all of them.

INSERT INTO parties (kind, id, school_id, name, data, updated_at)
SELECT 'school', 'B' || lpad(g::text, 3, '0'), NULL, '学校' || g, '{"name":"学校"}', 0
FROM generate_series(1, 100) g;

INSERT INTO parties (kind, id, school_id, name, data, updated_at,
                     student_number, college, major, education_level, origin_province, graduation_date)
SELECT 'student', 'P' || lpad(g::text, 7, '0'), 'B' || lpad(((g - 1) / 10000 + 1)::text, 3, '0'),
       (ARRAY['王', '李', '张', '刘', '陈'])[g % 5 + 1] || '同学' || g,
       '{"name":"同学","education_level":"31"}', 0,
       '2026' || lpad(g::text, 7, '0'), '学院' || (g % 12), '专业' || (g % 40),
       (ARRAY['31', '11', '01', '41'])[g % 4 + 1], (ARRAY['23', '37', '11', '44', '51'])[g % 5 + 1], '2026-06-30'
FROM generate_series(1, 1000000) g;

-- One case per graduate: 30 % waiting for review, 10 % drafts, 60 % approved. They
-- entered their state at scattered times over the last 120 days.
INSERT INTO cases (id, workflow, workflow_hash, state, version, data, student_id, employer_id, school_id,
                   created_at, updated_at, state_entered_at)
SELECT 'c' || lpad(g::text, 8, '0'), 'destination_registration',
       (SELECT hash FROM workflow_versions WHERE name = 'destination_registration' LIMIT 1),
       CASE WHEN g % 10 < 3 THEN 'submitted' WHEN g % 10 = 3 THEN 'draft' ELSE 'approved' END,
       3, '{"destination":{"category":"70","fields":{"sub_status":"seeking"}}}',
       'P' || lpad(g::text, 7, '0'), NULL, 'B' || lpad(((g - 1) / 10000 + 1)::text, 3, '0'),
       1780000000000 + g, 1780000000000 + g,
       1780000000000 + ((g::bigint * 7919) % 10368000) * 1000
FROM generate_series(1, 1000000) g;

INSERT INTO destinations (id, student_id, category_code, unit_name, location, case_id, approved_at, data, status)
SELECT 'd' || g, 'P' || lpad(g::text, 7, '0'),
       (ARRAY['10', '11', '12', '27', '75', '76', '80', '85', '70', '71'])[(g / 10) % 10 + 1],
       '单位' || g, '230103', 'c' || lpad(g::text, 8, '0'), 1780000000000 + g, '{}', 'in_force'
FROM generate_series(1, 1000000) g
WHERE g % 10 >= 4;

-- What autovacuum does after a bulk load: statistics for the planner and the visibility
-- map that lets the covering indexes answer without reading the table.
VACUUM ANALYZE;
