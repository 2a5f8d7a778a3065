"""Fault tests on real parts: Redis, ``dramatiq`` worker processes, PostgreSQL with RLS."""

import os
import signal

import pytest
from django.db import transaction

from analysis import services
from analysis.models import AnalysisRun
from tests import factories
from tests.workers.helpers import all_done, phantom_jpeg, result_counts, runs_of, wait_for

pytestmark = pytest.mark.services


def upload(visit, seed, view="trichoscopy", data=None):
    return factories.make_photo(visit, view=view, data=data or phantom_jpeg(seed), site_label="vertex")


def test_it_analyses_an_upload_and_compares_it_with_the_baseline(patient_world, redis_broker, start_worker):
    worker = start_worker().wait_ready()
    base = upload(patient_world.baseline, seed=1)
    follow = upload(patient_world.followup, seed=2)

    wait_for(lambda: all_done([base, follow]), what="both photos analysed")

    (run,) = runs_of(follow)
    assert run.attempts == 1 and run.enqueued_at is not None and run.model_version
    assert run.worker.split(":")[1] != str(os.getpid()), "analysed by the worker process, not the test"
    assert result_counts(base) == (1, 0), "a baseline photo has nothing to compare with"
    assert result_counts(follow) == (1, 2), "compared with the baseline and the previous visit"
    assert "Worker process is ready" in worker.log()


def test_a_worker_killed_mid_run_leaves_the_run_to_be_completed_once(patient_world, redis_broker, start_worker):
    slow = start_worker(module="tests.workers.slow_worker", ANALYSIS_TEST_SLEEP_S=30).wait_ready()
    photo = upload(patient_world.baseline, seed=3)
    running = wait_for(lambda: AnalysisRun.objects.filter(photo=photo, status="running").first(),
                       what="the slow worker to claim the run")
    os.kill(int(running.worker.split(":")[1]), signal.SIGKILL)  # the worker process, mid-analysis
    slow.stop()

    start_worker().wait_ready()
    wait_for(lambda: all_done([photo]), timeout=60, what="the redelivered message to complete the run")

    (run,) = runs_of(photo)
    assert run.attempts == 2, "claimed by the killed worker, then once more after redelivery"
    assert run.worker != running.worker
    assert result_counts(photo) == (1, 0)


def test_uploads_made_while_the_broker_is_down_are_analysed_after_it_returns_and_the_sweeper_runs(
        patient_world, private_redis, start_worker):
    private_redis.stop()
    photos = [upload(patient_world.baseline, seed=4), upload(patient_world.followup, seed=5)]
    assert all(run.status == "queued" and run.enqueued_at is None for p in photos for run in runs_of(p)), \
        "the upload committed although the message could not be sent"

    private_redis.start()
    start_worker(BROKER_URL=private_redis.url).wait_ready()
    assert services.sweep_pending() == {"found": 2, "sent": 2, "messages": 2}
    wait_for(lambda: all_done(photos), what="swept runs analysed")
    assert services.sweep_pending()["found"] == 0, "a second sweep finds nothing to send"
    assert [result_counts(p)[0] for p in photos] == [1, 1]


def test_a_corrupt_image_fails_at_once_with_its_reason_and_is_not_retried(patient_world, redis_broker, start_worker,
                                                                         media_root):
    worker = start_worker().wait_ready()
    photo = upload(patient_world.baseline, seed=6)
    wait_for(lambda: all_done([photo]), what="the first analysis")
    # The stored file is damaged afterwards (disk or bucket fault); a re-analysis must say so.
    with open(os.path.join(media_root, photo.file.name), "wb") as handle:
        handle.write(b"\xff\xd8\xff\xe0 not really a jpeg")
    with_clinic_reanalyse(photo)
    failed = wait_for(lambda: AnalysisRun.objects.filter(photo=photo, status="failed").first(),
                      what="the re-analysis to fail")

    assert failed.error_kind == "bad_input" and "not a readable image" in failed.error_reason
    assert failed.attempts == 1, "a bad image is not retried"
    assert "Retrying" not in worker.log()
    assert result_counts(photo) == (1, 0), "the earlier result stays"


def test_a_run_over_the_time_limit_fails_with_that_reason_and_is_not_retried(patient_world, redis_broker,
                                                                            start_worker):
    worker = start_worker(module="tests.workers.slow_worker", ANALYSIS_TEST_SLEEP_S=60,
                          ANALYSIS_TIME_LIMIT_S=2).wait_ready()
    photo = upload(patient_world.baseline, seed=7)
    failed = wait_for(lambda: AnalysisRun.objects.filter(photo=photo, status="failed").first(),
                      what="the time limit to end the run")
    assert failed.error_kind == "timeout" and "longer than the 2 s limit" in failed.error_reason
    assert failed.attempts == 1 and "Retrying" not in worker.log()
    assert result_counts(photo) == (0, 0)


