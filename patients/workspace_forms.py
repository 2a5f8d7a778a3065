"""Forms of the clinician workspace: input checks only; the writes are in patients.services."""

from django import forms

from patients.forms import DateInput
from patients.models import SeverityGrade

NORWOOD = ["I", "II", "IIa", "III", "IIIa", "III vertex", "IV", "IVa", "V", "Va", "VI", "VII"]
LUDWIG = ["I", "II", "III"]
SINCLAIR = ["1", "2", "3", "4", "5"]
GRADE_VALUES = {
    SeverityGrade.Scale.NORWOOD: NORWOOD,
    SeverityGrade.Scale.LUDWIG: LUDWIG,
    SeverityGrade.Scale.SINCLAIR: SINCLAIR,
}


def grade_choices():
    return [(scale.label, [(f"{scale.value}:{v}", f"{scale.label} {v}") for v in GRADE_VALUES[scale]])
            for scale in SeverityGrade.Scale]


def default_scale(patient, clinic) -> str:
    if patient.sex_at_birth == "female":
        sinclair = clinic.grading_scale == "norwood_sinclair"
        return SeverityGrade.Scale.SINCLAIR if sinclair else SeverityGrade.Scale.LUDWIG
    return SeverityGrade.Scale.NORWOOD


class GradeForm(forms.Form):
    grade = forms.ChoiceField(label="Your grade")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["grade"].choices = grade_choices()

    def clean(self):
        data = super().clean()
        if "grade" in data:
            data["scale"], data["value"] = data["grade"].split(":", 1)
        return data


class NoteForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=20000, label="Note")

    def clean_text(self):
        text = self.cleaned_data["text"].strip()
        if not text:
            raise forms.ValidationError("A note cannot be empty.")
        return text


class TreatmentForm(forms.Form):
    name = forms.CharField(max_length=120, label="Treatment")
    dose = forms.CharField(max_length=120, required=False)
    start = forms.DateField(widget=DateInput())
    stop = forms.DateField(widget=DateInput(), required=False)
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("stop") and data["stop"] < data["start"]:
            self.add_error("stop", "A treatment cannot stop before it starts.")
        return data


class CorrectionForm(forms.Form):
    ACTIONS = [("exclude", "Exclude from trend"), ("include", "Include in trend"),
               ("scale", "Set scale"), ("clear_scale", "Clear scale"), ("reanalyse", "Re-analyse")]
    action = forms.ChoiceField(choices=ACTIONS)
    mm_per_px = forms.FloatField(required=False, min_value=0.0005, max_value=1.0, label="mm per pixel")

    def clean(self):
        data = super().clean()
        if data.get("action") == "scale" and data.get("mm_per_px") is None:
            self.add_error("mm_per_px", "Enter the scale in mm per pixel.")
        return data
