from django import forms
from django.conf import settings

from patients.models import Patient, View, Visit


class DateInput(forms.DateInput):
    input_type = "date"


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["external_id", "first_name", "last_name", "date_of_birth", "sex_at_birth"]
        widgets = {"date_of_birth": DateInput()}
        labels = {"external_id": "Record number"}

    def __init__(self, *args, clinic, **kwargs):
        super().__init__(*args, **kwargs)
        self.clinic = clinic

    def clean_external_id(self):
        external_id = self.cleaned_data["external_id"].strip()
        taken = Patient.objects.filter(clinic=self.clinic, external_id=external_id)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("Another patient of this clinic already has this record number.")
        return external_id


class VisitForm(forms.ModelForm):
    class Meta:
        model = Visit
        fields = ["date", "kind"]
        widgets = {"date": DateInput()}


class PhotoUploadForm(forms.Form):
    view = forms.ChoiceField(choices=View.choices)
    site_label = forms.CharField(
        max_length=80, required=False, label="Trichoscopy site",
        help_text="Only for close-ups: where on the scalp, e.g. 'vertex, 2 cm left of midline'.",
    )
    file = forms.FileField(label="Photo (JPEG or PNG)")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"The file is {upload.size / 2**20:.1f} MB; photos may be at most "
                f"{settings.MAX_UPLOAD_BYTES / 2**20:.0f} MB."
            )
        return upload
