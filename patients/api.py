"""REST API for clinic systems and scripts: patients, visits and photo upload.

Authentication is DRF's (session or HTTP Basic); the clinic comes from the URL and the
same accessors and services as the web pages decide what is visible and what changes.
"""

from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from clinic.middleware import enter_clinic
from clinic.models import CARE_TEAM_ROLES
from patients import selectors, services
from patients.images import UploadRejected
from patients.models import Patient, Photo, View, Visit


class PatientSerializer(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "external_id", "first_name", "last_name", "date_of_birth", "sex_at_birth", "created_at"]
        read_only_fields = ["id", "created_at"]


class VisitSerializer(serializers.ModelSerializer):
    class Meta:
        model = Visit
        fields = ["id", "patient", "date", "kind", "status", "created_at"]
        read_only_fields = ["id", "patient", "status", "created_at"]


class PhotoSerializer(serializers.ModelSerializer):
    class Meta:
        model = Photo
        fields = ["id", "visit", "view", "site_label", "content_type", "sha256", "width", "height", "captured_at",
                  "capture_device", "uploaded_at"]
        read_only_fields = fields


class PhotoUploadSerializer(serializers.Serializer):
    view = serializers.ChoiceField(choices=View.choices)
    site_label = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")
    file = serializers.FileField()


class ClinicAPIView(generics.GenericAPIView):
    """Enters the clinic named in the URL after DRF has authenticated the caller."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        enter_clinic(request._request, request.user, kwargs["clinic_slug"])
        if request._request.membership.role not in CARE_TEAM_ROLES:
            raise PermissionDenied("The API is for the clinic's care team.")

    @property
    def clinic_request(self):
        return self.request._request


class PatientList(ClinicAPIView, generics.ListCreateAPIView):
    serializer_class = PatientSerializer

    def get_queryset(self):
        return selectors.patient_list(self.clinic_request, self.request.query_params.get("q", ""))

    def perform_create(self, serializer):
        data = serializer.validated_data
        if Patient.objects.filter(clinic=self.clinic_request.clinic, external_id=data["external_id"]).exists():
            raise serializers.ValidationError({"external_id": ["Another patient has this record number."]})
        serializer.instance = services.patient_create(clinic=self.clinic_request.clinic, **data)


class PatientDetail(ClinicAPIView, generics.RetrieveAPIView):
    serializer_class = PatientSerializer

    def get_object(self):
        return selectors.get_patient(self.clinic_request, self.kwargs["patient_id"])


class VisitList(ClinicAPIView, generics.ListCreateAPIView):
    serializer_class = VisitSerializer

    def get_queryset(self):
        patient = selectors.get_patient(self.clinic_request, self.kwargs["patient_id"])
        return patient.visits.order_by("date")

    def perform_create(self, serializer):
        patient = selectors.get_patient(self.clinic_request, self.kwargs["patient_id"])
        data = serializer.validated_data
        serializer.instance = services.visit_create(patient=patient, visit_date=data["date"],
                                                    kind=data.get("kind", Visit.Kind.CLINIC),
                                                    clinician=self.request.user)


class PhotoList(ClinicAPIView, generics.ListAPIView):
    serializer_class = PhotoSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return selectors.get_visit(self.clinic_request, self.kwargs["visit_id"]).photos.order_by("uploaded_at")

    def post(self, request, *args, **kwargs):
        visit = selectors.get_visit(self.clinic_request, self.kwargs["visit_id"])
        upload = PhotoUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        try:
            photo = services.photo_upload(visit=visit, data=upload.validated_data["file"].read(),
                                          view=upload.validated_data["view"],
                                          site_label=upload.validated_data["site_label"], uploaded_by=request.user)
        except services.DuplicatePhoto as duplicate:
            return Response({"file": [str(duplicate)], "existing_photo": str(duplicate.existing.id)},
                            status=status.HTTP_409_CONFLICT)
        except UploadRejected as error:
            return Response({"file": [str(error)]}, status=status.HTTP_400_BAD_REQUEST)
        return Response(PhotoSerializer(photo).data, status=status.HTTP_201_CREATED)
