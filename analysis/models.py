import uuid

from django.db import models

from clinic.models import TenantOwned


class AnalysisRun(TenantOwned):
    """One attempt at analysing one photo with one model version and one set of settings.

    A re-analysis (new model, corrected scale) is a new run; older runs stay for audit.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class ErrorKind(models.TextChoices):
        NONE = "", "—"
        BAD_INPUT = "bad_input", "Image cannot be analysed"
        TRANSIENT = "transient", "Temporary failure (retries exhausted)"
        TIMEOUT = "timeout", "Took too long"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    photo = models.ForeignKey("patients.Photo", on_delete=models.CASCADE, related_name="analysis_runs")
    visit = models.ForeignKey("patients.Visit", on_delete=models.CASCADE, related_name="analysis_runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    model_version = models.CharField(max_length=60, blank=True)
    engine_settings = models.JSONField(default=dict, help_text="Thresholds and scale the run used.")
    attempts = models.PositiveIntegerField(default=0)
    error_kind = models.CharField(max_length=12, choices=ErrorKind.choices, blank=True, default="")
    error_reason = models.TextField(blank=True)
    timings = models.JSONField(default=dict, help_text="Seconds per stage.")
    queued_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When a message was last sent.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=60, default="upload", help_text="What asked for this run.")
    # The claim: a worker owns a running run until its lease ends (time limit + grace). A worker
    # killed mid-run leaves its lease to expire, so the redelivered message can take the run over.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=120, blank=True, help_text="host:pid of the worker that last claimed it.")

    class Meta:
        ordering = ["queued_at"]
        indexes = [
            models.Index(fields=["clinic", "status"]),
            models.Index(fields=["photo", "queued_at"]),
        ]

    def __str__(self):
        return f"run {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}


class PhotoResult(TenantOwned):
    """What the engine measured on one photo in one run (the engine's to_dict() in `metrics`)."""

    run = models.OneToOneField(AnalysisRun, on_delete=models.CASCADE, related_name="result")
    photo = models.ForeignKey("patients.Photo", on_delete=models.CASCADE, related_name="results")
    metrics = models.JSONField()
    quality_ok = models.BooleanField()
    heatmap = models.FileField(max_length=200, blank=True)
    mask = models.FileField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class PhotoComparison(TenantOwned):
    """Change of one photo against the same view at the baseline or the previous visit."""

    class Against(models.TextChoices):
        BASELINE = "baseline", "Baseline"
        PREVIOUS = "previous", "Previous visit"

    run = models.ForeignKey(AnalysisRun, on_delete=models.CASCADE, related_name="comparisons")
    photo = models.ForeignKey("patients.Photo", on_delete=models.CASCADE, related_name="comparisons")
    against = models.CharField(max_length=10, choices=Against.choices)
    other_photo = models.ForeignKey("patients.Photo", on_delete=models.CASCADE, related_name="+")
    data = models.JSONField(help_text="The engine's comparison to_dict(): comparable, reasons, changes.")
    change_map = models.FileField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "against"], name="one_comparison_per_kind_per_run")]
