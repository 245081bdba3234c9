"""`enqueue_once` finds a job by kind and key in any state through an index: every manifest push
asks it (one post-push job per processor and manifest), so a scan of the jobs table would grow
with every job ever run."""

from __future__ import annotations

from sqlalchemy import text

from moorage.bootstrap import Registry


def test_a_finished_job_is_found_by_key_through_the_index(registry: Registry):
    queue = registry.jobs
    job, created = queue.enqueue_once("quota.recount", {}, "repo@sha256:1")
    assert created
    with registry.database.write() as uow:
        uow.conn.execute(text("UPDATE jobs SET state = 'done' WHERE id = :id"), {"id": job.id})
    again, created_again = queue.enqueue_once("quota.recount", {}, "repo@sha256:1")
    assert not created_again and again.id == job.id
    with registry.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT * FROM jobs WHERE kind = 'test.kind' AND unique_key = 'k' "
            "AND state IN ('queued', 'running', 'done', 'failed') ORDER BY id DESC LIMIT 1")))
    assert "ix_jobs_kind_key" in plan, plan