def test_a_transient_error_is_retried_with_backoff_until_it_passes(patient_world, redis_broker, start_worker):
    worker = start_worker(module="tests.workers.flaky_worker", ANALYSIS_TEST_FAIL_TIMES=2).wait_ready()
    photo = upload(patient_world.baseline, seed=8)
    wait_for(lambda: all_done([photo]), what="the run to succeed on its third attempt")
    (run,) = runs_of(photo)
    assert run.attempts == 3 and run.error_reason == ""
    assert worker.log().count("Retrying message") == 2
    assert result_counts(photo) == (1, 0)


def test_exhausted_retries_fail_the_run_with_the_error_for_the_retry_button(patient_world, redis_broker,
                                                                           start_worker):
    start_worker(module="tests.workers.flaky_worker", ANALYSIS_TEST_FAIL_TIMES=100, ANALYSIS_MAX_RETRIES=1).wait_ready()
    photo = upload(patient_world.baseline, seed=9)
    failed = wait_for(lambda: AnalysisRun.objects.filter(photo=photo, status="failed").first(),
                      what="retries to run out")
    assert failed.error_kind == "transient" and failed.attempts == 2
    assert "storage unreachable" in failed.error_reason


def test_two_workers_on_one_queue_analyse_each_photo_once(patient_world, redis_broker, start_worker):
    first, second = start_worker(), start_worker()
    first.wait_ready(), second.wait_ready()
    views = ["crown", "hairline", "part_line", "temple_left", "temple_right", "trichoscopy"]
    # One commit, so all six messages arrive as a backlog: uploaded one by one, each message
    # came while the worker that had just finished was polling and the other was backing off,
    # and a fast worker could take every photo.
    with transaction.atomic():
        photos = [upload(patient_world.baseline, seed=10 + i, view=view) for i, view in enumerate(views)]
    for photo in photos:  # every message sent twice: the claim must make the copies no-ops
        (run,) = runs_of(photo)
        services.runs_send(clinic_id=str(photo.clinic_id), run_ids=[str(run.id)])

    wait_for(lambda: all_done(photos), timeout=60, what="all photos analysed")
    runs = [run for p in photos for run in runs_of(p)]
    assert [r.attempts for r in runs] == [1] * len(photos)
    assert [result_counts(p)[0] for p in photos] == [1] * len(photos)
    assert len({r.worker.split(":")[1] for r in runs}) == 2, "both workers took a share"


def with_clinic_reanalyse(photo):
    from clinic.tenancy import clinic_context

    with clinic_context(photo.clinic_id):
        services.analysis_reanalyze(photos=[photo], reason="test")


def test_it_works_the_same_through_rabbitmq(patient_world, rabbitmq_broker, start_worker):
    from django.conf import settings

    start_worker(BROKER_URL=settings.BROKER_URL).wait_ready()
    photo = upload(patient_world.baseline, seed=20)
    wait_for(lambda: all_done([photo]), what="analysed through RabbitMQ")
    assert runs_of(photo)[0].attempts == 1 and result_counts(photo) == (1, 0)


def test_a_gpu_style_worker_on_its_own_queue_shares_forward_passes_and_analyses_each_photo_once(
        patient_world, redis_broker, start_worker, settings):
    # The GPU worker's configuration, on CPU: own queue, several threads, one shared network.
    settings.ANALYSIS_QUEUE = "analysis-gpu"
    start_worker(queues=("analysis",)).wait_ready()  # a CPU worker beside it must not take these
    start_worker(queues=("analysis-gpu",), threads=3, ANALYSIS_SHARED_BATCHING="on").wait_ready()
    photos = [upload(patient_world.baseline, seed=30 + i, view=view)
              for i, view in enumerate(["crown", "hairline", "part_line", "temple_left", "temple_right"])]

    wait_for(lambda: all_done(photos), timeout=60, what="all photos analysed by the GPU-style worker")
    runs = [run for p in photos for run in runs_of(p)]
    assert [r.attempts for r in runs] == [1] * 5 and [result_counts(p)[0] for p in photos] == [1] * 5
    assert len({r.worker.split(":")[1] for r in runs}) == 1, "all on the analysis-gpu worker"
    assert all(r.timings.get("forward_batch", 0) >= 1 for r in runs), "each went through the shared network"
