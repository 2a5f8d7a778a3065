import datetime

import pytest
from django.urls import reverse

from clinic.models import Role
from clinic.tenancy import clinic_context, operator_context
from patients import services
from patients.models import AuditEvent, ClinicalNoteRevision


def test_viewing_and_downloading_a_record_is_audited(world, login):
    from tests import factories

    photo = factories.make_photo(world.visit_a)
    client = login(world.users[Role.CLINICIAN])
    client.get(reverse("patient_detail", args=["clinic-a", world.patient_a.id]), REMOTE_ADDR="10.1.2.3")
    response = client.get(reverse("photo_file", args=["clinic-a", photo.id]), REMOTE_ADDR="10.1.2.3")
    b"".join(response.streaming_content)
    with operator_context():
        events = list(AuditEvent.objects.filter(patient=world.patient_a).order_by("at"))
    assert [(e.action, e.object_type) for e in events] == [("view", "patient"), ("download", "photo")]
    assert all(e.user == world.users[Role.CLINICIAN] and e.ip_address == "10.1.2.3" for e in events)
    assert all(e.clinic_id == world.clinic_a.id for e in events)


def test_a_refused_request_leaves_no_audit_of_a_view(world, login):
    login(world.b_clinician).get(reverse("patient_detail", args=["clinic-a", world.patient_a.id]))
    with operator_context():
        assert not AuditEvent.objects.exists()


def test_editing_a_note_keeps_its_history(world):
    author = world.users[Role.CLINICIAN]
    with clinic_context(world.clinic_a.id):
        note = services.note_create(visit=world.visit_a, author=author, text="Diffuse thinning at the crown.")
        services.note_edit(note=note, editor=author, text="Diffuse thinning at the crown; started minoxidil.")
        services.note_edit(note=note, editor=author, text="Diffuse thinning at the crown; started minoxidil.")
        history = list(ClinicalNoteRevision.objects.filter(note=note).values_list("text", flat=True))
    assert history == ["Diffuse thinning at the crown."]
    assert note.text.endswith("started minoxidil.")


def test_a_treatment_cannot_stop_before_it_starts(world):
    with clinic_context(world.clinic_a.id), pytest.raises(ValueError, match="stop before it starts"):
        services.treatment_create(patient=world.patient_a, name="Finasteride", dose="1 mg",
                                  start=datetime.date(2026, 5, 1), stop=datetime.date(2026, 4, 1))


def test_grades_and_consents_record_who_and_when(world):
    clinician = world.users[Role.CLINICIAN]
    with clinic_context(world.clinic_a.id):
        grade = services.grade_set(visit=world.visit_a, scale="norwood", value="III vertex", by=clinician)
        consent = services.consent_record(patient=world.patient_a, version="2026-01", text="I agree to…",
                                          by=world.users[Role.PATIENT])
    assert grade.source == "clinician" and grade.graded_by == clinician and grade.graded_at is not None
    assert consent.text_snapshot == "I agree to…" and consent.accepted_at is not None
