"""Embedded mode (the demo): no broker server, the same actors run on an in-process worker thread."""

from analysis import broker as broker_setup
from analysis.models import AnalysisRun, PhotoResult
from clinic.tenancy import operator_context
from tests import factories
from tests.workers.helpers import phantom_jpeg


def test_an_upload_is_analysed_by_the_in_process_worker(patient_world):
    assert broker_setup.is_embedded()
    photos = [factories.make_photo(visit, view="trichoscopy", data=phantom_jpeg(seed), site_label="vertex")
              for seed, visit in ((1, patient_world.baseline), (2, patient_world.followup))]

    broker_setup.join_embedded(timeout_s=60)

    with operator_context():
        runs = list(AnalysisRun.objects.filter(photo__in=photos).order_by("queued_at"))
        assert [(r.status, r.attempts) for r in runs] == [("done", 1), ("done", 1)]
        assert all(r.enqueued_at for r in runs)
        assert PhotoResult.objects.filter(photo__in=photos).count() == 2
        assert runs[1].comparisons.count() == 2
    assert broker_setup.ensure_embedded_worker() is broker_setup.ensure_embedded_worker(), "one worker per process"
