-- The job store as create_all made it before Alembic (commit 127c814), postgresql dialect, with rows as
-- that code wrote them. Frozen: never edit; the migration test upgrades it to the current head.

CREATE TABLE ar_jobs (
	seq BIGSERIAL NOT NULL,
	id VARCHAR(36) NOT NULL,
	status VARCHAR(16) NOT NULL,
	priority INTEGER NOT NULL,
	model VARCHAR(256),
	width INTEGER NOT NULL,
	height INTEGER NOT NULL,
	steps INTEGER NOT NULL,
	sampler VARCHAR(64) NOT NULL,
	cfg_scale DOUBLE PRECISION NOT NULL,
	batch_size INTEGER NOT NULL,
	request JSON NOT NULL,
	request_hash VARCHAR(64) NOT NULL,
	idempotency_key VARCHAR(256),
	created_at DOUBLE PRECISION NOT NULL,
	started_at DOUBLE PRECISION,
	finished_at DOUBLE PRECISION,
	deadline_at DOUBLE PRECISION NOT NULL,
	not_before DOUBLE PRECISION NOT NULL,
	lease_until DOUBLE PRECISION,
	worker_id VARCHAR(256),
	attempts INTEGER NOT NULL,
	step INTEGER NOT NULL,
	total_steps INTEGER NOT NULL,
	preview TEXT,
	error JSON,
	cancel_requested BOOLEAN NOT NULL,
	memory_saving BOOLEAN NOT NULL,
	PRIMARY KEY (seq),
	UNIQUE (id),
	UNIQUE (idempotency_key)
);

CREATE INDEX ar_jobs_lease ON ar_jobs (status, lease_until);

CREATE INDEX ar_jobs_run_order ON ar_jobs (status, priority, seq);

CREATE TABLE ar_job_results (
	job_id VARCHAR(36) NOT NULL,
	idx INTEGER NOT NULL,
	path VARCHAR(1024) NOT NULL,
	seed BIGINT NOT NULL,
	meta JSON NOT NULL,
	infotext TEXT NOT NULL,
	PRIMARY KEY (job_id, idx),
	FOREIGN KEY(job_id) REFERENCES ar_jobs (id) ON DELETE CASCADE
);

INSERT INTO ar_jobs (seq, id, status, priority, model, width, height, steps, sampler, cfg_scale, batch_size, request, request_hash, idempotency_key, created_at, started_at, finished_at, deadline_at, not_before, lease_until, worker_id, attempts, step, total_steps, preview, error, cancel_requested, memory_saving) VALUES (1, '00000000-0000-4000-8000-000000000001', 'completed', 0, 'tiny', 64, 64, 2, 'euler_a', 7.5, 2, '{"prompt":"a red cube","negative_prompt":"","width":64,"height":64,"steps":2,"cfg_scale":7.5,"sampler":"euler_a","seed":7,"batch_size":2,"model":"tiny","priority":0,"timeout_s":null}', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'key-a', 1800000000.0, 1800000001.0, 1800000005.0, 1800000600.0, 1800000000.0, NULL, 'w0', 1, 2, 2, NULL, NULL, FALSE, FALSE);
INSERT INTO ar_jobs (seq, id, status, priority, model, width, height, steps, sampler, cfg_scale, batch_size, request, request_hash, idempotency_key, created_at, started_at, finished_at, deadline_at, not_before, lease_until, worker_id, attempts, step, total_steps, preview, error, cancel_requested, memory_saving) VALUES (2, '00000000-0000-4000-8000-000000000002', 'queued', 3, 'tiny', 64, 64, 4, 'euler_a', 7.5, 1, '{"prompt":"a blue cube","negative_prompt":"","width":64,"height":64,"steps":4,"cfg_scale":7.5,"sampler":"euler_a","seed":9,"batch_size":1,"model":"tiny","priority":3,"timeout_s":null}', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', NULL, 1800000002.0, NULL, NULL, 1800000602.0, 1800000002.0, NULL, NULL, 0, 0, 4, NULL, NULL, FALSE, FALSE);
INSERT INTO ar_jobs (seq, id, status, priority, model, width, height, steps, sampler, cfg_scale, batch_size, request, request_hash, idempotency_key, created_at, started_at, finished_at, deadline_at, not_before, lease_until, worker_id, attempts, step, total_steps, preview, error, cancel_requested, memory_saving) VALUES (3, '00000000-0000-4000-8000-000000000003', 'running', 0, NULL, 64, 64, 4, 'euler_a', 7.5, 1, '{"prompt":"running","negative_prompt":"","width":64,"height":64,"steps":4,"cfg_scale":7.5,"sampler":"euler_a","seed":11,"batch_size":1,"model":null,"priority":0,"timeout_s":null}', 'cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc', NULL, 1800000003.0, 1800000004.0, NULL, 1800000603.0, 1800000003.0, 1800000019.0, 'w0', 1, 2, 4, 'data:image/jpeg;base64,AAAA', NULL, FALSE, TRUE);
INSERT INTO ar_jobs (seq, id, status, priority, model, width, height, steps, sampler, cfg_scale, batch_size, request, request_hash, idempotency_key, created_at, started_at, finished_at, deadline_at, not_before, lease_until, worker_id, attempts, step, total_steps, preview, error, cancel_requested, memory_saving) VALUES (4, '00000000-0000-4000-8000-000000000004', 'failed', 0, 'tiny', 64, 64, 2, 'euler_a', 7.5, 1, '{"prompt":"failed","negative_prompt":"","width":64,"height":64,"steps":2,"cfg_scale":7.5,"sampler":"euler_a","seed":1,"batch_size":1,"model":"tiny","priority":0,"timeout_s":null}', 'dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd', NULL, 1800000004.0, 1800000005.0, 1800000006.0, 1800000604.0, 1800000004.0, NULL, 'w0', 3, 0, 2, NULL, '{"code": "internal", "message": "boom (gave up after 3 attempts)"}', FALSE, FALSE);
INSERT INTO ar_job_results (job_id, idx, path, seed, meta, infotext) VALUES ('00000000-0000-4000-8000-000000000001', 0, '00000000-0000-4000-8000-000000000001/0.png', 7, '{"prompt": "a red cube", "seed": 7}', 'a red cube
Steps: 2');
INSERT INTO ar_job_results (job_id, idx, path, seed, meta, infotext) VALUES ('00000000-0000-4000-8000-000000000001', 1, '00000000-0000-4000-8000-000000000001/1.png', 8, '{"prompt": "a red cube", "seed": 7}', 'a red cube
Steps: 2');
SELECT setval(pg_get_serial_sequence('ar_jobs', 'seq'), 4);
