from clinic.middleware import clinics_of


def current_clinic(request):
    return {
        "clinic": getattr(request, "clinic", None),
        "membership": getattr(request, "membership", None),
        "my_clinics": clinics_of(request) if hasattr(request, "user") else [],
    }
