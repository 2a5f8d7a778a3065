from django import forms

from clinic.models import Clinic, Role


class MemberAddForm(forms.Form):
    email = forms.EmailField()
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    role = forms.ChoiceField(choices=Role.choices)


class ClinicSettingsForm(forms.ModelForm):
    class Meta:
        model = Clinic
        fields = ["name", "grading_scale", "units", "vellus_max_um", "terminal_min_um", "trichoscope_mm_per_px",
                  "report_header"]
        labels = {"vellus_max_um": "Vellus below (µm)", "terminal_min_um": "Terminal from (µm)",
                  "trichoscope_mm_per_px": "Dermoscope scale (mm per pixel)"}
        widgets = {"report_header": forms.Textarea(attrs={"rows": 3})}

    def clean(self):
        cleaned = super().clean()
        vellus, terminal = cleaned.get("vellus_max_um"), cleaned.get("terminal_min_um")
        if vellus is not None and terminal is not None and not 0 < vellus <= terminal:
            raise forms.ValidationError("The vellus limit must be above 0 and not above the terminal limit.")
        scale = cleaned.get("trichoscope_mm_per_px")
        if scale is not None and not 0.0005 <= scale <= 0.1:
            self.add_error("trichoscope_mm_per_px", "A dermoscope scale lies between 0.0005 and 0.1 mm per pixel.")
        return cleaned
