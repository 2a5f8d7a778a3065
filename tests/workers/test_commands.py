"""sweep_analyses, reanalyze, analysis_worker and benchmark_workers."""

import io

import pytest
from django.core.management import CommandError, call_command

from analysis.models import AnalysisRun
from clinic.models import Clinic
from clinic.tenancy import operator_context
from tests import factories
from tests.workers.helpers import phantom_jpeg


@pytest.fixture
def sent(monkeypatch):
    messages = []
    monkeypatch.setattr("analysis.tasks.send", lambda **kw: messages.append(kw))
    return messages


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def test_sweep_sends_never_sent_runs_once(world, sent):
    photo = factories.make_photo(world.visit_a)
    assert "1 run(s) pending, 1 sent in 1 message(s)" in run("sweep_analyses")
    with operator_context():
        assert sent[0]["run_ids"] == [str(AnalysisRun.objects.get(photo=photo).id)]
    assert "0 run(s) pending" in run("sweep_analyses"), "already sent: nothing to do"


def test_sweep_says_when_the_broker_is_still_down(world, monkeypatch):
    factories.make_photo(world.visit_a)

    def down(**kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr("analysis.tasks.send", down)
    assert "broker is unreachable" in run("sweep_analyses")
    with operator_context():
        assert AnalysisRun.objects.get().enqueued_at is None


def _done(photo, model_version):
    with operator_context():
        AnalysisRun.objects.filter(photo=photo).update(status="done", model_version=model_version)


def test_reanalyze_by_model_version_makes_new_runs_and_keeps_the_old(world, sent, django_capture_on_commit_callbacks):
    old, new = (factories.make_photo(world.visit_a, view=v, seed=i) for i, v in enumerate(["crown", "hairline"]))
    _done(old, "unet-v1+metrics-1")
    _done(new, "unet-v2+metrics-1")
    with django_capture_on_commit_callbacks(execute=True):
        out = run("reanalyze", "--model-version", "unet-v1+metrics-1")
    assert "1 photo(s) in 1 clinic(s)" in out
    with operator_context():
        assert list(AnalysisRun.objects.filter(photo=old).values_list("status", "reason").order_by("queued_at")) == [
            ("done", "upload"), ("queued", "reanalysis")]
        assert AnalysisRun.objects.filter(photo=new).count() == 1
    assert len(sent) == 1


def test_reanalyze_chosen_visits_in_one_message_per_visit(world, sent, django_capture_on_commit_callbacks):
    for i, view in enumerate(["crown", "hairline", "part_line"]):
        factories.make_photo(world.visit_a, view=view, seed=i)
    factories.make_photo(world.visit_b, view="crown", seed=9)
    with django_capture_on_commit_callbacks(execute=True):
        assert "3 photo(s)" in run("reanalyze", "--visit", str(world.visit_a.id))
    assert [len(m["run_ids"]) for m in sent] == [3]
    assert "0 photo(s)" in run("reanalyze", "--visit", str(world.visit_a.id), "--clinic", "clinic-b", "--dry-run")
    with pytest.raises(CommandError):
        run("reanalyze")
    with pytest.raises(CommandError, match="no clinic"):
        run("reanalyze", "--visit", str(world.visit_a.id), "--clinic", "nowhere")


def test_analysis_worker_execs_dramatiq_with_the_thread_budget(settings, monkeypatch):
    settings.BROKER_URL = "redis://127.0.0.1:6379/15"
    calls = []
    monkeypatch.setattr("os.execve", lambda path, argv, env: calls.append((argv, env)))
    run("analysis_worker", "--gpu", "--batch-size", "32")
    argv, env = calls[0]
    assert argv[1:5] == ["-m", "dramatiq", "analysis.worker", "--processes"]
    assert argv[-2:] == ["--queues", "analysis-gpu"] and "8" in argv
    assert (env["WORKER_THREADS"], env["ANALYSIS_BATCH_SIZE"], env["ANALYSIS_DEVICE"]) == ("8", "32", "cuda")
    settings.BROKER_URL = "embedded"
    with pytest.raises(CommandError, match="embedded"):
        run("analysis_worker")


def test_benchmark_pushes_photos_through_the_embedded_worker_and_cleans_up(transactional_db):
    out = run("benchmark_workers", "--photos", "3", "--visit-size", "3", "--size", "384x320")
    assert "photos:              3 (0 failed)" in out
    assert "photos/min" in out and "p95" in out
    with operator_context():
        assert not Clinic.objects.filter(slug__startswith="bench-").exists()


def test_phantom_jpegs_are_realistic_enough_to_pass_the_quality_gate():
    from analysis.pipeline import Settings, decode, get_pipeline

    outcome = get_pipeline("cpu").analyze([decode(phantom_jpeg(1))], [Settings("trichoscopy", 0.006, None)])[0]
    assert outcome.quality_ok, outcome.metrics["quality"]


def test_reanalyze_everything_not_measured_by_the_model_workers_load_now(world, sent):
    from analysis.processing import pipeline_for_worker

    current = pipeline_for_worker().model_version
    old, same, never = (factories.make_photo(world.visit_a, view=v, seed=i)
                        for i, v in enumerate(["crown", "hairline", "part_line"]))
    _done(old, "unet-b8-v0+metrics-0")
    _done(same, current)
    out = run("reanalyze", "--not-current-model", "--dry-run")
    assert "1 photo(s) in 1 clinic(s)" in out, "only the photo measured by another model; never-analysed ones wait"


def test_benchmark_stages_times_every_stage_and_the_worker_path():
    import json

    stages = json.loads(run("benchmark_stages", "--size", "384x320", "--repeats", "1", "--no-network", "--json"))
    assert {"decode", "prepare (quality gate, overlay mask)", "hair graph", "heatmap render", "heatmap JPEG",
            "worker analyse (network cached)", "worker compare"} <= set(stages["median_cpu_ms"])
    assert stages["around_network_cpu_ms"] > 0
    through = json.loads(run("benchmark_stages", "--size", "384x320", "--throughput", "2", "--compare", "--json"))
    assert through["photos"] == 2 and through["images_per_s"] > 0
    assert {"decode wall (ms)", "analyse CPU (ms)", "compare CPU (ms)"} <= set(through["median_ms"])


def test_benchmark_follow_ups_are_the_baseline_sites_re_imaged_so_they_register(transactional_db, monkeypatch):
    from analysis.management.commands import benchmark_workers
    from analysis.models import PhotoComparison

    seen = []
    delete = benchmark_workers._delete_clinic

    def record_then_delete(clinic):
        with operator_context():
            seen.extend(c.data for c in PhotoComparison.objects.filter(clinic=clinic, against="baseline"))
        delete(clinic)

    monkeypatch.setattr(benchmark_workers, "_delete_clinic", record_then_delete)
    out = run("benchmark_workers", "--photos", "2", "--visit-size", "2", "--size", "512x384", "--baseline")
    assert "photos:              2 (0 failed)" in out
    # Deterministic phantoms; at this small size one of the two pairs is too hard to align.
    assert len(seen) == 2 and any(d["overlap_fraction"] > 0.5 and d["homography"] for d in seen), seen
