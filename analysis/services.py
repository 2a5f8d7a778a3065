"""State changes of analysis runs."""

from analysis.models import AnalysisRun


def analysis_request(*, photo, reason: str) -> AnalysisRun:
    """Record that `photo` needs analysing; the queue message is sent once this commits."""
    return AnalysisRun.objects.create(clinic_id=photo.clinic_id, photo=photo, visit_id=photo.visit_id, reason=reason)
